import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { nuid } from '@nats-io/transport-node';
import type { SlaveRegistry } from '../cluster/slaveRegistry.js';
import type { SlaveUpstream } from '../cluster/slaveUpstream.js';
import { CloseCode } from '../cluster/webSocketTransport.js';
import type { Logger } from '../log.js';
import type { Router } from '../mcp/router.js';
import { BusCallClient } from './busCallClient.js';
import { BusCallServer } from './busCallServer.js';
import { BusConnection } from './busConnection.js';
import { publishJson } from './busFrames.js';
import type { BusSettings } from './busSettings.js';
import {
  busSubjects,
  type HostEvent,
  HostEventSchema,
  type LinkEvent,
  type LinkEventKind,
  type PresenceEntry,
} from './busWire.js';
import { LinkEvents } from './linkEvents.js';
import { PresenceBoard } from './presence.js';
import { RemoteHostUpstream } from './remoteHostUpstream.js';
import { ReplyInbox } from './replyInbox.js';

export interface MasterBusOptions {
  masterId: string;
  settings: BusSettings;
  router: Pick<Router, 'claimAgentRequests'>;
  registry: Pick<
    SlaveRegistry,
    'get' | 'linked' | 'setRemote' | 'onLinkChange' | 'syncFromStore' | 'removeHost'
  >;
  logger: Logger;
}

/** Coalesces the burst of list events of one change (a link announces every list at once). */
const ANNOUNCE_DEBOUNCE_MS = 20;

/**
 * One master's part of the bus, wired to its router and slave registry:
 * - its own links are announced in the presence bucket (with a revision bumped when their lists
 *   change) and served to other masters (BusCallServer);
 * - the links other masters hold become RemoteHostUpstreams routed under their host ids;
 * - revocations and re-pairs decided here are announced, and those decided elsewhere cut the
 *   links held here.
 * It starts without waiting for NATS: the master serves its own links meanwhile.
 */
export class MasterBus {
  private readonly connection: BusConnection;
  private readonly started: Promise<void>;
  private presence?: PresenceBoard;
  private server?: BusCallServer;
  private client?: BusCallClient;
  private inbox?: ReplyInbox;
  private events?: LinkEvents;
  private readonly remotes = new Map<string, RemoteHostUpstream>();
  private readonly revisions = new Map<string, number>();
  private readonly announcing = new Map<string, NodeJS.Timeout>();
  private readonly unhook: (() => void)[] = [];
  /** Local slaves whose log messages and resource updates are relayed to the other masters. */
  private readonly relayed = new Set<SlaveUpstream>();
  private hostEvents?: Subscription;
  private nc?: NatsConnection;
  private storeRefresh?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: MasterBusOptions) {
    this.connection = new BusConnection({
      servers: opts.settings.servers,
      name: `diane-master-${opts.masterId}`,
      retryMs: opts.settings.connectRetryMs,
      logger: opts.logger,
    });
    // Link events are not persisted: one lost (or a holder that died before acting on it) would
    // leave a revoked host routable from a stale presence entry. The store decides, read again
    // on this timer as well as on every link event and reconnect.
    this.storeRefresh = setInterval(() => this.resync(), opts.settings.storeRefreshMs);
    this.storeRefresh.unref();
    this.started = this.start();
    this.started.catch((err) => {
      if (!this.closed) opts.logger.error({ err: (err as Error).message }, 'bus: could not start');
    });
  }

  get masterId(): string {
    return this.opts.masterId;
  }

  /** Connected to NATS now (`diane info`). */
  get connected(): boolean {
    return this.connection.isUp && this.presence !== undefined;
  }

  /** Resolves once connected and serving (tests; the daemon does not wait). */
  ready(): Promise<void> {
    return this.started;
  }

  private async start(): Promise<void> {
    const { masterId, settings, logger, registry } = this.opts;
    const nc = await this.connection.ready();
    if (this.closed) return;
    this.nc = nc;
    this.hostEvents = nc.subscribe(busSubjects(settings.prefix).allHostEvents, {
      callback: (err, msg) => {
        if (err) return;
        const hostId = msg.subject.split('.').at(-2) ?? '';
        const parsed = HostEventSchema.safeParse(safeJson(msg.string()));
        if (parsed.success) this.remotes.get(hostId)?.relay(parsed.data);
      },
    });
    this.inbox = new ReplyInbox(nc, busSubjects(settings.prefix).inbox(masterId, nuid.next()), logger);
    this.client = new BusCallClient(nc, masterId, this.inbox, settings, logger);
    const server = new BusCallServer(
      nc,
      masterId,
      settings,
      {
        upstreamOf: (hostId) => {
          const slave = registry.get(hostId);
          return slave?.connected ? slave : undefined;
        },
        subscriptionsOf: (hostId) => registry.get(hostId)?.subscriptions,
        revisionOf: (hostId) => this.revisions.get(hostId) ?? 0,
      },
      logger,
    );
    this.server = server;
    server.start();
    this.unhook.push(this.opts.router.claimAgentRequests((u, r, s) => server.claimAgentRequest(u, r, s)));
    this.events = new LinkEvents(nc, settings.prefix, masterId, (e) => this.onLinkEvent(e), logger);
    const presence = await this.openPresence(nc);
    if (this.closed) {
      await presence.close();
      return;
    }
    this.presence = presence;
    this.unhook.push(this.presence.onChange((hostId, entry) => this.onPresence(hostId, entry)));
    for (const [hostId, entry] of this.presence.entries()) this.onPresence(hostId, entry);
    this.unhook.push(registry.onLinkChange((hostId, slave) => this.onLocalLink(hostId, slave)));
    // Subscription leases ride on the presence heartbeat: a holder gives up on a master's
    // subscriptions after a presence TTL without one, as other masters give up on a link.
    const leases = setInterval(() => {
      for (const remote of this.remotes.values()) remote.renewSubscriptions();
    }, settings.presenceHeartbeatMs);
    leases.unref();
    this.unhook.push(() => clearInterval(leases));
    // Links that came up before the bus did.
    for (const slave of registry.linked()) this.onLocalLink(slave.name, slave);
    this.unhook.push(
      this.connection.onReconnect(() => {
        // Events sent while cut off were missed: the store says what is revoked or superseded.
        this.resync();
        void this.presence?.reopen();
      }),
    );
    logger.info(
      { master: masterId, prefix: settings.prefix },
      "bus: serving this master's links to the cluster",
    );
  }

  /** JetStream may come up after NATS itself: keep trying, like the connection. */
  private async openPresence(nc: Awaited<ReturnType<BusConnection['ready']>>): Promise<PresenceBoard> {
    const { masterId, settings, logger } = this.opts;
    for (let attempt = 1; ; attempt++) {
      try {
        return await PresenceBoard.open(nc, {
          prefix: settings.prefix,
          masterId,
          ttlMs: settings.presenceTtlMs,
          heartbeatMs: settings.presenceHeartbeatMs,
          logger,
        });
      } catch (err) {
        if (this.closed) throw err;
        if (attempt === 1 || attempt % 10 === 0) {
          logger.error(
            { err: (err as Error).message, attempt },
            'bus: cannot open the presence bucket (is JetStream on?); retrying',
          );
        }
        await new Promise((resolve) => setTimeout(resolve, settings.connectRetryMs).unref());
      }
    }
  }

  /** One of this master's links came, went, or changed its lists. */
  private onLocalLink(hostId: string, slave: SlaveUpstream): void {
    if (!this.presence) return;
    this.relayEventsOf(hostId, slave);
    if (!slave.connected) {
      clearTimeout(this.announcing.get(hostId));
      this.announcing.delete(hostId);
      void this.presence.withdraw(hostId);
      return;
    }
    if (this.announcing.has(hostId)) return;
    const timer = setTimeout(() => {
      this.announcing.delete(hostId);
      const link = slave.linkInfo();
      if (!slave.connected || !link || !this.presence) return;
      const revision = (this.revisions.get(hostId) ?? 0) + 1;
      this.revisions.set(hostId, revision);
      void this.presence.announce(hostId, { since: link.connectedAt, serial: link.certSerial, revision });
    }, ANNOUNCE_DEBOUNCE_MS);
    timer.unref();
    this.announcing.set(hostId, timer);
  }

  /**
   * The slave's log messages and resource updates go to the bus too: other masters' agents may
   * have subscribed to its resources or want its logs. NATS drops them when nobody listens.
   */
  private relayEventsOf(hostId: string, slave: SlaveUpstream): void {
    if (this.relayed.has(slave)) return;
    this.relayed.add(slave);
    const subject = busSubjects(this.opts.settings.prefix).hostEvents(hostId);
    const master = this.opts.masterId;
    this.unhook.push(
      slave.subscribe((event) => {
        if (!this.nc || !slave.connected) return;
        let message: HostEvent;
        if (event.type === 'log') message = { t: 'log', master, params: event.params };
        else if (event.type === 'resource-updated')
          message = { t: 'resource-updated', master, uri: event.uri };
        else return;
        try {
          publishJson(this.nc, subject, message);
        } catch {
          // A log line too large for the bus, or the connection is closing: not worth a call's failure.
        }
      }),
    );
  }

  private onPresence(hostId: string, entry: PresenceEntry | undefined): void {
    const local = this.opts.registry.get(hostId);
    if (entry && entry.master !== this.opts.masterId) {
      const link = local?.connected ? local.linkInfo() : undefined;
      if (local && link) this.settleTwoLinks(local, link.connectedAt, entry);
      let remote = this.remotes.get(hostId);
      if (!remote && this.client) {
        remote = new RemoteHostUpstream(hostId, this.client, this.opts.logger);
        this.remotes.set(hostId, remote);
      }
      if (!remote) return;
      remote.setPresence(entry);
      this.opts.registry.setRemote(hostId, remote);
      return;
    }
    // The upstream object is kept for the host's next presence: the router sees one upstream per
    // host, offline in between.
    const remote = this.remotes.get(hostId);
    if (remote?.holder) {
      remote.setPresence(undefined);
      this.opts.registry.setRemote(hostId, undefined);
    }
    // Left by this master before a restart, for a link it no longer holds.
    if (entry && !local?.connected) void this.presence?.dropStale(hostId);
  }

  /**
   * Two masters hold a link of one host (it dialled another master before the first noticed
   * its old link was gone). As on one master, the newer link wins: the older one is closed with
   * `replaced`. Both masters judge the same two entries, so they agree without talking.
   */
  private settleTwoLinks(local: SlaveUpstream, ourSince: Date, theirs: PresenceEntry): void {
    const theirSince = new Date(theirs.since).getTime();
    const newer =
      theirSince > ourSince.getTime() ||
      (theirSince === ourSince.getTime() && theirs.master > this.opts.masterId);
    if (newer) {
      this.opts.logger.warn(
        { host: local.name, master: theirs.master },
        'bus: the host linked to another master; closing the older link here',
      );
      void local.detach(CloseCode.replaced, 'replaced by a newer connection to another master');
    } else {
      this.presence?.renewAll();
    }
  }

  private onLinkEvent(event: LinkEvent): void {
    const { registry, logger } = this.opts;
    logger.info(
      { host: event.hostId, kind: event.kind, from: event.from },
      'bus: link event from another master',
    );
    if (event.kind === 'superseded') {
      const slave = registry.get(event.hostId);
      const link = slave?.linkInfo();
      if (slave && link && event.serial !== undefined && link.certSerial !== event.serial) {
        void slave.detach(CloseCode.superseded, 'certificate superseded by a newer pairing');
      }
    } else {
      void registry.removeHost(
        event.hostId,
        CloseCode.revoked,
        `credentials ${event.kind} on another master`,
      );
    }
    this.resync();
  }

  private resync(): void {
    Promise.resolve()
      .then(() => this.opts.registry.syncFromStore())
      .catch((err) =>
        this.opts.logger.error({ err: (err as Error).message }, 'bus: could not re-read the store'),
      );
  }

  /** Tells the other masters of a revocation, a re-pair or a disabled host decided here. */
  announce(kind: LinkEventKind, hostId: string, serial?: string): void {
    if (this.events) this.events.announce(kind, hostId, serial);
    else
      this.opts.logger.warn(
        { host: hostId, kind },
        'bus: not connected; other masters learn of it from the store later',
      );
  }

  /** The master holding each host's link, from the presence bucket. */
  holders(): Map<string, string> {
    return new Map([...(this.presence?.entries() ?? [])].map(([host, e]) => [host, e.master]));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.storeRefresh);
    for (const u of this.unhook) u();
    for (const t of this.announcing.values()) clearTimeout(t);
    for (const [hostId, remote] of this.remotes) {
      this.opts.registry.setRemote(hostId, undefined);
      await remote.stop();
    }
    this.remotes.clear();
    this.server?.close();
    this.client?.failAll();
    await this.presence?.close().catch(() => {});
    this.events?.close();
    this.hostEvents?.unsubscribe();
    this.inbox?.close();
    await this.connection.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
