import type { ServerCapabilities } from '@modelcontextprotocol/client';
import type { UpstreamServerConfig } from '../config/mcpServers.js';
import type { Logger } from '../log.js';
import { Backoff } from './backoff.js';
import { ClientSession } from './clientSession.js';
import { StdioProcessTransport } from './stdioProcessTransport.js';
import { hop, metaFromContext } from './tracing.js';
import {
  type AgentRequestHandler,
  type CallOptions,
  catalogCounts,
  EMPTY_CATALOG,
  type ForwardedMethod,
  type JsonObject,
  type Upstream,
  type UpstreamCatalog,
  type UpstreamEvent,
  type UpstreamState,
  type UpstreamStatus,
  UpstreamUnavailableError,
} from './upstream.js';
import { UpstreamEvents } from './upstreamEvents.js';
import { createUpstreamTransport } from './upstreamTransports.js';

export interface SupervisorSettings {
  clientName: string;
  clientVersion: string;
  connectTimeoutMs: number;
  maxMessageBytes: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** A connection that lived this long resets the backoff. */
  stableAfterMs: number;
  /** HTTP upstreams cannot signal that they died; they are pinged this often. */
  httpPingIntervalMs: number;
}

export const DEFAULT_SUPERVISOR_SETTINGS: Omit<SupervisorSettings, 'clientVersion'> = {
  clientName: 'diane',
  connectTimeoutMs: 30_000,
  maxMessageBytes: 64 * 1024 * 1024,
  backoffBaseMs: 1000,
  backoffCapMs: 60_000,
  stableAfterMs: 60_000,
  httpPingIntervalMs: 15_000,
};

const STDERR_TAIL_LINES = 20;

/**
 * A configured MCP server kept alive: one long-lived connection (for stdio, one child process),
 * restarted with capped exponential backoff whenever it dies, until `stop()`.
 */
export class SupervisedUpstream implements Upstream {
  readonly name: string;
  readonly kind: 'stdio' | 'http' | 'sse';
  private session?: ClientSession;
  private state: UpstreamState = 'starting';
  private readonly backoff: Backoff;
  private restarts = 0;
  private lastError?: string;
  private connectedAt?: Date;
  private nextRetryAt?: Date;
  private retryTimer?: NodeJS.Timeout;
  private stableTimer?: NodeJS.Timeout;
  private pingTimer?: NodeJS.Timeout;
  private pid?: number;
  private stopping = false;
  private readonly stderrTail: string[] = [];
  private readonly events = new UpstreamEvents();
  agentRequests?: AgentRequestHandler;

  constructor(
    readonly config: UpstreamServerConfig,
    private readonly settings: SupervisorSettings,
    private readonly logger: Logger,
  ) {
    this.name = config.name;
    this.kind = config.kind;
    this.backoff = new Backoff({ baseMs: settings.backoffBaseMs, capMs: settings.backoffCapMs });
  }

  start(): void {
    void this.connect();
  }

  status(): UpstreamStatus {
    return {
      name: this.name,
      kind: this.kind,
      state: this.state,
      ...catalogCounts(this.catalog()),
      restarts: this.restarts,
      lastError: this.lastError,
      connectedAt: this.connectedAt?.toISOString(),
      nextRetryAt: this.state === 'backoff' ? this.nextRetryAt?.toISOString() : undefined,
      pid: this.state === 'connected' ? this.pid : undefined,
    };
  }

  catalog(): UpstreamCatalog {
    return this.state === 'connected' && this.session ? this.session.catalog() : EMPTY_CATALOG;
  }

  serverCapabilities(): ServerCapabilities | undefined {
    return this.state === 'connected' ? this.session?.serverCapabilities() : undefined;
  }

  /** Tells the upstream that the agents' roots changed. */
  notifyRootsChanged(): void {
    this.session?.notifyRootsChanged();
  }

  unavailableMessage(): string {
    return `Server ${this.name} is not available${this.lastError ? ` (${this.lastError})` : ''}`;
  }

  request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    const session = this.session;
    if (this.state !== 'connected' || !session) {
      return Promise.reject(new UpstreamUnavailableError(this.unavailableMessage()));
    }
    if (!opts.trace) return session.request(method, params, opts, this.unavailableMessage());
    return hop(
      'diane.upstream',
      opts.trace,
      { 'mcp.method.name': method, 'diane.server': this.name },
      (ctx) =>
        session.request(
          method,
          params,
          { ...opts, meta: { ...opts.meta, ...metaFromContext(ctx) } },
          this.unavailableMessage(),
        ),
    );
  }

  subscribe(listener: (event: UpstreamEvent) => void): () => void {
    return this.events.subscribe(listener);
  }

  private setState(state: UpstreamState): void {
    const wasServing = this.state === 'connected';
    this.state = state;
    this.events.emit({ type: 'state' });
    // Leaving or entering `connected` changes what agents see.
    if (wasServing || state === 'connected') this.events.emitWholeCatalog();
  }

  private async connect(): Promise<void> {
    if (this.stopping) return;
    this.setState('starting');
    this.stderrTail.length = 0;
    const transport = createUpstreamTransport(this.config, {
      maxMessageBytes: this.settings.maxMessageBytes,
      onStderrLine: (line) => {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
        this.logger.debug({ upstream: this.name, stderr: line }, 'upstream stderr');
      },
    });
    let session: ClientSession | undefined;
    try {
      session = await ClientSession.open(transport, {
        clientName: this.settings.clientName,
        clientVersion: this.settings.clientVersion,
        logger: this.logger.child({ upstream: this.name }),
        connectTimeoutMs: this.settings.connectTimeoutMs,
        ...this.events.sessionHooks(() => this.agentRequests),
        onClosed: (err) => this.onSessionClosed(session, transport, err),
      });
    } catch (err) {
      await transport.close().catch(() => {});
      this.fail(describeFailure(err, transport, this.stderrTail));
      return;
    }
    if (this.stopping) {
      await session.close();
      return;
    }
    this.session = session;
    this.pid = transport instanceof StdioProcessTransport ? transport.pid : undefined;
    this.connectedAt = new Date();
    this.lastError = undefined;
    this.logger.info(
      { upstream: this.name, ...catalogCounts(session.catalog()), pid: this.pid },
      'upstream connected',
    );
    this.stableTimer = setTimeout(() => this.backoff.reset(), this.settings.stableAfterMs);
    this.stableTimer.unref();
    if (this.kind !== 'stdio') {
      this.pingTimer = setInterval(() => void session.checkAlive(), this.settings.httpPingIntervalMs);
      this.pingTimer.unref();
    }
    this.setState('connected');
  }

  private onSessionClosed(session: ClientSession | undefined, transport: unknown, err?: Error): void {
    if (!session || this.session !== session) return;
    this.session = undefined;
    clearTimeout(this.stableTimer);
    clearInterval(this.pingTimer);
    if (this.stopping) return;
    this.fail(describeFailure(err ?? new Error('connection closed'), transport, this.stderrTail));
  }

  private fail(reason: string): void {
    if (this.stopping) return;
    this.lastError = reason;
    const delay = this.backoff.next();
    this.restarts++;
    this.nextRetryAt = new Date(Date.now() + delay);
    this.logger.warn(
      { upstream: this.name, error: reason, retryInMs: delay },
      'upstream is down; restarting',
    );
    this.setState('backoff');
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stableTimer);
    clearInterval(this.pingTimer);
    const session = this.session;
    this.session = undefined;
    this.setState('stopped');
    await session?.close();
  }
}

function describeFailure(err: unknown, transport: unknown, stderrTail: readonly string[]): string {
  let text = err instanceof Error ? err.message : String(err);
  if (transport instanceof StdioProcessTransport && transport.exit) {
    const { code, signal } = transport.exit;
    text = signal ? `exited on ${signal}` : `exited with code ${code}`;
  }
  const last = stderrTail.at(-1);
  return last ? `${text}; stderr: ${last.slice(0, 300)}` : text;
}
