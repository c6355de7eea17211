import { ProtocolError, ProtocolErrorCode, type ServerCapabilities } from '@modelcontextprotocol/client';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import { CALL_META_KEY } from '../mcp/resourceUris.js';
import type { SharedSubscriptions } from '../mcp/sharedSubscriptions.js';
import { contextFromMeta } from '../mcp/tracing.js';
import {
  type AgentRequest,
  type JsonObject,
  type Upstream,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../mcp/upstream.js';
import { BusProtocolError } from './busErrors.js';
import { FrameAssembler, publishJson } from './busFrames.js';
import type { BusSettings } from './busSettings.js';
import {
  busSubjects,
  type CallRequest,
  CallRequestSchema,
  type CallStreamMessage,
  CatalogRequestSchema,
  ControlSchema,
  clipText,
  type HostNotice,
  HostNoticeSchema,
  type WireError,
} from './busWire.js';

/** The hosts whose links this master holds, as the bus serves them. */
export interface HeldHosts {
  /** The live local upstream of a host (its SlaveUpstream), never a remote one. */
  upstreamOf(hostId: string): Upstream | undefined;
  /** The resource subscriptions of the host's link, kept whether it is up or not. */
  subscriptionsOf(hostId: string): SharedSubscriptions | undefined;
  /** The catalogue revision announced for the host. */
  revisionOf(hostId: string): number;
}

/** Another master's subscriptions to one host, and when they lapse unless renewed. */
interface Lease {
  hostId: string;
  master: string;
  expiresAt: number;
}

interface RunningCall {
  request: CallRequest;
  reply: string;
  abort: AbortController;
  asks: Map<number, { resolve: (r: JsonObject) => void; reject: (e: Error) => void }>;
  nextAsk: number;
}

const TRACE_KEYS = new Set(['traceparent', 'tracestate']);

/**
 * The holder's end of forwarded calls: runs them on the local upstream of the host (the
 * SlaveUpstream, not the agent namespace: the calling master already resolved the name and
 * applied its agent's scope), streams progress, questions for the agent and the outcome back on
 * the call's reply subject, and says it is alive while the call runs. Its own cap
 * (`maxCallMs`) applies whatever the caller asked.
 */
export class BusCallServer {
  private readonly calls = new Map<string, RunningCall>();
  private readonly subs: Subscription[] = [];
  private readonly assembler = new FrameAssembler();
  private keepalive?: NodeJS.Timeout;
  /** `<hostId>\0<master>` → the lease on that master's subscriptions to the host. */
  private readonly leases = new Map<string, Lease>();
  private leaseSweeper?: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly masterId: string,
    private readonly settings: Pick<BusSettings, 'prefix' | 'keepaliveMs' | 'maxCallMs' | 'presenceTtlMs'>,
    private readonly hosts: HeldHosts,
    private readonly logger: Logger,
  ) {}

  start(): void {
    const subjects = busSubjects(this.settings.prefix);
    this.subs.push(
      this.nc.subscribe(subjects.call(this.masterId), {
        callback: (err, msg) => {
          if (!err) this.onCall(msg);
        },
      }),
      this.nc.subscribe(subjects.control(this.masterId), {
        callback: (err, msg) => {
          if (!err) this.onControl(msg);
        },
      }),
      this.nc.subscribe(subjects.catalog(this.masterId), {
        callback: (err, msg) => {
          if (!err) this.onCatalog(msg);
        },
      }),
      this.nc.subscribe(subjects.hostNotices(this.masterId), {
        callback: (err, msg) => {
          if (!err) this.onNotice(msg);
        },
      }),
    );
  }

  /** Calls running here for other masters. */
  get inFlight(): number {
    return this.calls.size;
  }

  private decode(msg: Msg): unknown {
    try {
      return this.assembler.accept(msg);
    } catch (err) {
      if (!(err instanceof BusProtocolError)) throw err;
      this.logger.warn({ subject: msg.subject, err: err.message }, 'bus: dropped a malformed message');
      return undefined;
    }
  }

  private onCall(msg: Msg): void {
    const value = this.decode(msg);
    if (value === undefined || !msg.reply) return;
    const parsed = CallRequestSchema.safeParse(value);
    if (!parsed.success) {
      this.send(msg.reply, { t: 'error', error: { code: 'internal', message: 'a malformed call request' } });
      return;
    }
    const request = parsed.data;
    const upstream = this.hosts.upstreamOf(request.hostId);
    if (!upstream || this.calls.has(request.callId)) {
      const message = upstream
        ? 'a call with this id is already running'
        : `Host ${request.hostId} is not available`;
      this.send(msg.reply, { t: 'error', error: { code: upstream ? 'internal' : 'unavailable', message } });
      return;
    }
    this.run(upstream, request, msg.reply);
  }

  private run(upstream: Upstream, request: CallRequest, reply: string): void {
    const call: RunningCall = { request, reply, abort: new AbortController(), asks: new Map(), nextAsk: 0 };
    this.calls.set(request.callId, call);
    this.armKeepalive();
    const maxTotalMs = Math.min(request.maxTotalMs, this.settings.maxCallMs);
    const meta: Record<string, string> = {};
    let traced = false;
    for (const [key, value] of Object.entries(request.meta ?? {})) {
      if (TRACE_KEYS.has(key)) traced = true;
      else meta[key] = value;
    }
    const running =
      request.method === 'resources/subscribe' || request.method === 'resources/unsubscribe'
        ? this.subscription(request.method, request)
        : upstream.request(request.method, request.params, {
            signal: call.abort.signal,
            onprogress: (update) =>
              this.send(reply, {
                t: 'progress',
                ...update,
                ...(update.message === undefined ? {} : { message: clipText(update.message) }),
              }),
            timeoutMs: Math.min(request.timeoutMs, maxTotalMs),
            maxTotalMs,
            deadline: Date.now() + maxTotalMs,
            meta,
            ...(traced ? { trace: contextFromMeta(request.meta) } : {}),
          });
    running
      .then(
        (result) => this.send(reply, { t: 'result', result }),
        (err) => this.send(reply, { t: 'error', error: wireError(err, call.abort.signal.aborted) }),
      )
      .finally(() => this.end(call));
  }

  /**
   * Another master's subscribe or unsubscribe: counted under its id in the link's shared
   * subscriptions, so that it changes nothing for this master's agents or any other master's.
   */
  private subscription(
    method: 'resources/subscribe' | 'resources/unsubscribe',
    request: CallRequest,
  ): Promise<JsonObject> {
    const subscriptions = this.hosts.subscriptionsOf(request.hostId);
    const uri = request.params.uri;
    if (!subscriptions)
      return Promise.reject(new UpstreamUnavailableError(`Host ${request.hostId} is not available`));
    if (typeof uri !== 'string') {
      return Promise.reject(
        new ProtocolError(ProtocolErrorCode.InvalidParams, `${method}: uri must be a string`),
      );
    }
    if (method === 'resources/unsubscribe') {
      const done = subscriptions.unsubscribe(request.from, uri);
      if (subscriptions.urisOf(request.from).length === 0) this.endLease(request.hostId, request.from);
      return done;
    }
    this.renewLease(request.hostId, request.from);
    return subscriptions.subscribe(request.from, uri);
  }

  private onNotice(msg: Msg): void {
    const parsed = HostNoticeSchema.safeParse(this.decode(msg));
    if (!parsed.success) {
      this.logger.warn({ subject: msg.subject }, 'bus: dropped a malformed host notice');
      return;
    }
    const notice: HostNotice = parsed.data;
    // Only for a link held here now: a lease for a link that moved is the new holder's business.
    const upstream = this.hosts.upstreamOf(notice.hostId);
    if (!upstream) return;
    switch (notice.t) {
      case 'subscriptions': {
        this.hosts.subscriptionsOf(notice.hostId)?.replace(notice.from, notice.uris);
        if (notice.uris.length > 0) this.renewLease(notice.hostId, notice.from);
        else this.endLease(notice.hostId, notice.from);
        return;
      }
      case 'roots-changed':
        upstream.notifyRootsChanged?.();
        return;
      default: {
        const unhandled: never = notice;
        return unhandled;
      }
    }
  }

  private renewLease(hostId: string, master: string): void {
    this.leases.set(`${hostId}\u0000${master}`, {
      hostId,
      master,
      expiresAt: Date.now() + this.settings.presenceTtlMs,
    });
    if (this.leaseSweeper) return;
    this.leaseSweeper = setInterval(
      () => this.sweepLeases(),
      Math.min(1_000, this.settings.presenceTtlMs / 4),
    );
    this.leaseSweeper.unref();
  }

  private endLease(hostId: string, master: string): void {
    this.leases.delete(`${hostId}\u0000${master}`);
  }

  /** A master that stopped renewing its lease is gone: its subscriptions must not outlive it. */
  private sweepLeases(): void {
    const now = Date.now();
    for (const [key, lease] of this.leases) {
      if (lease.expiresAt > now) continue;
      this.leases.delete(key);
      this.logger.info(
        { host: lease.hostId, master: lease.master },
        "bus: a master's subscription lease lapsed; dropping its subscriptions",
      );
      this.hosts.subscriptionsOf(lease.hostId)?.drop(lease.master);
    }
    if (this.leases.size === 0) {
      clearInterval(this.leaseSweeper);
      this.leaseSweeper = undefined;
    }
  }

  private end(call: RunningCall): void {
    if (this.calls.get(call.request.callId) === call) this.calls.delete(call.request.callId);
    for (const ask of call.asks.values()) ask.reject(new Error('the call is over'));
    call.asks.clear();
  }

  private armKeepalive(): void {
    if (this.keepalive) return;
    this.keepalive = setInterval(() => {
      // Stopped on the first tick without calls, not after each call: back-to-back calls would
      // otherwise pay for a timer each.
      if (this.calls.size === 0) {
        clearInterval(this.keepalive);
        this.keepalive = undefined;
        return;
      }
      for (const call of this.calls.values()) this.send(call.reply, { t: 'alive' });
    }, this.settings.keepaliveMs);
    this.keepalive.unref();
  }

  private onControl(msg: Msg): void {
    const parsed = ControlSchema.safeParse(this.decode(msg));
    if (!parsed.success) return;
    const m = parsed.data;
    const call = this.calls.get(m.callId);
    if (!call) return;
    if (m.t === 'cancel') {
      call.abort.abort(new Error(m.reason ?? 'cancelled by the calling master'));
      return;
    }
    const ask = call.asks.get(m.askId);
    if (!ask) return;
    call.asks.delete(m.askId);
    if (m.error) ask.reject(new ProtocolError(m.error.rpcCode, m.error.message, m.error.data));
    else ask.resolve(m.result ?? {});
  }

  /**
   * A request of a host's upstream to an agent, for a call forwarded here: it goes back to the
   * calling master, which hands it to the call's agent. `undefined` when the call it names is not
   * one of ours (the router routes it as usual).
   */
  claimAgentRequest(
    upstream: string,
    request: AgentRequest,
    signal: AbortSignal,
  ): Promise<JsonObject> | undefined {
    const callId = (request.params._meta as JsonObject | undefined)?.[CALL_META_KEY];
    const call = typeof callId === 'string' ? this.calls.get(callId) : undefined;
    if (!call || call.request.hostId !== upstream) return undefined;
    const askId = ++call.nextAsk;
    return new Promise<JsonObject>((resolve, reject) => {
      const onAbort = () => {
        call.asks.delete(askId);
        reject(new ProtocolError(ProtocolErrorCode.InternalError, 'the request was cancelled'));
      };
      call.asks.set(askId, {
        resolve: (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
      this.send(call.reply, {
        t: 'ask',
        askId,
        method: request.method,
        params: request.params,
      });
    });
  }

  private onCatalog(msg: Msg): void {
    const value = this.decode(msg);
    if (value === undefined || !msg.reply) return;
    const parsed = CatalogRequestSchema.safeParse(value);
    if (!parsed.success) {
      this.publish(msg.reply, {
        t: 'error',
        error: { code: 'internal', message: 'a malformed catalogue request' },
      });
      return;
    }
    const { hostId } = parsed.data;
    const upstream = this.hosts.upstreamOf(hostId);
    if (!upstream) {
      this.publish(msg.reply, {
        t: 'error',
        error: { code: 'unavailable', message: `Host ${hostId} is not available` },
      });
      return;
    }
    const capabilities: ServerCapabilities | undefined = upstream.serverCapabilities();
    this.publish(msg.reply, {
      t: 'catalog',
      revision: this.hosts.revisionOf(hostId),
      catalog: upstream.catalog(),
      ...(capabilities ? { capabilities } : {}),
    });
  }

  private send(subject: string, message: CallStreamMessage): void {
    this.publish(subject, message);
  }

  private publish(subject: string, message: unknown): void {
    try {
      publishJson(this.nc, subject, message);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'bus: could not send a reply');
    }
  }

  /** Cancels what runs here for other masters and stops listening. */
  close(): void {
    for (const sub of this.subs) sub.unsubscribe();
    for (const call of this.calls.values()) {
      // Told first: to the caller this is the host going away, not a cancellation.
      this.send(call.reply, {
        t: 'error',
        error: { code: 'unavailable', message: `Host ${call.request.hostId} is not available` },
      });
      call.abort.abort(new Error('the master is shutting down'));
    }
    clearInterval(this.keepalive);
    clearInterval(this.leaseSweeper);
  }
}

/** A local failure in the words of the wire. */
function wireError(err: unknown, cancelled: boolean): WireError {
  const message = clipText(err instanceof Error ? err.message : String(err));
  if (err instanceof UpstreamUnavailableError) return { code: 'unavailable', message };
  if (err instanceof UpstreamTimeoutError) return { code: 'timeout', message };
  if (err instanceof ProtocolError) {
    return {
      code: 'protocol',
      message,
      rpcCode: err.code,
      ...(err.data === undefined ? {} : { data: err.data }),
    };
  }
  if (cancelled) return { code: 'cancelled', message };
  return { code: 'internal', message };
}
