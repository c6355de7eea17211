import { ProtocolError, ProtocolErrorCode, type ServerCapabilities } from '@modelcontextprotocol/client';
import type { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import { ClientSession } from '../mcp/clientSession.js';
import { SharedSubscriptions } from '../mcp/sharedSubscriptions.js';
import { endHop, hop, metaFromContext, startHop } from '../mcp/tracing.js';
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
import { RenewalRefusedError, type RenewalRequest } from './renewal.js';
import {
  FINAL_RENEWAL_REFUSALS,
  RENEW_METHOD,
  RENEWAL_REFUSED_CODE,
  type RenewalRefusal,
  RenewParamsSchema,
  type RenewResult,
} from './renewalWire.js';
import { runAt, type Scheduled } from './runAt.js';
import {
  TRUST_CHANGED_NOTIFICATION,
  TRUST_METHOD,
  TrustParamsSchema,
  type TrustResult,
} from './trustWire.js';
import { CloseCode, WebSocketTransport } from './webSocketTransport.js';

export interface LinkInfo {
  remoteAddress: string;
  certSerial: string;
  /** The link's certificate notAfter: the link is closed then, whatever else happens. */
  certExpiresAt: Date;
}

export interface SlaveLimits {
  maxInFlight: number;
  maxQueued: number;
  connectTimeoutMs: number;
}

/** What a link may ask of the master's renewal rules (`RenewalService`). */
export interface LinkRenewal {
  renew(request: RenewalRequest): Promise<RenewResult>;
}

/** The master's services a link offers the slave beyond MCP. */
export interface LinkServices {
  renewal?: LinkRenewal;
  /** The CAs slaves trust now, for `diane/trust` (CA rollover). */
  trust?: () => TrustResult;
}

/** A subscription is shared by every master, so no one caller's timeout applies to it. */
const SUBSCRIPTION_TIMEOUT_MS = 30_000;

/** The longest an old link is kept open for its calls in flight after a renewal handover. */
const MAX_DRAIN_MS = 5 * 60_000;
const DRAIN_POLL_MS = 100;
/** Lets the refusal's JSON-RPC error reach the slave before its link is cut. */
const CUT_AFTER_REFUSAL_MS = 200;

/** How a final renewal refusal ends the link, in the close codes the slave already understands. */
const REFUSAL_CLOSE: Record<RenewalRefusal, number | undefined> = {
  'unknown-host': CloseCode.revoked,
  disabled: CloseCode.revoked,
  revoked: CloseCode.revoked,
  'not-current': CloseCode.superseded,
  expired: CloseCode.certificateExpired,
  'csr-rejected': undefined,
  'key-reused': undefined,
};

/**
 * A paired slave as the aggregator sees it: an upstream named by its host id whose tools are
 * those of the slave's own MCP servers. It exists while the host is paired; a live WebSocket
 * link is attached and detached as the slave comes and goes.
 */
export class SlaveUpstream implements Upstream {
  readonly kind = 'slave' as const;
  /** Its entries belong to the host it is named after, for `host:` scope patterns. */
  get host(): string {
    return this.name;
  }
  private session?: ClientSession;
  private transport?: WebSocketTransport;
  private link?: LinkInfo & { connectedAt: Date };
  private expiry?: Scheduled;
  private lastHeartbeat?: Date;
  private lastError?: string;
  private connects = 0;
  private readonly limit: ConcurrencyLimit;
  private readonly events = new UpstreamEvents();
  /** Calls in flight per session, so that a link replaced by a renewal can finish its calls. */
  private readonly inFlight = new Map<ClientSession, number>();
  /** Bumped by every attach and detach: a handshake that finishes after either is dropped. */
  private attempt = 0;
  agentRequests?: AgentRequestHandler;
  /**
   * The link's resource subscriptions, shared by this master's router and the masters whose
   * agents reach the host over the bus (bus/busCallServer.ts): one subscription per URI on the
   * link, however many masters want it.
   */
  readonly subscriptions = new SharedSubscriptions(
    (method, uri) =>
      this.send(
        method,
        { uri },
        {
          signal: AbortSignal.timeout(SUBSCRIPTION_TIMEOUT_MS),
          timeoutMs: SUBSCRIPTION_TIMEOUT_MS,
          maxTotalMs: SUBSCRIPTION_TIMEOUT_MS,
        },
      ),
    (uri, err) =>
      this.logger.warn(
        { host: this.name, uri, err: err.message },
        'a shared resource subscription failed on the link',
      ),
  );

  constructor(
    readonly name: string,
    private readonly limits: SlaveLimits,
    private readonly clientVersion: string,
    private readonly logger: Logger,
    private readonly services: LinkServices = {},
  ) {
    this.limit = new ConcurrencyLimit(limits.maxInFlight, limits.maxQueued);
  }

  /**
   * Runs the MCP handshake over a freshly accepted link and makes it the host's link.
   *
   * A link opened with another certificate than the live one's is a renewal handover (the hub
   * only accepts the host's current or pending certificate): the old link keeps serving until
   * the new one is ready, then finishes its calls in flight and is closed with `renewed`, so
   * calls do not fail because a certificate was renewed. Any other second link replaces the
   * first at once, as before.
   */
  async attach(ws: WebSocket, info: LinkInfo): Promise<void> {
    const handover =
      this.transport && this.session && this.link && this.link.certSerial !== info.certSerial
        ? { transport: this.transport, session: this.session, expiresAt: this.link.certExpiresAt }
        : undefined;
    if (!handover) await this.detach(CloseCode.replaced, 'replaced by a newer connection from the same host');
    const transport = new WebSocketTransport(ws);
    // During a handover the old link stays this.transport (and serves) until the new one is ready.
    if (!handover) this.transport = transport;
    const attempt = ++this.attempt;
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
      extensionRequests: [
        {
          method: RENEW_METHOD,
          params: RenewParamsSchema,
          handle: (params: { csr: string }) => this.renewOverLink(info.certSerial, params.csr),
        },
        {
          method: TRUST_METHOD,
          params: TrustParamsSchema,
          handle: async () => {
            const trust = this.services.trust;
            if (!trust)
              throw new ProtocolError(ProtocolErrorCode.MethodNotFound, 'trust is not offered here');
            return trust();
          },
        },
      ],
    });
    if (attempt !== this.attempt || (!handover && this.transport !== transport)) {
      // A newer link won the race while this one was handshaking, or the host was detached.
      await session.close();
      return;
    }
    if (handover && this.session === handover.session) void this.drain(handover);
    this.transport = transport;
    this.session = session;
    this.link = { ...info, connectedAt: new Date() };
    this.subscriptions.linkUp();
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

  /**
   * The slave asks for a new certificate over this link. Identity is the link's: the host this
   * upstream is, and the serial the hub accepted for this link; nothing in the message names it.
   */
  private async renewOverLink(linkSerial: string, csrPem: string): Promise<RenewResult> {
    const renewal = this.services.renewal;
    if (!renewal) throw new ProtocolError(ProtocolErrorCode.MethodNotFound, 'renewal is not offered here');
    try {
      return await renewal.renew({ hostId: this.name, linkSerial, csrPem });
    } catch (err) {
      if (err instanceof RenewalRefusedError) {
        const code = FINAL_RENEWAL_REFUSALS.has(err.reason) ? REFUSAL_CLOSE[err.reason] : undefined;
        if (code !== undefined) {
          setTimeout(() => {
            if (this.link?.certSerial === linkSerial)
              void this.detach(code, `renewal refused: ${err.reason}`);
          }, CUT_AFTER_REFUSAL_MS).unref();
        }
        throw new ProtocolError(RENEWAL_REFUSED_CODE, `renewal refused: ${err.message}`, {
          reason: err.reason,
        });
      }
      this.logger.error({ host: this.name, err }, 'could not renew the certificate of a slave');
      throw new ProtocolError(
        ProtocolErrorCode.InternalError,
        'the master could not renew the certificate now',
      );
    }
  }

  /** Closes a link replaced by a renewal once its calls are done (or its time is up). */
  private async drain(old: { transport: WebSocketTransport; session: ClientSession; expiresAt: Date }) {
    const deadline = Math.min(Date.now() + MAX_DRAIN_MS, old.expiresAt.getTime());
    while ((this.inFlight.get(old.session) ?? 0) > 0 && Date.now() < deadline && !old.session.closed) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS).unref());
    }
    this.logger.info({ host: this.name }, 'closed the link replaced by a renewed certificate');
    await old.transport.close(CloseCode.renewed, 'renewed: the new link took over');
    await old.session.close();
  }

  /** A certificate that expires while its link is up ends the link at that moment. */
  private armExpiry(at: Date): void {
    this.expiry?.cancel();
    this.expiry = runAt(at.getTime(), () => {
      this.logger.warn({ host: this.name }, 'the certificate of the link expired; closing the link');
      void this.detach(CloseCode.certificateExpired, 'certificate expired');
    });
  }

  private onLinkLost(err?: Error): void {
    this.subscriptions.linkDown();
    this.expiry?.cancel();
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
    this.attempt++;
    const transport = this.transport;
    const session = this.session;
    this.transport = undefined;
    if (!transport) return;
    this.expiry?.cancel();
    this.session = undefined;
    this.link = undefined;
    this.subscriptions.linkDown();
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

  /** Tells the slave to ask `diane/trust` again: a CA rollover started or finished. */
  notifyTrustChanged(): void {
    this.session?.notifyExtension(TRUST_CHANGED_NOTIFICATION);
  }

  notifyRootsChanged(): void {
    this.session?.notifyRootsChanged();
  }

  unavailableMessage(): string {
    return `Host ${this.name} is not available`;
  }

  async request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    if (method === 'resources/subscribe' || method === 'resources/unsubscribe')
      return this.subscriptions.own(method, params);
    return this.send(method, params, opts);
  }

  private async send(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    const attributes = { 'mcp.method.name': method, 'diane.host': this.name };
    // Queue wait and link are separate hops of a trace: a slow call shows which one it was.
    const queued = opts.trace ? startHop('diane.queue', opts.trace, attributes) : undefined;
    try {
      return await this.limit.run(
        () => {
          if (queued) endHop(queued.span);
          const session = this.session;
          if (!session || session.closed) throw new UpstreamUnavailableError(this.unavailableMessage());
          const callOpts = withinDeadline(opts);
          this.inFlight.set(session, (this.inFlight.get(session) ?? 0) + 1);
          const send = (sent: CallOptions) =>
            session.request(method, params, sent, this.unavailableMessage());
          const sending = opts.trace
            ? hop('diane.link', opts.trace, attributes, (ctx) =>
                send({ ...callOpts, meta: { ...callOpts.meta, ...metaFromContext(ctx) } }),
              )
            : send(callOpts);
          return sending.finally(() => {
            const left = (this.inFlight.get(session) ?? 1) - 1;
            if (left > 0) this.inFlight.set(session, left);
            else this.inFlight.delete(session);
          });
        },
        () =>
          new UpstreamUnavailableError(
            `Host ${this.name} is busy: too many calls in flight, try again later`,
          ),
        { signal: opts.signal, deadline: opts.deadline },
      );
    } catch (err) {
      if (queued?.span.isRecording()) endHop(queued.span, err);
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
