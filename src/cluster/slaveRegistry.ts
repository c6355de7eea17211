import type { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { Router } from '../mcp/router.js';
import type { Upstream } from '../mcp/upstream.js';
import type { MasterStore, SlaveServer } from '../store/index.js';
import { LastSeenWriter } from './lastSeenWriter.js';
import type { RenewalService } from './renewal.js';
import { type LinkInfo, type SlaveLimits, SlaveUpstream } from './slaveUpstream.js';
import type { TrustResult } from './trustWire.js';
import { CloseCode } from './webSocketTransport.js';

export interface SlaveHealth {
  host_id: string;
  status: 'connected' | 'disconnected';
  enabled: boolean;
  connected_at?: string;
  last_heartbeat?: string;
  last_seen?: string;
  tool_count: number;
  version?: string;
  remote_address?: string;
  cert_serial: string;
  cert_expires_at: string;
  cert_issued_at: string;
  /** The serial of the certificate the live link was opened with. */
  link_cert_serial?: string;
  /** When a renewed certificate of this host was last confirmed in use. */
  last_renewed_at?: string;
  /** A renewed certificate was issued and the host has not come back with it yet. */
  renewal_pending: boolean;
  /** Why the host's last renewal was refused (cleared by the next successful one). */
  renewal_error?: string;
  renewal_error_at?: string;
  /** With a bus (several masters): the master that holds the live link. */
  master?: string;
}

/**
 * A host whose link another master holds (bus/remoteHostUpstream.ts), routed here while the
 * host has no live link to this master.
 */
export interface RemoteHost extends Upstream {
  readonly connected: boolean;
  /** Where the link is, from the holder's presence entry: `serial` is its certificate's. */
  readonly holder?: { master: string; since: Date; serial: string };
}

/** What the store last said of a host that may be routed: enabled, with these certificates. */
interface RoutableHost {
  certSerial: string;
  pendingSerial: string | undefined;
}

/** A remote host the store does not vouch for makes the registry read the store, at most this often. */
const UNVOUCHED_REREAD_MS = 1_000;

/** What a master on the bus hears of its own links: one came or went, or its lists changed. */
export type LinkListener = (hostId: string, slave: SlaveUpstream, change: 'state' | 'catalog') => void;

export interface RegistryServices {
  renewal?: RenewalService;
  trust?: () => TrustResult;
  /** This master's id on the bus, shown as the holder of its own links in `slave list`. */
  masterId?: string;
}

/**
 * The paired slaves known to this master and their live links. Every enabled, paired host is
 * an upstream of the router (its tools appear while it is connected), so a call to an
 * offline host gets "Host <id> is not available" rather than "unknown tool".
 */
export class SlaveRegistry {
  private readonly slaves = new Map<string, SlaveUpstream>();
  private readonly lastSeen: LastSeenWriter;
  private readonly remotes = new Map<string, RemoteHost>();
  /** What this registry put in the router under each host id (the local or the remote upstream). */
  private readonly routed = new Map<string, Upstream>();
  private readonly linkListeners = new Set<LinkListener>();
  /** Every paired host id, enabled or not, as of the last read of the store. */
  private pairedHostIds = new Set<string>();
  /**
   * The enabled hosts and their certificates as of the last read of the store (or less: a host
   * disabled or revoked here leaves at once). A presence entry is only a claim of another master,
   * and may outlive the link by its TTL or be written by anyone who can reach NATS: a remote host
   * is routed only while the store vouches for it here.
   */
  private routable = new Map<string, RoutableHost>();
  /** Syncs run one at a time, so that an older read never overwrites a newer one. */
  private syncing: Promise<void> = Promise.resolve();
  /**
   * Hosts removed while a sync's read was in flight: that read may predate the revocation's
   * commit, and must not make them routable again.
   */
  private removedDuringRead: Set<string> | undefined;
  private lastUnvouchedReread = Number.NEGATIVE_INFINITY;
  private unvouchedReread: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: MasterStore,
    private readonly router: Router,
    private readonly limits: SlaveLimits,
    private readonly version: string,
    private readonly logger: Logger,
    private readonly services: RegistryServices = {},
  ) {
    this.lastSeen = new LastSeenWriter(store, logger);
  }

  /**
   * Registers every enabled paired host and closes links whose certificate is no longer current;
   * called at start and after pairing decisions.
   */
  syncFromStore(): Promise<void> {
    const next = this.syncing.then(() => this.syncNow());
    this.syncing = next.catch(() => {});
    return next;
  }

  private async syncNow(): Promise<void> {
    const removed = new Set<string>();
    this.removedDuringRead = removed;
    let rows: SlaveServer[];
    try {
      rows = await this.store.slaveServers.list();
    } finally {
      this.removedDuringRead = undefined;
    }
    this.remember(rows);
    for (const hostId of removed) this.routable.delete(hostId);
    for (const row of rows) {
      if (removed.has(row.hostId)) continue;
      if (!row.enabled) {
        void this.removeHost(row.hostId, CloseCode.revoked, 'host disabled');
        continue;
      }
      const slave = this.ensureHost(row.hostId);
      const link = slave.linkInfo();
      // The host paired again: a superseded key must not keep a link it could no longer open.
      // A link on the pending (renewed) certificate is not superseded: this read may predate the
      // confirmation that made it current, now that the bus re-reads the store every few seconds.
      if (link && link.certSerial !== row.certSerial && link.certSerial !== row.pending?.certSerial) {
        this.logger.warn(
          { host: row.hostId, linkSerial: link.certSerial, currentSerial: row.certSerial },
          'closing a link whose certificate was superseded by a new pairing',
        );
        void slave.detach(CloseCode.superseded, 'certificate superseded by a newer pairing');
      }
    }
    // Remote hosts the store now vouches for, or no longer does.
    for (const hostId of this.remotes.keys()) this.reroute(hostId);
  }

  /** Reads the paired host ids without registering anyone (for `isPaired` before the first sync). */
  async loadPairedHosts(): Promise<void> {
    this.remember(await this.store.slaveServers.list());
  }

  /** What a read of the store says: every paired host, and the enabled ones' certificates. */
  private remember(rows: readonly SlaveServer[]): void {
    this.pairedHostIds = new Set(rows.map((row) => row.hostId));
    this.routable = new Map();
    for (const row of rows) {
      if (row.enabled)
        this.routable.set(row.hostId, { certSerial: row.certSerial, pendingSerial: row.pending?.certSerial });
    }
  }

  /**
   * Whether `hostId` is a paired host, from memory: asked synchronously when a configured server
   * is named (a server may not take a host's name). Paired hosts are added on every sync.
   */
  isPaired(hostId: string): boolean {
    return this.pairedHostIds.has(hostId) || this.slaves.has(hostId);
  }

  ensureHost(hostId: string): SlaveUpstream {
    let slave = this.slaves.get(hostId);
    if (slave) return slave;
    slave = new SlaveUpstream(hostId, this.limits, this.version, this.logger, this.services);
    const created = slave;
    created.subscribe((event) => {
      if (event.type !== 'state' && event.type !== 'catalog') return;
      if (event.type === 'state') this.reroute(hostId);
      for (const l of this.linkListeners) l(hostId, created, event.type);
    });
    this.slaves.set(hostId, slave);
    if (this.router.get(hostId) && this.router.get(hostId) !== this.routed.get(hostId)) {
      this.logger.error(
        { host: hostId },
        'a configured MCP server has the name of this paired host; the host is not routed',
      );
    } else {
      this.reroute(hostId);
    }
    return slave;
  }

  /** Hears of this master's own links coming, going and changing their lists (the bus). */
  onLinkChange(listener: LinkListener): () => void {
    this.linkListeners.add(listener);
    return () => this.linkListeners.delete(listener);
  }

  /**
   * The host's link is held by another master (`remote`), or no longer (`undefined`). While this
   * master has no live link of its own, the remote upstream is the one routed under the host id.
   */
  setRemote(hostId: string, remote: RemoteHost | undefined): void {
    if (remote) this.remotes.set(hostId, remote);
    else this.remotes.delete(hostId);
    this.reroute(hostId);
    // Paired (or re-paired) on another master since the last read: the store is asked, soon.
    if (remote?.connected && !this.vouchedFor(hostId, remote)) this.rereadForUnvouched();
  }

  /**
   * Whether the store (as last read here) vouches for the link a remote host claims: the host is
   * enabled, and the claimed certificate is its current or its pending (renewed) one. A revoked
   * host is disabled, and a re-paired one has a new serial, so neither passes on a stale entry.
   */
  private vouchedFor(hostId: string, remote: RemoteHost): boolean {
    const host = this.routable.get(hostId);
    const serial = remote.holder?.serial;
    return (
      host !== undefined &&
      serial !== undefined &&
      (serial === host.certSerial || serial === host.pendingSerial)
    );
  }

  /** The remote upstream of a host, if it is connected and the store vouches for it. */
  private liveRemote(hostId: string): RemoteHost | undefined {
    const remote = this.remotes.get(hostId);
    return remote?.connected && this.vouchedFor(hostId, remote) ? remote : undefined;
  }

  private rereadForUnvouched(): void {
    if (this.unvouchedReread) return;
    const wait = Math.max(0, this.lastUnvouchedReread + UNVOUCHED_REREAD_MS - Date.now());
    this.unvouchedReread = setTimeout(() => {
      this.unvouchedReread = undefined;
      this.lastUnvouchedReread = Date.now();
      this.syncFromStore().catch((err: unknown) =>
        this.logger.warn({ err: (err as Error).message }, 'could not read the paired hosts'),
      );
    }, wait);
    this.unvouchedReread.unref();
  }

  /**
   * Routes the host's live local link, else its remote one (if the store vouches for it), else
   * its offline local upstream. A host with neither is not routed at all.
   */
  private reroute(hostId: string): void {
    const local = this.slaves.get(hostId);
    const remote = this.liveRemote(hostId);
    const wanted = local?.connected ? local : (remote ?? local);
    const current = this.router.get(hostId);
    if (current === wanted) return;
    // The name belongs to something this registry did not put there (a configured server).
    if (current && current !== this.routed.get(hostId)) return;
    if (current) this.router.remove(hostId);
    this.routed.delete(hostId);
    if (wanted) {
      this.router.add(wanted);
      this.routed.set(hostId, wanted);
    }
  }

  /**
   * The host was revoked or disabled: its link here is closed, and a link another master claims
   * is no longer routed, until a read of the store finds it enabled again (a new pairing).
   */
  async removeHost(hostId: string, code: number, reason: string): Promise<void> {
    const slave = this.slaves.get(hostId);
    this.routable.delete(hostId);
    this.removedDuringRead?.add(hostId);
    const routed = this.routed.get(hostId);
    if (routed && this.router.get(hostId) === routed) this.router.remove(hostId);
    this.routed.delete(hostId);
    if (!slave) return;
    this.slaves.delete(hostId);
    await slave.detach(code, reason);
  }

  /**
   * A link the hub accepted. One opened with the host's pending (renewed) certificate confirms
   * it first: from then on the previous certificate opens nothing.
   */
  async attach(
    hostId: string,
    ws: WebSocket,
    info: Omit<LinkInfo, 'certExpiresAt'>,
    pending = false,
  ): Promise<void> {
    if (pending && !(await this.services.renewal?.confirm(hostId, info.certSerial))) {
      throw new Error(`the renewed certificate of ${hostId} is no longer pending`);
    }
    // The previous certificate came back before the renewed one was ever used (the slave died
    // before writing it): the renewed one must not stay a second way in.
    if (!pending) await this.services.renewal?.abandonPending(hostId, info.certSerial);
    const row = await this.store.slaveServers.getByHostId(hostId);
    if (!row) throw new Error(`${hostId} is not a paired host`);
    const slave = this.ensureHost(hostId);
    this.recordHeartbeat(hostId, new Date());
    return slave.attach(ws, { ...info, certExpiresAt: row.expiresAt });
  }

  /** O(1): the time is noted; `last_seen` of every host heard from is written in one batch. */
  recordHeartbeat(hostId: string, at: Date): void {
    this.slaves.get(hostId)?.heartbeat(at);
    this.lastSeen.seen(hostId, at);
  }

  /** Every live slave asks `diane/trust` again (a CA rollover started or finished). */
  announceTrustChanged(): void {
    for (const slave of this.slaves.values()) slave.notifyTrustChanged();
  }

  /**
   * Closes the links whose certificate is not from one of these CAs: after a forced `ca finish`,
   * a host still on the retired CA has nothing to reconnect with and must pair again.
   */
  async cutLinksOutside(caFingerprints: ReadonlySet<string>): Promise<string[]> {
    const cut: string[] = [];
    for (const row of await this.store.slaveServers.list()) {
      if (row.caFingerprint !== null && caFingerprints.has(row.caFingerprint)) continue;
      const slave = this.slaves.get(row.hostId);
      if (!slave?.connected) continue;
      cut.push(row.hostId);
      await slave.detach(CloseCode.caRetired, 'the CA of this certificate was retired; pair again');
    }
    return cut;
  }

  get(hostId: string): SlaveUpstream | undefined {
    return this.slaves.get(hostId);
  }

  /** The hosts whose link this master holds now. */
  linked(): SlaveUpstream[] {
    return [...this.slaves.values()].filter((s) => s.connected);
  }

  async health(): Promise<SlaveHealth[]> {
    return (await this.store.slaveServers.list()).map((row) => {
      const slave = this.slaves.get(row.hostId);
      const link = slave?.linkInfo();
      const remote = slave?.connected ? undefined : this.liveRemote(row.hostId);
      const holder = slave?.connected ? this.services.masterId : remote?.holder?.master;
      return {
        host_id: row.hostId,
        status: slave?.connected || remote?.connected ? 'connected' : 'disconnected',
        enabled: row.enabled,
        connected_at: (link?.connectedAt ?? remote?.holder?.since)?.toISOString(),
        last_heartbeat: link?.lastHeartbeat?.toISOString(),
        last_seen: row.lastSeen?.toISOString(),
        tool_count: (slave?.connected ? slave : remote)?.catalog().tools.length ?? 0,
        version: link?.version,
        remote_address: link?.remoteAddress,
        cert_serial: row.certSerial,
        cert_expires_at: row.expiresAt.toISOString(),
        cert_issued_at: row.issuedAt.toISOString(),
        link_cert_serial: link?.certSerial,
        last_renewed_at: row.lastRenewedAt?.toISOString(),
        renewal_pending: row.pending !== null,
        renewal_error: row.renewalError ?? undefined,
        renewal_error_at: row.renewalErrorAt?.toISOString(),
        ...(holder === undefined ? {} : { master: holder }),
      };
    });
  }

  async closeAll(): Promise<void> {
    clearTimeout(this.unvouchedReread);
    await this.lastSeen.close();
    await Promise.all([...this.slaves.values()].map((s) => s.stop()));
  }
}
