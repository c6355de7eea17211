import type { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { Router } from '../mcp/router.js';
import type { Store } from '../store/index.js';
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
}

/**
 * The paired slaves known to this master and their live links. Every enabled, paired host is
 * an upstream of the router (its tools appear while it is connected), so a call to an
 * offline host gets "Host <id> is not available" rather than "unknown tool".
 */
export class SlaveRegistry {
  private readonly slaves = new Map<string, SlaveUpstream>();
  private readonly lastSeen: LastSeenWriter;

  constructor(
    private readonly store: Store,
    private readonly router: Router,
    private readonly limits: SlaveLimits,
    private readonly version: string,
    private readonly logger: Logger,
    private readonly services: { renewal?: RenewalService; trust?: () => TrustResult } = {},
  ) {
    this.lastSeen = new LastSeenWriter(store, logger);
  }

  /**
   * Registers every enabled paired host and closes links whose certificate is no longer current;
   * called at start and after pairing decisions.
   */
  syncFromStore(): void {
    for (const row of this.store.slaveServers.list()) {
      if (!row.enabled) {
        void this.removeHost(row.hostId, CloseCode.revoked, 'host disabled');
        continue;
      }
      const slave = this.ensureHost(row.hostId);
      const link = slave.linkInfo();
      // The host paired again: a superseded key must not keep a link it could no longer open.
      if (link && link.certSerial !== row.certSerial) {
        this.logger.warn(
          { host: row.hostId, linkSerial: link.certSerial, currentSerial: row.certSerial },
          'closing a link whose certificate was superseded by a new pairing',
        );
        void slave.detach(CloseCode.superseded, 'certificate superseded by a newer pairing');
      }
    }
  }

  ensureHost(hostId: string): SlaveUpstream {
    let slave = this.slaves.get(hostId);
    if (slave) return slave;
    slave = new SlaveUpstream(hostId, this.limits, this.version, this.logger, this.services);
    if (this.router.get(hostId)) {
      this.logger.error(
        { host: hostId },
        'a configured MCP server has the name of this paired host; the host is not routed',
      );
    } else {
      this.router.add(slave);
    }
    this.slaves.set(hostId, slave);
    return slave;
  }

  async removeHost(hostId: string, code: number, reason: string): Promise<void> {
    const slave = this.slaves.get(hostId);
    if (!slave) return;
    this.slaves.delete(hostId);
    if (this.router.get(hostId) === slave) this.router.remove(hostId);
    await slave.detach(code, reason);
  }

  /**
   * A link the hub accepted. One opened with the host's pending (renewed) certificate confirms
   * it first: from then on the previous certificate opens nothing.
   */
  attach(
    hostId: string,
    ws: WebSocket,
    info: Omit<LinkInfo, 'certExpiresAt'>,
    pending = false,
  ): Promise<void> {
    if (pending && !this.services.renewal?.confirm(hostId, info.certSerial)) {
      return Promise.reject(new Error(`the renewed certificate of ${hostId} is no longer pending`));
    }
    // The previous certificate came back before the renewed one was ever used (the slave died
    // before writing it): the renewed one must not stay a second way in.
    if (!pending) this.services.renewal?.abandonPending(hostId, info.certSerial);
    const row = this.store.slaveServers.getByHostId(hostId);
    if (!row) return Promise.reject(new Error(`${hostId} is not a paired host`));
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
    for (const row of this.store.slaveServers.list()) {
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

  health(): SlaveHealth[] {
    return this.store.slaveServers.list().map((row) => {
      const slave = this.slaves.get(row.hostId);
      const link = slave?.linkInfo();
      return {
        host_id: row.hostId,
        status: slave?.connected ? 'connected' : 'disconnected',
        enabled: row.enabled,
        connected_at: link?.connectedAt.toISOString(),
        last_heartbeat: link?.lastHeartbeat?.toISOString(),
        last_seen: row.lastSeen?.toISOString(),
        tool_count: slave?.catalog().tools.length ?? 0,
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
      };
    });
  }

  async closeAll(): Promise<void> {
    this.lastSeen.close();
    await Promise.all([...this.slaves.values()].map((s) => s.stop()));
  }
}
