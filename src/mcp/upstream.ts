import type { CallToolResult, Tool } from '@modelcontextprotocol/client';

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
  restarts: number;
  lastError?: string;
  connectedAt?: string;
  nextRetryAt?: string;
  pid?: number;
}

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
}

export type UpstreamEvent = 'tools' | 'state';

/**
 * Anything the aggregator can route calls to: a configured MCP server, or (handed over by the
 * cluster hub) a connected slave. The aggregator only sees this interface.
 */
export interface Upstream {
  readonly name: string;
  readonly kind: UpstreamKind;
  status(): UpstreamStatus;
  /** The tools as the upstream names them; empty while not connected. */
  tools(): readonly Tool[];
  callTool(
    name: string,
    args: Record<string, unknown> | undefined,
    opts: CallOptions,
  ): Promise<CallToolResult>;
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
