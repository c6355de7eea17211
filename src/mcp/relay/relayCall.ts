import type { ClientCapabilities } from '@modelcontextprotocol/client';
import type { AgentIdentity } from '../agentIdentity.js';
import type { RoutedCall } from '../routedCall.js';
import type { Router } from '../router.js';
import type { Scope } from '../scope.js';
import { contextFromMeta, endHop, startHop } from '../tracing.js';
import type { AgentRequest, JsonObject, ProgressUpdate } from '../upstream.js';
import { type HotMethod, JSONRPC_INTERNAL_ERROR } from './wire.js';

/** How a relayed call ends, as its front writes it. */
export type FinalStep = { kind: 'result'; result: JsonObject } | { kind: 'error'; error: unknown };

export interface RelayCallOptions {
  scope: Scope;
  /** Undefined for a caller no token names (a slave serving its master). */
  agent?: AgentIdentity;
  /** What the caller declared it can answer; questions are routed only to capable callers. */
  capabilities?: ClientCapabilities;
  onprogress?: (update: ProgressUpdate) => void;
  /**
   * Puts the upstream's questions (sampling, elicitation, roots) to the caller and resolves with
   * the answers by key. Without it the caller must have declared no such capability.
   */
  ask?: (requests: Record<string, AgentRequest>) => Promise<Record<string, JsonObject>>;
}

export interface RelayedCall {
  /** The caller cancelled, or went away. */
  cancel(): void;
  readonly done: Promise<FinalStep>;
}

/** As the SDK's 2025-era shim: an upstream may ask several questions in one call, up to a point. */
const MAX_INPUT_ROUNDS = 64;

/**
 * A hot request run through the same router call path as the SDK front's handler
 * (`frontServer.serveCall`): the `diane.front` and `diane.route` spans, `Router.startCall` (name
 * table, scope, exposure, audit and metrics through `onCallFinished`, timeouts) and
 * `Router.step`. The call's own AbortController is its only one: cancelling goes straight to
 * `RoutedCall.cancel`.
 */
export function relayCall(
  router: Router,
  method: HotMethod,
  params: JsonObject,
  opts: RelayCallOptions,
): RelayedCall {
  const front = startHop('diane.front', contextFromMeta(params._meta), {
    'mcp.method.name': method,
    'diane.name': String(params.name ?? params.uri ?? ''),
    ...(opts.agent ? { 'diane.agent': opts.agent.name } : {}),
  });
  const route = startHop('diane.route', front.context, { 'mcp.method.name': method });
  let call: RoutedCall;
  try {
    call = router.startCall(method, params, {
      ...(opts.onprogress ? { onprogress: opts.onprogress } : {}),
      capabilities: opts.capabilities,
      scope: opts.scope,
      agent: opts.agent,
      trace: route.context,
    });
    endHop(route.span);
  } catch (err) {
    endHop(route.span, err);
    endHop(front.span, err);
    return { cancel: () => {}, done: Promise.resolve({ kind: 'error', error: err }) };
  }
  const done = runToEnd(router, method, call, opts).then(
    (step) => {
      endHop(front.span, step.kind === 'error' ? step.error : undefined);
      return step;
    },
    (err) => {
      endHop(front.span, err);
      return { kind: 'error' as const, error: err };
    },
  );
  return { cancel: () => call.cancel('the agent cancelled the request'), done };
}

async function runToEnd(
  router: Router,
  method: HotMethod,
  call: RoutedCall,
  opts: RelayCallOptions,
): Promise<FinalStep> {
  for (let round = 0; ; round++) {
    const step = await router.step(call, { keepSignal: true });
    if (step.kind !== 'input') return step;
    // Parked by `step`; this caller answers on the same request, so it takes the call back.
    router.resumeCall(call.id);
    if (!opts.ask || round >= MAX_INPUT_ROUNDS) {
      call.cancel('the agent cannot answer the upstream');
      return inputFailure(
        method,
        opts.ask
          ? `Input required by '${method}' exceeded ${MAX_INPUT_ROUNDS} rounds`
          : `Input required by '${method}' cannot be requested on this connection`,
      );
    }
    let answers: Record<string, JsonObject>;
    try {
      answers = await opts.ask(step.requests);
    } catch (err) {
      if (call.finished) continue;
      call.cancel('the agent could not answer');
      return inputFailure(
        method,
        `Fulfilling input required by '${method}' failed: ${(err as Error).message}`,
      );
    }
    call.answer(answers);
  }
}

/** As the SDK's shim surfaces it: a tool error for a tool call, an internal error otherwise. */
function inputFailure(method: HotMethod, message: string): FinalStep {
  if (method === 'tools/call')
    return { kind: 'result', result: { content: [{ type: 'text', text: message }], isError: true } };
  return { kind: 'error', error: { code: JSONRPC_INTERNAL_ERROR, message } };
}
