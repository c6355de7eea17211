import type { ClientCapabilities } from '@modelcontextprotocol/client';
import type { AgentIdentity } from '../agentIdentity.js';
import type { RoutedCall } from '../routedCall.js';
import type { Router } from '../router.js';
import type { Scope } from '../scope.js';
import { contextFromMeta, endHop, startHop } from '../tracing.js';
import type { AgentRequest, JsonObject, ProgressUpdate } from '../upstream.js';
import { type HotMethod, JSONRPC_INTERNAL_ERROR, JSONRPC_INVALID_PARAMS } from './wire.js';

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
   * the answers by key; only asked of a caller that declared the capability.
   */
  ask: (requests: Record<string, AgentRequest>) => Promise<Record<string, JsonObject>>;
}

export interface RelayedCall {
  /** The caller cancelled, or went away. */
  cancel(): void;
  readonly done: Promise<FinalStep>;
}

/** As the SDK front's (`frontServer.ts`): an upstream may ask several rounds of questions, up to a point. */
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
  for (let round = 1; ; round++) {
    const step = await router.step(call, { keepSignal: true });
    if (step.kind !== 'input') return step;
    // `step` parked the call under the input timeout, as for the SDK front: it stays parked while
    // the agent answers, and is taken back when the answers are in.
    if (round > MAX_INPUT_ROUNDS) {
      giveUp(router, call, 'the agent cannot answer the upstream');
      return inputFailure(
        method,
        `Multi-round-trip request '${method}' still required input after ${MAX_INPUT_ROUNDS} rounds (inputRequired.maxRounds)`,
      );
    }
    let answers: Record<string, JsonObject>;
    try {
      answers = await opts.ask(step.requests);
    } catch (err) {
      giveUp(router, call, 'the agent could not answer');
      const reason = err instanceof Error ? err.message : String(err);
      return inputFailure(method, `Fulfilling input required by '${method}' failed: ${reason}`);
    }
    // The input timeout expired (or the call ended) while the agent answered: the SDK front's
    // resume refuses it so.
    if (!router.resumeCall(call.id))
      return {
        kind: 'error',
        error: { code: JSONRPC_INVALID_PARAMS, message: 'Invalid or expired requestState' },
      };
    call.answer(answers);
  }
}

/** The call will not be resumed: out of the router's parking, and cancelled upstream. */
function giveUp(router: Router, call: RoutedCall, reason: string): void {
  router.resumeCall(call.id);
  call.cancel(reason);
}

/** As the SDK's shim surfaces it: a tool error for a tool call, an internal error otherwise. */
function inputFailure(method: HotMethod, message: string): FinalStep {
  if (method === 'tools/call')
    return { kind: 'result', result: { content: [{ type: 'text', text: message }], isError: true } };
  return { kind: 'error', error: { code: JSONRPC_INTERNAL_ERROR, message } };
}
