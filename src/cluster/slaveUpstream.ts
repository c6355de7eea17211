import type { ServerCapabilities } from '@modelcontextprotocol/client';
import type { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import { ClientSession } from '../mcp/clientSession.js';
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
  type UpstreamStatus,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../mcp/upstream.js';
import { UpstreamEvents } from '../mcp/upstreamEvents.js';
import { ConcurrencyLimit, QueueDeadlineError } from './concurrencyLimit.js';
import { CloseCode, WebSocketTransport } from './webSocketTransport.js';

export interface LinkInfo {
  remoteAddress: string;
  certSerial: string;
  /** The link's certificate notAfter: the link is closed then, whatever else happens. */
  certExpiresAt: Date;
}

/** setTimeout takes at most 2^31-1 ms (about 24.8 days); longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SlaveLimits {
  maxInFlight: number;
  maxQueued: number;
  connectTimeoutMs: number;
}

/**
 * A paired slave as the aggregator sees it: an upstream named by its host id whose tools are
 * those of the slave's own MCP servers. It exists while the host is paired; a live WebSocket
 * link is attached and detached as the slave comes and goes.
 */
export class SlaveUpstream implements Upstream {
  readonly kind = 'slave' as const;
  private session?: ClientSession;
  private transport?: WebSocketTransport;
  private link?: LinkInfo & { connectedAt: Date };
  private expiryTimer?: NodeJS.Timeout;
  private lastHeartbeat?: Date;
  private lastError?: string;
  private connects = 0;
  private readonly limit: ConcurrencyLimit;
  private readonly events = new UpstreamEvents();
  agentRequests?: AgentRequestHandler;

  constructor(
    readonly name: string,
    private readonly limits: SlaveLimits,
    private readonly clientVersion: string,
    private readonly logger: Logger,
  ) {
    this.limit = new ConcurrencyLimit(limits.maxInFlight, limits.maxQueued);
  }

  /** Runs the MCP handshake over a freshly accepted link; replaces any previous link. */
  async attach(ws: WebSocket, info: LinkInfo): Promise<void> {
    await this.detach(4409, 'replaced by a newer connection from the same host');
    const transport = new WebSocketTransport(ws);
    this.transport = transport;
    let session: ClientSession | undefined;
    session = await ClientSession.open(transport, {
      clientName: 'diane-master',
      clientVersion: this.clientVersion,
      logger: this.logger.child({ host: this.name }),
      connectTimeoutMs: this.limits.connectTimeoutMs,
      ...this.events.sessionHooks(() => this.agentRequests),
      onClosed: (err) => {
        if (session && this.session === session) this.onLinkLost(err);
      },
    });
    if (this.transport !== transport) {
      // A newer link won the race while this one was handshaking.
      await session.close();
      return;
    }
    this.session = session;
    this.link = { ...info, connectedAt: new Date() };
    this.armExpiry(info.certExpiresAt);
    this.lastHeartbeat = new Date();
    this.lastError = undefined;
    this.connects++;
    this.logger.info(
      { host: this.name, ...catalogCounts(session.catalog()), remote: info.remoteAddress },
      'slave connected',
    );
    this.events.emit({ type: 'state' });
    this.events.emitWholeCatalog();
  }

  /** A certificate that expires while its link is up ends the link at that moment. */
  private armExpiry(at: Date): void {
    clearTimeout(this.expiryTimer);
    const wait = at.getTime() - Date.now();
    this.expiryTimer = setTimeout(
      () => {
        if (Date.now() < at.getTime()) return this.armExpiry(at);
        this.logger.warn({ host: this.name }, 'the certificate of the link expired; closing the link');
        void this.detach(CloseCode.certificateExpired, 'certificate expired');
      },
      Math.max(0, Math.min(wait, MAX_TIMER_MS)),
    );
    this.expiryTimer.unref();
  }

  private onLinkLost(err?: Error): void {
    clearTimeout(this.expiryTimer);
    this.session = undefined;
    this.transport = undefined;
    this.link = undefined;
    this.lastError = err?.message;
    this.logger.info({ host: this.name }, 'slave disconnected');
    this.events.emit({ type: 'state' });
    this.events.emitWholeCatalog();
  }

  /** Closes the live link, if any, with a WebSocket close code the slave understands. */
  async detach(code: number, why: string): Promise<void> {
    const transport = this.transport;
    const session = this.session;
    this.transport = undefined;
    if (!transport) return;
    clearTimeout(this.expiryTimer);
    this.session = undefined;
    this.link = undefined;
    await transport.close(code, why);
    await session?.close();
    this.events.emit({ type: 'state' });
    this.events.emitWholeCatalog();
  }

  heartbeat(at: Date): void {
    this.lastHeartbeat = at;
  }

  get connected(): boolean {
    return this.session !== undefined && !this.session.closed;
  }

  linkInfo(): (LinkInfo & { connectedAt: Date; lastHeartbeat?: Date; version?: string }) | undefined {
    if (!this.link) return undefined;
    return { ...this.link, lastHeartbeat: this.lastHeartbeat, version: this.session?.serverVersion() };
  }

  status(): UpstreamStatus {
    return {
      name: this.name,
      kind: 'slave',
      state: this.connected ? 'connected' : 'offline',
      ...catalogCounts(this.catalog()),
      restarts: Math.max(0, this.connects - 1),
      lastError: this.lastError,
      connectedAt: this.link?.connectedAt.toISOString(),
    };
  }

  catalog(): UpstreamCatalog {
    return this.connected ? (this.session?.catalog() ?? EMPTY_CATALOG) : EMPTY_CATALOG;
  }

  serverCapabilities(): ServerCapabilities | undefined {
    return this.connected ? this.session?.serverCapabilities() : undefined;
  }

  notifyRootsChanged(): void {
    this.session?.notifyRootsChanged();
  }

  unavailableMessage(): string {
    return `Host ${this.name} is not available`;
  }

  async request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    try {
      return await this.limit.run(
        () => {
          const session = this.session;
          if (!session || session.closed) throw new UpstreamUnavailableError(this.unavailableMessage());
          return session.request(method, params, withinDeadline(opts), this.unavailableMessage());
        },
        () =>
          new UpstreamUnavailableError(
            `Host ${this.name} is busy: too many calls in flight, try again later`,
          ),
        { signal: opts.signal, deadline: opts.deadline },
      );
    } catch (err) {
      if (err instanceof QueueDeadlineError) {
        throw new UpstreamTimeoutError(`waited for a free slot on host ${this.name} until the time was up`);
      }
      throw err;
    }
  }

  subscribe(listener: (event: UpstreamEvent) => void): () => void {
    return this.events.subscribe(listener);
  }

  async stop(): Promise<void> {
    await this.detach(1001, 'master shutting down');
  }
}

/** What is left of the call's time once it leaves the queue. */
function withinDeadline(opts: CallOptions): CallOptions {
  if (opts.deadline === undefined) return opts;
  const left = opts.deadline - Date.now();
  if (left <= 0) throw new UpstreamTimeoutError('the time was up before the call could be sent');
  return { ...opts, timeoutMs: Math.min(opts.timeoutMs, left), maxTotalMs: Math.min(opts.maxTotalMs, left) };
}
