import { randomUUID } from 'node:crypto';
import type {
  ServerCapabilities,
  LoggingMessageNotificationParams as UpstreamLogParams,
} from '@modelcontextprotocol/client';
import type { Logger } from '../log.js';
import { CALL_META_KEY } from '../mcp/resourceUris.js';
import { metaFromContext } from '../mcp/tracing.js';
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
import type { BusCallClient } from './busCallClient.js';
import type { HostEvent, PresenceEntry } from './busWire.js';

/** Where a remote host's link is now, from its presence entry. */
export interface RemoteHolder {
  master: string;
  since: Date;
  revision: number;
  /** The serial of the certificate the holder's link was opened with. */
  serial: string;
}

/**
 * A paired host whose link another master holds, as this master's router sees it: one more
 * upstream named by the host id, whose catalogue is the holder's copy and whose calls cross the
 * bus to the holder (busCallClient.ts). It is connected while the host's presence entry is live;
 * without one it is offline and calls get `Host X is not available`, as for a local slave.
 */
export class RemoteHostUpstream implements Upstream {
  readonly kind = 'slave' as const;
  get host(): string {
    return this.name;
  }
  agentRequests?: AgentRequestHandler;
  private holderNow?: RemoteHolder;
  private catalogNow: UpstreamCatalog = EMPTY_CATALOG;
  private capabilities?: ServerCapabilities;
  /** The revision of the catalogue held, and the one being fetched. */
  private catalogRevision?: string;
  private fetching?: string;
  private lastError?: string;
  private holderChanges = 0;
  /** Aborted when the holder goes away: its calls in flight fail at once. */
  private lost = new AbortController();
  private readonly events = new UpstreamEvents();
  private retry?: NodeJS.Timeout;
  /**
   * The host's URIs this master's router subscribed to (it subscribes once per URI, whatever the
   * number of its agents), leased to the holder and sent again when the link moves.
   */
  private readonly subscribed = new Set<string>();

  constructor(
    readonly name: string,
    private readonly client: BusCallClient,
    private readonly logger: Logger,
  ) {}

  /** The master holding the host's link, or `undefined` when no master does. */
  get holder(): RemoteHolder | undefined {
    return this.holderNow;
  }

  /** A presence entry of another master for this host, or its end (`undefined`). */
  setPresence(entry: PresenceEntry | undefined): void {
    const before = this.holderNow;
    if (!entry) {
      if (!before) return;
      this.holderNow = undefined;
      this.goOffline();
      return;
    }
    const since = new Date(entry.since);
    if (before && before.master !== entry.master) {
      // The link moved: what the old holder had running there is lost with its link.
      this.lost.abort();
      this.lost = new AbortController();
    }
    this.holderNow = { master: entry.master, since, revision: entry.revision, serial: entry.serial };
    if (!before || before.master !== entry.master) this.holderChanges++;
    if (!before) this.events.emit({ type: 'state' });
    // A new link (on another master, or the same one) starts without subscriptions, and the
    // router hears of no reconnect when the entry is replaced without lapsing first: the lease
    // tells the new link's holder at once. After a lapse the router subscribes again itself.
    else if (before.master !== entry.master || before.since.getTime() !== since.getTime())
      this.renewSubscriptions();
    void this.refreshCatalog();
  }

  /** Tells the holder which URIs this master still wants updates of (every presence heartbeat). */
  renewSubscriptions(): void {
    const holder = this.holderNow;
    if (holder && this.subscribed.size > 0)
      this.client.leaseSubscriptions(holder.master, this.name, [...this.subscribed]);
  }

  /** An agent's roots changed: the holder tells the host, as this master tells its own links. */
  notifyRootsChanged(): void {
    const holder = this.holderNow;
    if (holder) this.client.rootsChanged(holder.master, this.name);
  }

  private goOffline(): void {
    // The router subscribes again when the host comes back, and forgets, without telling the
    // host, what its agents let go of meanwhile.
    this.subscribed.clear();
    this.lost.abort();
    this.lost = new AbortController();
    clearTimeout(this.retry);
    this.catalogNow = EMPTY_CATALOG;
    this.capabilities = undefined;
    this.catalogRevision = undefined;
    this.fetching = undefined;
    this.events.emit({ type: 'state' });
    this.events.emitWholeCatalog();
  }

  /** Fetches the catalogue from the holder unless the one held is of the announced revision. */
  private async refreshCatalog(): Promise<void> {
    const holder = this.holderNow;
    if (!holder) return;
    const wanted = `${holder.master}/${holder.since.getTime()}/${holder.revision}`;
    if (this.catalogRevision === wanted || this.fetching === wanted) return;
    this.fetching = wanted;
    clearTimeout(this.retry);
    try {
      const reply = await this.client.fetchCatalog(holder.master, this.name);
      if (this.fetching !== wanted) return;
      this.fetching = undefined;
      this.catalogRevision = wanted;
      this.catalogNow = reply.catalog as unknown as UpstreamCatalog;
      this.capabilities = reply.capabilities as ServerCapabilities | undefined;
      this.lastError = undefined;
      this.events.emitWholeCatalog();
    } catch (err) {
      if (this.fetching !== wanted) return;
      this.fetching = undefined;
      this.lastError = (err as Error).message;
      this.logger.warn(
        { host: this.name, holder: holder.master, err: this.lastError },
        'bus: catalogue fetch failed',
      );
      // Tried again soon, and at the latest with the holder's next renewal.
      this.retry = setTimeout(() => void this.refreshCatalog(), 1_000);
      this.retry.unref();
    }
  }

  /** A log message or resource update of the host, from the master that holds its link. */
  relay(event: HostEvent): void {
    if (event.master !== this.holderNow?.master) return;
    if (event.t === 'log') {
      this.events.emit({ type: 'log', params: event.params as UpstreamLogParams });
    } else {
      this.events.emit({ type: 'resource-updated', uri: event.uri });
    }
  }

  get connected(): boolean {
    return this.holderNow !== undefined;
  }

  status(): UpstreamStatus {
    return {
      name: this.name,
      kind: 'slave',
      state: this.connected ? 'connected' : 'offline',
      ...catalogCounts(this.catalogNow),
      restarts: Math.max(0, this.holderChanges - 1),
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      ...(this.holderNow ? { connectedAt: this.holderNow.since.toISOString() } : {}),
    };
  }

  catalog(): UpstreamCatalog {
    return this.catalogNow;
  }

  serverCapabilities(): ServerCapabilities | undefined {
    return this.connected ? this.capabilities : undefined;
  }

  unavailableMessage(): string {
    return `Host ${this.name} is not available`;
  }

  request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    // The holder's own router sets the host's log level (the most verbose any of its agents
    // wants); another master changing it would change it for them too. Logs are relayed at
    // that level and filtered per agent session here.
    if (method === 'logging/setLevel') return Promise.resolve({});
    const holder = this.holderNow;
    if (!holder) return Promise.reject(new UpstreamUnavailableError(this.unavailableMessage()));
    if (method === 'resources/subscribe' || method === 'resources/unsubscribe') {
      return this.changeSubscription(method, params, opts);
    }
    return this.send(holder, method, params, opts);
  }

  /**
   * Noted before it is sent, so that a lease sent meanwhile already says so (the holder then
   * counts it once); a refused subscribe is taken back.
   */
  private changeSubscription(
    method: 'resources/subscribe' | 'resources/unsubscribe',
    params: JsonObject,
    opts: CallOptions,
  ): Promise<JsonObject> {
    const holder = this.holderNow!;
    const uri = params.uri;
    if (typeof uri !== 'string') return this.send(holder, method, params, opts);
    if (method === 'resources/unsubscribe') {
      this.subscribed.delete(uri);
      return this.send(holder, method, params, opts);
    }
    const had = this.subscribed.has(uri);
    this.subscribed.add(uri);
    return this.send(holder, method, params, opts).catch((err: unknown) => {
      if (!had) this.subscribed.delete(uri);
      throw err;
    });
  }

  private send(
    holder: RemoteHolder,
    method: ForwardedMethod,
    params: JsonObject,
    opts: CallOptions,
  ): Promise<JsonObject> {
    const left = opts.deadline === undefined ? opts.maxTotalMs : opts.deadline - Date.now();
    if (left <= 0)
      return Promise.reject(new UpstreamTimeoutError('the time was up before the call could be sent'));
    const meta: Record<string, string> = {};
    for (const [key, value] of Object.entries(opts.meta ?? {}))
      if (typeof value === 'string') meta[key] = value;
    if (opts.trace) Object.assign(meta, metaFromContext(opts.trace));
    // Requests outside the router's calls (completion, subscriptions) carry no call id of their own.
    const callId = meta[CALL_META_KEY] ?? randomUUID();
    return this.client.call(
      holder.master,
      {
        callId,
        hostId: this.name,
        method,
        params,
        ...(Object.keys(meta).length > 0 ? { meta } : {}),
        timeoutMs: Math.max(1, Math.min(opts.timeoutMs, left)),
        maxTotalMs: Math.max(1, Math.min(opts.maxTotalMs, left)),
      },
      {
        signal: opts.signal,
        ...(opts.onprogress ? { onprogress: opts.onprogress } : {}),
        ask: (request, signal) => {
          const handler = this.agentRequests;
          if (!handler) return Promise.reject(new UpstreamUnavailableError(this.unavailableMessage()));
          return handler(request, signal);
        },
        unavailable: () => new UpstreamUnavailableError(this.unavailableMessage()),
        lost: this.lost.signal,
      },
    );
  }

  subscribe(listener: (event: UpstreamEvent) => void): () => void {
    return this.events.subscribe(listener);
  }

  async stop(): Promise<void> {
    clearTimeout(this.retry);
    this.lost.abort();
    // An empty lease: the holder drops this master's subscriptions now rather than at expiry.
    const holder = this.holderNow;
    if (holder && this.subscribed.size > 0) this.client.leaseSubscriptions(holder.master, this.name, []);
    this.subscribed.clear();
  }
}
