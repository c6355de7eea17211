import { setTimeout as sleep } from 'node:timers/promises';
import type { LoggingLevel, ServerContext } from '@modelcontextprotocol/server';
import { inputRequired, ProtocolError, ProtocolErrorCode, Server } from '@modelcontextprotocol/server';
import type { Context as TraceContext } from '@opentelemetry/api';
import { type AgentIdentity, UNNAMED_AGENT } from './agentIdentity.js';
import type { DiscoveryCatalog } from './discovery/discoveryCatalog.js';
import {
  CALL_TOOL,
  callToolArgs,
  isMetaTool,
  LIST_HOSTS,
  listHostsArgs,
  listHostsResult,
  META_TOOLS,
  parseMetaArgs,
  SEARCH_TOOLS,
  searchToolsArgs,
  searchToolsResult,
} from './discovery/metaTools.js';
import { type AgentSession, type ListKind, listResult, type RoutedMethod, type Router } from './router.js';
import type { Scope } from './scope.js';
import { contextFromMeta, endHop, startHop } from './tracing.js';
import type { JsonObject, ProgressUpdate } from './upstream.js';

export interface FrontInfo {
  name: string;
  version: string;
}

/**
 * What a Diane front offers an agent. Tasks and anything else Diane does not serve are not
 * advertised. Log levels and resource subscriptions belong to a session, so a per-request
 * instance (2026-07-28) does not offer them.
 */
function frontCapabilities(persistent: boolean) {
  return {
    tools: { listChanged: true },
    prompts: { listChanged: true },
    resources: persistent ? { subscribe: true, listChanged: true } : { listChanged: true },
    completions: {},
    ...(persistent ? { logging: {} } : {}),
  };
}

/** An upstream may ask several questions in one call (sampling, then elicitation, …). */
const MAX_INPUT_ROUNDS = 64;

export interface FrontOptions {
  /** One instance per agent session, rather than per request. */
  persistent: boolean;
  /**
   * A pause between the last progress notification and the result. The SDK client handles a
   * response at once but notifications a microtask later, so a progress notification read in
   * the same chunk as the result is dropped by the agent; over a pipe (`diane mcp`) both often
   * arrive in one read. The pause lets the agent read them apart. Zero elsewhere.
   */
  progressSettleMs?: number;
  /**
   * Who the agent is (default: `UNNAMED_AGENT`, which sees everything). A persistent instance's
   * session starts with its scope and follows `Router.setAgentScope` afterwards.
   */
  agent?: AgentIdentity;
  /**
   * Discovery mode: the tool list is the meta-tools (`search_tools`, `call_tool`, `list_hosts`)
   * over this catalogue instead of every tool. Tools stay callable by name.
   */
  discovery?: DiscoveryCatalog;
}

/**
 * A front and what the relay path (`relay/`) needs to serve its hot requests without the SDK:
 * the same scope and agent the SDK handlers use.
 */
export interface Front {
  server: Server;
  /** The session's scope now (it follows `Router.setAgentScope`), or the agent's. */
  scope(): Scope;
  /** Undefined for a caller no token names (a slave serving its master). */
  agent?: AgentIdentity;
  /** Whether `tools/call` of this name is a discovery meta-tool (served by the SDK handler). */
  isMetaTool(name: string): boolean;
  /** Whether `tools/list` is the router's list (not discovery mode's meta-tools). */
  listsRoutedTools: boolean;
}

/**
 * An MCP server instance (low-level SDK `Server`) in front of the router: lists, calls, reads,
 * completion, logging and subscriptions, with the agent's progress token and cancellation
 * relayed. One instance per agent session (`persistent`) or per request, as the SDK's serving
 * entries want.
 */
export function createFrontServer(router: Router, info: FrontInfo, opts: FrontOptions): Server {
  return createFront(router, info, opts).server;
}

export function createFront(router: Router, info: FrontInfo, opts: FrontOptions): Front {
  const server = new Server(
    { name: info.name, version: info.version },
    { capabilities: frontCapabilities(opts.persistent), inputRequired: { maxRounds: MAX_INPUT_ROUNDS } },
  );
  // A connection that stays open has a session in the router from the start: list changes, log
  // messages and resource updates reach it.
  const agent = opts.agent ?? UNNAMED_AGENT;
  const session = opts.persistent
    ? openSession(router, server, agent, opts.discovery !== undefined)
    : undefined;
  const scope = () => session?.scope ?? agent.scope;

  const list = (kind: ListKind) => async (request: { params?: { cursor?: string } }) => {
    const page = router.list(kind, request.params?.cursor, scope());
    // biome-ignore lint/suspicious/noExplicitAny: the router built the items for this list.
    return listResult(kind, page) as any;
  };
  const discovery = opts.discovery;
  server.setRequestHandler(
    'tools/list',
    // biome-ignore lint/suspicious/noExplicitAny: the meta-tools are complete Tool definitions.
    discovery ? async () => ({ tools: [...META_TOOLS] }) as any : list('tools'),
  );
  server.setRequestHandler('prompts/list', list('prompts'));
  server.setRequestHandler('resources/list', list('resources'));
  server.setRequestHandler('resources/templates/list', list('resourceTemplates'));

  const settleMs = opts.progressSettleMs ?? 0;
  const call = (method: RoutedMethod) => (request: { params?: unknown }, ctx: ServerContext) => {
    const params = (request.params ?? {}) as JsonObject;
    // biome-ignore lint/suspicious/noExplicitAny: results are relayed as the upstream sent them.
    return serveCall(router, server, method, params, ctx, settleMs, scope(), opts.agent) as Promise<any>;
  };
  const callTool = call('tools/call');
  server.setRequestHandler('tools/call', (request, ctx) => {
    if (!discovery || !isMetaTool(request.params.name)) return callTool(request, ctx);
    const params = request.params as unknown as JsonObject;
    const served = serveMetaTool(discovery, params, scope(), (forwarded) =>
      callTool({ params: forwarded }, ctx),
    );
    // biome-ignore lint/suspicious/noExplicitAny: a CallToolResult, or the routed call's result.
    return served as Promise<any>;
  });
  server.setRequestHandler('prompts/get', call('prompts/get'));
  server.setRequestHandler('resources/read', call('resources/read'));

  server.setRequestHandler('completion/complete', async (request, ctx) => {
    const params = request.params as unknown as JsonObject;
    const result = await router.complete(params, ctx.mcpReq.signal, scope());
    // biome-ignore lint/suspicious/noExplicitAny: relayed as the upstream sent it.
    return result as any;
  });
  if (session) {
    server.setRequestHandler('logging/setLevel', async (request) => {
      router.setLogLevel(session, request.params.level as LoggingLevel);
      return {};
    });
    server.setRequestHandler('resources/subscribe', async (request, ctx) => {
      await router.subscribeResource(session, request.params.uri, ctx.mcpReq.signal);
      return {};
    });
    server.setRequestHandler('resources/unsubscribe', async (request) => {
      await router.unsubscribeResource(session, request.params.uri);
      return {};
    });
  }
  server.setNotificationHandler('notifications/roots/list_changed', () => router.rootsChanged());
  return {
    server,
    scope,
    ...(opts.agent ? { agent: opts.agent } : {}),
    isMetaTool: (name) => discovery !== undefined && isMetaTool(name),
    listsRoutedTools: discovery === undefined,
  };
}

function openSession(
  router: Router,
  server: Server,
  agent: AgentIdentity,
  fixedTools: boolean,
): AgentSession {
  const session = router.openSession(
    {
      notify: (method, params) => {
        server.notification((params === undefined ? { method } : { method, params }) as never).catch(() => {
          // A session that is closing (or not connected yet) cannot be told; it lists anew.
        });
      },
    },
    agent.scope,
    agent.name,
    fixedTools,
  );
  onServerClose(server, () => router.closeSession(session));
  return session;
}

/**
 * A meta-tool of discovery mode. `call_tool` is the routed call itself (the same handler as a
 * direct call, progress token and cancellation included), so its result is exactly a direct
 * call's. Bad arguments are a tool error the model can read and fix.
 */
async function serveMetaTool(
  discovery: DiscoveryCatalog,
  params: JsonObject,
  scope: Scope,
  routedCall: (forwarded: JsonObject) => Promise<unknown>,
): Promise<unknown> {
  const name = String(params.name);
  if (name === CALL_TOOL) {
    const parsed = parseMetaArgs(callToolArgs, CALL_TOOL, params.arguments);
    if (!parsed.ok) return metaToolError(parsed.error);
    const { name: target, arguments: args } = parsed.value;
    return routedCall({
      name: target,
      ...(args === undefined ? {} : { arguments: args }),
      ...(params._meta === undefined ? {} : { _meta: params._meta }),
    });
  }
  if (name === SEARCH_TOOLS) {
    const parsed = parseMetaArgs(searchToolsArgs, SEARCH_TOOLS, params.arguments);
    if (!parsed.ok) return metaToolError(parsed.error);
    return searchToolsResult(discovery.search(parsed.value, scope));
  }
  const parsed = parseMetaArgs(listHostsArgs, LIST_HOSTS, params.arguments);
  if (!parsed.ok) return metaToolError(parsed.error);
  return listHostsResult(discovery.servers(scope));
}

function metaToolError(text: string): JsonObject {
  return { content: [{ type: 'text', text }], isError: true };
}

/**
 * A tool call, prompt or read. When the upstream asks the agent something on the way (sampling,
 * elicitation, roots), the call is returned as `input_required` with its id as `requestState`;
 * the agent (2026-07-28) or the SDK's shim (2025 sessions) comes back with the answers and the
 * same handler resumes the call.
 */
async function serveCall(
  router: Router,
  server: Server,
  method: RoutedMethod,
  params: JsonObject,
  ctx: ServerContext,
  progressSettleMs: number,
  scope: Scope,
  /** Undefined for a caller no token names (a slave serving its master, `--agent-auth none`). */
  agent: AgentIdentity | undefined,
): Promise<unknown> {
  // The first hop of the call's trace, child of the agent's `traceparent` when it sent one.
  const front = startHop('diane.front', contextFromMeta(params._meta), {
    'mcp.method.name': method,
    'diane.name': String(params.name ?? params.uri ?? ''),
    ...(agent ? { 'diane.agent': agent.name } : {}),
  });
  try {
    const answer = await serveTracedCall(
      router,
      server,
      method,
      params,
      ctx,
      progressSettleMs,
      scope,
      agent,
      front.context,
    );
    endHop(front.span);
    return answer;
  } catch (err) {
    endHop(front.span, err);
    throw err;
  }
}

async function serveTracedCall(
  router: Router,
  server: Server,
  method: RoutedMethod,
  params: JsonObject,
  ctx: ServerContext,
  progressSettleMs: number,
  scope: Scope,
  agent: AgentIdentity | undefined,
  trace: TraceContext,
): Promise<unknown> {
  const progressToken = (params._meta as JsonObject | undefined)?.progressToken;
  // Progress notifications are written in order, and the result only after the last of them:
  // an agent that read the result first would drop the progress that trails it.
  let progressSent: Promise<void> = Promise.resolve();
  let anyProgress = false;
  const onprogress =
    progressToken === undefined
      ? undefined
      : (update: ProgressUpdate) => {
          anyProgress = true;
          progressSent = progressSent.then(() =>
            ctx.mcpReq
              .notify({ method: 'notifications/progress', params: { ...update, progressToken } } as never)
              .catch(() => {
                // The agent went away; its cancellation reaches the upstream through the signal.
              }),
          );
        };
  const state = ctx.mcpReq.requestState();
  let routed: ReturnType<Router['startCall']>;
  if (typeof state === 'string') {
    const resumed = router.resumeCall(state);
    if (!resumed) throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Invalid or expired requestState');
    routed = resumed;
    routed.bind(ctx.mcpReq.signal, onprogress);
    routed.answer(ctx.mcpReq.inputResponses);
  } else {
    // Routing is its own hop: the name table lookup and the upstream's queue and link below it.
    const route = startHop('diane.route', trace, { 'mcp.method.name': method });
    try {
      routed = router.startCall(method, params, {
        signal: ctx.mcpReq.signal,
        onprogress,
        capabilities: server.getClientCapabilities(),
        scope,
        agent,
        trace: route.context,
      });
      endHop(route.span);
    } catch (err) {
      endHop(route.span, err);
      throw err;
    }
  }
  // 2025-era rounds stay inside one agent request, whose cancellation keeps applying; a
  // 2026-07-28 request ends with the input_required answer, and the next one takes over.
  const step = await router.step(routed, { keepSignal: ctx.mcpReq.envelope === undefined });
  await progressSent;
  if (anyProgress && progressSettleMs > 0) await sleep(progressSettleMs);
  if (step.kind === 'result') return step.result;
  if (step.kind === 'error') throw step.error;
  return inputRequired({ inputRequests: step.requests as never, requestState: routed.id });
}

/** Chains a close handler onto a server without dropping the one the front set. */
export function onServerClose(server: Server, handler: () => void): void {
  const previous = server.onclose;
  server.onclose = () => {
    previous?.();
    handler();
  };
}
