import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import {
  type AgentRequest,
  type JsonObject,
  type ProgressUpdate,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../mcp/upstream.js';
import { BusWireError } from './busErrors.js';
import { publishJson } from './busFrames.js';
import type { BusSettings } from './busSettings.js';
import {
  BUS_WIRE_VERSION,
  type BusErrorCode,
  busSubjects,
  type CallRequest,
  CallStreamSchema,
  type CatalogReply,
  CatalogReplySchema,
  type ControlMessage,
  clipText,
  type HostNotice,
  MAX_LEASED_URIS,
  type WireError,
} from './busWire.js';
import type { InboxDelivery, ReplyInbox } from './replyInbox.js';

/** What a caller's side of one forwarded call needs from its upstream. */
export interface RemoteCallHooks {
  signal: AbortSignal;
  onprogress?: (update: ProgressUpdate) => void;
  /** The holder's upstream asks the call's agent something. */
  ask?: (request: AgentRequest, signal: AbortSignal) => Promise<JsonObject>;
  /** The error a call gets when the holder cannot be reached (`Host X is not available`). */
  unavailable: () => Error;
  /** Aborted when the holder is known to be gone (its presence lapsed): calls fail at once. */
  lost?: AbortSignal;
}

type CallBody = Omit<CallRequest, 'v' | 'from'>;

interface ActiveCall {
  lastHeard: number;
  lastProgress: number;
  idleMs: number;
  hardDeadline: number;
  unavailable: () => Error;
  fail(err: Error, cancel: boolean): void;
}

/** How often running calls are checked for a silent holder and for their timeouts. */
const SWEEP_MS = 100;

/**
 * The calling master's end of forwarded calls and catalogue fetches: a call is one message to
 * the holder's call subject with a reply subject on which the holder streams progress, agent
 * requests, keepalives and the outcome. Cancellation and answers go to the holder's control
 * subject. A holder that says nothing for `keepaliveTimeoutMs` is gone: the call fails as
 * unavailable, like a slave link that drops mid-call.
 */
export class BusCallClient {
  private readonly active = new Set<ActiveCall>();
  private sweeper?: NodeJS.Timeout;
  private readonly subjects: ReturnType<typeof busSubjects>;

  constructor(
    private readonly nc: NatsConnection,
    private readonly masterId: string,
    private readonly inbox: ReplyInbox,
    private readonly settings: Pick<BusSettings, 'prefix' | 'keepaliveTimeoutMs' | 'catalogTimeoutMs'>,
    private readonly logger: Logger,
  ) {
    this.subjects = busSubjects(settings.prefix);
  }

  call(holder: string, body: CallBody, hooks: RemoteCallHooks): Promise<JsonObject> {
    if (hooks.signal.aborted) return Promise.reject(abortError(hooks.signal));
    return new Promise<JsonObject>((resolve, reject) => {
      const control = this.subjects.control(holder);
      const asks = new Map<number, AbortController>();
      let done = false;
      const now = Date.now();
      const active: ActiveCall = {
        lastHeard: now,
        lastProgress: now,
        idleMs: body.timeoutMs,
        hardDeadline: now + body.maxTotalMs,
        unavailable: hooks.unavailable,
        fail: (err, cancel) => finish(() => reject(err), cancel),
      };
      const finish = (settle: () => void, cancel: boolean) => {
        if (done) return;
        done = true;
        reply.close();
        this.untrack(active);
        hooks.signal.removeEventListener('abort', onAbort);
        hooks.lost?.removeEventListener('abort', onLost);
        for (const a of asks.values()) a.abort();
        if (cancel) this.sendControl(control, { t: 'cancel', callId: body.callId });
        settle();
      };
      const onAbort = () => finish(() => reject(abortError(hooks.signal)), true);
      const onLost = () => active.fail(hooks.unavailable(), false);
      const reply = this.inbox.open((delivery: InboxDelivery) => {
        if (delivery.kind === 'no-responders') return active.fail(hooks.unavailable(), false);
        active.lastHeard = Date.now();
        if (delivery.kind === 'part') return;
        const parsed = CallStreamSchema.safeParse(delivery.value);
        if (!parsed.success) {
          this.logger.warn({ holder }, 'bus: dropped a malformed call message');
          return;
        }
        const m = parsed.data;
        switch (m.t) {
          case 'alive':
            return;
          case 'progress':
            active.lastProgress = active.lastHeard;
            hooks.onprogress?.({
              progress: m.progress,
              ...(m.total === undefined ? {} : { total: m.total }),
              ...(m.message === undefined ? {} : { message: m.message }),
            });
            return;
          case 'ask':
            return this.answer(
              control,
              body.callId,
              m.askId,
              { method: m.method, params: m.params },
              asks,
              hooks,
            );
          case 'result':
            return finish(() => resolve(m.result), false);
          case 'error':
            return finish(() => reject(localError(m.error, hooks)), false);
        }
      });
      hooks.signal.addEventListener('abort', onAbort, { once: true });
      if (hooks.lost?.aborted) return active.fail(hooks.unavailable(), false);
      hooks.lost?.addEventListener('abort', onLost, { once: true });
      this.track(active);
      const request: CallRequest = { v: BUS_WIRE_VERSION, from: this.masterId, ...body };
      try {
        publishJson(this.nc, this.subjects.call(holder), request, reply.subject);
      } catch (err) {
        active.fail(
          new UpstreamUnavailableError(`${hooks.unavailable().message}: ${(err as Error).message}`),
          false,
        );
      }
    });
  }

  private answer(
    control: string,
    callId: string,
    askId: number,
    request: AgentRequest,
    asks: Map<number, AbortController>,
    hooks: RemoteCallHooks,
  ): void {
    const abort = new AbortController();
    asks.set(askId, abort);
    const asking = hooks.ask
      ? hooks.ask(request, abort.signal)
      : Promise.reject(
          new ProtocolError(ProtocolErrorCode.InvalidRequest, `${request.method}: no agent to ask`),
        );
    asking
      .then(
        (result) => this.sendControl(control, { t: 'answer', callId, askId, result }),
        (err) => {
          const e = err instanceof ProtocolError ? err : undefined;
          this.sendControl(control, {
            t: 'answer',
            callId,
            askId,
            error: {
              rpcCode: e?.code ?? ProtocolErrorCode.InternalError,
              message: clipText((err as Error).message ?? String(err)),
              ...(e?.data === undefined ? {} : { data: e.data }),
            },
          });
        },
      )
      .finally(() => asks.delete(askId));
  }

  /** Asks the holder for a host's catalogue (tools, prompts, resources, capabilities). */
  fetchCatalog(holder: string, hostId: string): Promise<Extract<CatalogReply, { t: 'catalog' }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reply.close();
        reject(
          new UpstreamUnavailableError(`the catalogue of ${hostId} did not come from ${holder} in time`),
        );
      }, this.settings.catalogTimeoutMs);
      timer.unref();
      const reply = this.inbox.open((delivery) => {
        if (delivery.kind === 'part') return;
        clearTimeout(timer);
        reply.close();
        if (delivery.kind === 'no-responders') {
          return reject(new UpstreamUnavailableError(`master ${holder} does not answer on the bus`));
        }
        const parsed = CatalogReplySchema.safeParse(delivery.value);
        if (!parsed.success)
          return reject(new BusWireError('internal', `a malformed catalogue of ${hostId}`));
        if (parsed.data.t === 'error') {
          return reject(new BusWireError(parsed.data.error.code, parsed.data.error.message));
        }
        resolve(parsed.data);
      });
      publishJson(this.nc, this.subjects.catalog(holder), { v: BUS_WIRE_VERSION, hostId }, reply.subject);
    });
  }

  /** Tells the holder that this master's agents want updates of exactly `uris` of the host. */
  leaseSubscriptions(holder: string, hostId: string, uris: readonly string[]): void {
    this.notice(holder, {
      t: 'subscriptions',
      v: BUS_WIRE_VERSION,
      from: this.masterId,
      hostId,
      uris: uris.slice(0, MAX_LEASED_URIS),
    });
  }

  /** Tells the holder that an agent's roots changed, for it to tell the host. */
  rootsChanged(holder: string, hostId: string): void {
    this.notice(holder, { t: 'roots-changed', v: BUS_WIRE_VERSION, from: this.masterId, hostId });
  }

  private notice(holder: string, message: HostNotice): void {
    try {
      publishJson(this.nc, this.subjects.hostNotices(holder), message);
    } catch (err) {
      // The next lease renewal tries again; a lost roots notice costs a stale roots cache at worst.
      this.logger.warn({ holder, t: message.t, err: (err as Error).message }, 'bus: could not send a notice');
    }
  }

  private sendControl(subject: string, message: ControlMessage): void {
    try {
      publishJson(this.nc, subject, message);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'bus: could not send a call control message');
    }
  }

  private track(call: ActiveCall): void {
    this.active.add(call);
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  private untrack(call: ActiveCall): void {
    this.active.delete(call);
  }

  private sweep(): void {
    // Stopped on the first tick without calls rather than after each call: back-to-back calls
    // would otherwise pay for a timer each.
    if (this.active.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = Date.now();
    for (const call of [...this.active]) {
      if (now >= call.hardDeadline || now - call.lastProgress >= call.idleMs) {
        call.fail(new UpstreamTimeoutError('the call timed out on the bus'), true);
      } else if (now - call.lastHeard >= this.settings.keepaliveTimeoutMs) {
        // The holder is gone (or cut off): like a link that drops mid-call.
        call.fail(call.unavailable(), true);
      }
    }
  }

  /** Fails every call in flight: this master is stopping. */
  failAll(): void {
    for (const call of [...this.active]) call.fail(call.unavailable(), true);
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

function localError(wire: WireError, hooks: RemoteCallHooks): Error {
  const code: BusErrorCode = wire.code;
  switch (code) {
    case 'unavailable':
      return hooks.unavailable();
    case 'timeout':
      return new UpstreamTimeoutError(wire.message);
    case 'protocol':
      return ProtocolError.fromError(
        wire.rpcCode ?? ProtocolErrorCode.InternalError,
        wire.message,
        wire.data,
      );
    default:
      return new BusWireError(code, wire.message, wire.rpcCode, wire.data);
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('the call was cancelled');
}
