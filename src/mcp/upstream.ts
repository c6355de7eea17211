import type {
  CallToolResult,
  LoggingMessageNotificationParams,
  Prompt,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  ServerCapabilities,
  Tool,
} from '@modelcontextprotocol/client';
import type { Context } from '@opentelemetry/api';

export type UpstreamKind = 'stdio' | 'http' | 'sse' | 'slave';

/**
 * starting: connecting for the first time or after a restart.
 * connected: tools are served.
 * backoff: it failed; the next attempt is scheduled (`nextRetryAt`).
 * offline: a slave that is paired but has no live link.
 * disabled: `enabled: false` in the config.
 * stopped: shut down by Diane.
 */
export type UpstreamState = 'starting' | 'connected' | 'backoff' | 'offline' | 'disabled' | 'stopped';

export interface UpstreamStatus {
  name: string;
  kind: UpstreamKind;
  state: UpstreamState;
  toolCount: number;
  promptCount: number;
  resourceCount: number;
  restarts: number;
  lastError?: string;
  connectedAt?: string;
  nextRetryAt?: string;
  pid?: number;
}

/** Everything an upstream offers under names, as the upstream names it. */
export interface UpstreamCatalog {
  tools: readonly Tool[];
  prompts: readonly Prompt[];
  resources: readonly Resource[];
  resourceTemplates: readonly ResourceTemplate[];
}

export const EMPTY_CATALOG: UpstreamCatalog = {
  tools: [],
  prompts: [],
  resources: [],
  resourceTemplates: [],
};

/** The lists an upstream can announce a change of; `resources` covers the templates too. */
export type CatalogKind = 'tools' | 'prompts' | 'resources';

export const CATALOG_KINDS: readonly CatalogKind[] = ['tools', 'prompts', 'resources'];

export type UpstreamEvent =
  | { type: 'catalog'; kind: CatalogKind }
  | { type: 'state' }
  | { type: 'log'; params: LoggingMessageNotificationParams }
  | { type: 'resource-updated'; uri: string };

export interface ProgressUpdate {
  progress: number;
  total?: number;
  message?: string;
}

export interface CallOptions {
  signal: AbortSignal;
  onprogress?: (update: ProgressUpdate) => void;
  /** Idle timeout: restarted by every progress notification. */
  timeoutMs: number;
  /** Hard cap on the whole call, progress or not. */
  maxTotalMs: number;
  /**
   * Epoch ms by which the call must be over, counted from when the agent asked: time spent
   * waiting in an upstream's queue counts against the cap too.
   */
  deadline?: number;
  /** Extra `_meta` sent with the request (the call's correlation id towards another Diane). */
  meta?: Record<string, unknown>;
  /** The trace context the upstream's spans are children of (mcp/tracing.ts). */
  trace?: Context;
}

/** The requests Diane forwards to an upstream on an agent's behalf. */
export type ForwardedMethod =
  | 'tools/call'
  | 'prompts/get'
  | 'resources/read'
  | 'completion/complete'
  | 'resources/subscribe'
  | 'resources/unsubscribe'
  | 'logging/setLevel';

/** The requests an upstream may send to its client, which Diane relays to an agent. */
export type AgentRequestMethod = 'sampling/createMessage' | 'elicitation/create' | 'roots/list';

export interface AgentRequest {
  method: AgentRequestMethod;
  params: Record<string, unknown>;
}

/**
 * Relays a request an upstream made to an agent and resolves with the agent's answer.
 * Throws a ProtocolError the upstream should receive when no agent can answer.
 */
export type AgentRequestHandler = (
  request: AgentRequest,
  signal: AbortSignal,
) => Promise<Record<string, unknown>>;

export type JsonObject = Record<string, unknown>;

/**
 * Anything the router can route requests to: a configured MCP server, or (handed over by the
 * cluster hub) a connected slave. The router only sees this interface.
 */
export interface Upstream {
  readonly name: string;
  readonly kind: UpstreamKind;
  /**
   * The machine whose entries these are, for `host:` scope patterns: a slave's host id. Unset
   * for servers configured on this machine, whose host is `local` (`LOCAL_HOST` in scope.ts).
   */
  readonly host?: string;
  status(): UpstreamStatus;
  /** What the upstream offers, as it names it; empty while not connected. */
  catalog(): UpstreamCatalog;
  /** The capabilities the upstream declared; undefined while not connected. */
  serverCapabilities(): ServerCapabilities | undefined;
  /** Forwards one request; the result is passed back as the upstream sent it. */
  request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject>;
  /** Set by the router: where the upstream's own requests (sampling, elicitation, roots) go. */
  agentRequests?: AgentRequestHandler;
  /** Tells the upstream that the agents' roots changed. */
  notifyRootsChanged?(): void;
  /** What an agent is told when a call cannot reach this upstream. */
  unavailableMessage(): string;
  subscribe(listener: (event: UpstreamEvent) => void): () => void;
  stop(): Promise<void>;
}

/** The call could not reach the upstream (not connected, or the link dropped mid-call). */
export class UpstreamUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamUnavailableError';
  }
}

/** The upstream did not answer within the call's timeout. */
export class UpstreamTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamTimeoutError';
  }
}

export function toolError(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

/** Counts for `UpstreamStatus`, from a catalog. */
export function catalogCounts(
  catalog: UpstreamCatalog,
): Pick<UpstreamStatus, 'toolCount' | 'promptCount' | 'resourceCount'> {
  return {
    toolCount: catalog.tools.length,
    promptCount: catalog.prompts.length,
    resourceCount: catalog.resources.length + catalog.resourceTemplates.length,
  };
}
