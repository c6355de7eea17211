import { randomUUID } from 'node:crypto';
import type { SqlExecutor, SqlParams } from './sql.js';
import { fromStoredTime, fromStoredTimeOrNull, toStoredTime } from './time.js';

export interface SlaveServer {
  id: string;
  hostId: string;
  certSerial: string;
  issuedAt: Date;
  expiresAt: Date;
  lastSeen: Date | null;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** `sha256:<hex>` of the certificate's public key; null only for rows made before schema v3. */
  keyFingerprint: string | null;
  /** Key fingerprint of the CA that issued the current certificate; null before schema v5. */
  caFingerprint: string | null;
  /** A renewed certificate issued but not yet seen on a link; null when none is pending. */
  pending: PendingCertificate | null;
  lastRenewedAt: Date | null;
  /** Why the host's last renewal attempt was refused or failed; cleared by a successful one. */
  renewalError: string | null;
  renewalErrorAt: Date | null;
}

export interface PendingCertificate extends SlaveCertificate {
  keyFingerprint: string;
  /** Null only for a renewal pending across the upgrade to schema v5. */
  caFingerprint: string | null;
}

export interface SlaveCertificate {
  certSerial: string;
  issuedAt: Date;
  expiresAt: Date;
}

export interface NewSlaveServer extends SlaveCertificate {
  hostId: string;
  keyFingerprint?: string | null;
}

export interface SlaveEnrollment extends SlaveCertificate {
  hostId: string;
  keyFingerprint: string;
  caFingerprint: string;
}

interface SlaveServerRow {
  id: string;
  host_id: string;
  cert_serial: string;
  issued_at: string;
  expires_at: string;
  last_seen: string | null;
  enabled: number;
  created_at: string;
  updated_at: string;
  key_fingerprint: string | null;
  ca_fingerprint: string | null;
  pending_ca_fingerprint: string | null;
  pending_cert_serial: string | null;
  pending_key_fingerprint: string | null;
  pending_issued_at: string | null;
  pending_expires_at: string | null;
  last_renewed_at: string | null;
  renewal_error: string | null;
  renewal_error_at: string | null;
}

/** Paired slaves: one row per host_id, holding the certificate it was last issued. */
export class SlaveServersRepo {
  constructor(
    private readonly sql: SqlExecutor,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Throws the database's constraint error if host_id is already paired; re-pairing uses updateCertificate. */
  async create(input: NewSlaveServer): Promise<SlaveServer> {
    await this.sql.run(
      `INSERT INTO slave_servers
         (id, host_id, cert_serial, issued_at, expires_at, last_seen, enabled, created_at, updated_at,
          key_fingerprint)
       VALUES (@id, @hostId, @certSerial, @issuedAt, @expiresAt, NULL, 1, @now, @now, @keyFingerprint)`,
      {
        id: randomUUID(),
        hostId: input.hostId,
        certSerial: input.certSerial,
        issuedAt: toStoredTime(input.issuedAt),
        expiresAt: toStoredTime(input.expiresAt),
        now: toStoredTime(this.now()),
        keyFingerprint: input.keyFingerprint ?? null,
      },
    );
    return (await this.getByHostId(input.hostId))!;
  }

  /**
   * Records the certificate a host was (re-)issued by pairing: creates the row, or replaces the
   * certificate of an existing one and enables it again. Revoking the serial it replaces is the
   * caller's job, in the same transaction.
   */
  async upsertEnrollment(input: SlaveEnrollment): Promise<SlaveServer> {
    // last_seen and created_at describe the host, not the certificate, so a re-pair keeps them.
    await this.sql.run(
      `INSERT INTO slave_servers
         (id, host_id, cert_serial, issued_at, expires_at, last_seen, enabled, created_at, updated_at,
          key_fingerprint, ca_fingerprint)
       VALUES (@id, @hostId, @certSerial, @issuedAt, @expiresAt, NULL, 1, @now, @now, @keyFingerprint,
               @caFingerprint)
       ON CONFLICT (host_id) DO UPDATE
          SET cert_serial = excluded.cert_serial, issued_at = excluded.issued_at,
              expires_at = excluded.expires_at, key_fingerprint = excluded.key_fingerprint,
              ca_fingerprint = excluded.ca_fingerprint,
              enabled = 1, updated_at = excluded.updated_at,
              pending_cert_serial = NULL, pending_key_fingerprint = NULL, pending_issued_at = NULL,
              pending_expires_at = NULL, pending_ca_fingerprint = NULL,
              renewal_error = NULL, renewal_error_at = NULL`,
      {
        id: randomUUID(),
        hostId: input.hostId,
        certSerial: input.certSerial,
        issuedAt: toStoredTime(input.issuedAt),
        expiresAt: toStoredTime(input.expiresAt),
        now: toStoredTime(this.now()),
        keyFingerprint: input.keyFingerprint,
        caFingerprint: input.caFingerprint,
      },
    );
    return (await this.getByHostId(input.hostId))!;
  }

  async getByHostId(hostId: string): Promise<SlaveServer | undefined> {
    return this.one('SELECT * FROM slave_servers WHERE host_id = @hostId', { hostId });
  }

  /**
   * The slave holding a certificate serial (in `normalizeSerial` form) as its current or its
   * pending one; the caller tells which by comparing `certSerial` and `pending.certSerial`.
   */
  async getByCertSerial(certSerial: string): Promise<SlaveServer | undefined> {
    // The pending certificate is found too: its first link is what makes it current.
    return this.one(
      'SELECT * FROM slave_servers WHERE cert_serial = @serial OR pending_cert_serial = @serial',
      { serial: certSerial },
    );
  }

  /** The slave whose current certificate carries this key, if any. */
  async getByKeyFingerprint(keyFingerprint: string): Promise<SlaveServer | undefined> {
    return this.one('SELECT * FROM slave_servers WHERE key_fingerprint = @keyFingerprint LIMIT 1', {
      keyFingerprint,
    });
  }

  async list(): Promise<SlaveServer[]> {
    const rows = await this.sql.all<SlaveServerRow>('SELECT * FROM slave_servers ORDER BY host_id');
    return rows.map(toSlaveServer);
  }

  /** Each of the updates returns false when no slave has that host_id. */
  async updateLastSeen(hostId: string, at: Date): Promise<boolean> {
    // A heartbeat is activity, not a change to the record, so it leaves updated_at alone.
    const changed = await this.sql.run('UPDATE slave_servers SET last_seen = @at WHERE host_id = @hostId', {
      hostId,
      at: toStoredTime(at),
    });
    return changed === 1;
  }

  async setEnabled(hostId: string, enabled: boolean): Promise<boolean> {
    const changed = await this.sql.run(
      'UPDATE slave_servers SET enabled = @enabled, updated_at = @now WHERE host_id = @hostId',
      { hostId, enabled: enabled ? 1 : 0, now: toStoredTime(this.now()) },
    );
    return changed === 1;
  }

  /**
   * Every host's `last_seen`: a master with thousands of links writes them once per interval, in
   * one transaction (the caller's), rather than once per host. Returns how many hosts were found.
   */
  async updateLastSeenMany(seen: Iterable<[string, Date]>): Promise<number> {
    let updated = 0;
    for (const [hostId, at] of seen) if (await this.updateLastSeen(hostId, at)) updated++;
    return updated;
  }

  async updateCertificate(hostId: string, cert: SlaveCertificate): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE slave_servers
          SET cert_serial = @certSerial, issued_at = @issuedAt, expires_at = @expiresAt, updated_at = @now
        WHERE host_id = @hostId`,
      {
        hostId,
        certSerial: cert.certSerial,
        issuedAt: toStoredTime(cert.issuedAt),
        expiresAt: toStoredTime(cert.expiresAt),
        now: toStoredTime(this.now()),
      },
    );
    return changed === 1;
  }

  /** Records a renewed certificate next to the current one, replacing any earlier pending one. */
  async recordPending(hostId: string, cert: PendingCertificate): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE slave_servers
          SET pending_cert_serial = @certSerial, pending_key_fingerprint = @keyFingerprint,
              pending_issued_at = @issuedAt, pending_expires_at = @expiresAt,
              pending_ca_fingerprint = @caFingerprint,
              renewal_error = NULL, renewal_error_at = NULL, updated_at = @now
        WHERE host_id = @hostId`,
      {
        hostId,
        certSerial: cert.certSerial,
        keyFingerprint: cert.keyFingerprint,
        caFingerprint: cert.caFingerprint,
        issuedAt: toStoredTime(cert.issuedAt),
        expiresAt: toStoredTime(cert.expiresAt),
        now: toStoredTime(this.now()),
      },
    );
    return changed === 1;
  }

  /** Makes the pending certificate `serial` the current one; false if it is not the pending one. */
  async promotePending(hostId: string, serial: string, at: Date): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE slave_servers
          SET cert_serial = pending_cert_serial, key_fingerprint = pending_key_fingerprint,
              issued_at = pending_issued_at, expires_at = pending_expires_at, last_renewed_at = @now,
              ca_fingerprint = pending_ca_fingerprint,
              pending_cert_serial = NULL, pending_key_fingerprint = NULL, pending_issued_at = NULL,
              pending_expires_at = NULL, pending_ca_fingerprint = NULL, updated_at = @now
        WHERE host_id = @hostId AND pending_cert_serial = @serial`,
      { hostId, serial, now: toStoredTime(at) },
    );
    return changed === 1;
  }

  /** Forgets the pending certificate `serial`; false if it is not the pending one. */
  async clearPending(hostId: string, serial: string): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE slave_servers
          SET pending_cert_serial = NULL, pending_key_fingerprint = NULL, pending_issued_at = NULL,
              pending_expires_at = NULL, pending_ca_fingerprint = NULL, updated_at = @now
        WHERE host_id = @hostId AND pending_cert_serial = @serial`,
      { hostId, serial, now: toStoredTime(this.now()) },
    );
    return changed === 1;
  }

  /** Names the issuer of certificates recorded before schema v5, which did not record it. */
  backfillCaFingerprint(caFingerprint: string): Promise<number> {
    return this.sql.run(
      'UPDATE slave_servers SET ca_fingerprint = @caFingerprint WHERE ca_fingerprint IS NULL',
      { caFingerprint },
    );
  }

  /** `error` null clears it. Not a change of the record, so updated_at stays. */
  async setRenewalError(hostId: string, error: string | null, at: Date): Promise<boolean> {
    const changed = await this.sql.run(
      'UPDATE slave_servers SET renewal_error = @error, renewal_error_at = @at WHERE host_id = @hostId',
      { hostId, error, at: error === null ? null : toStoredTime(at) },
    );
    return changed === 1;
  }

  async delete(hostId: string): Promise<boolean> {
    return (await this.sql.run('DELETE FROM slave_servers WHERE host_id = @hostId', { hostId })) === 1;
  }

  private async one(query: string, params: SqlParams): Promise<SlaveServer | undefined> {
    const row = await this.sql.get<SlaveServerRow>(query, params);
    return row === undefined ? undefined : toSlaveServer(row);
  }
}

function toSlaveServer(row: SlaveServerRow): SlaveServer {
  return {
    id: row.id,
    hostId: row.host_id,
    certSerial: row.cert_serial,
    issuedAt: fromStoredTime(row.issued_at),
    expiresAt: fromStoredTime(row.expires_at),
    lastSeen: fromStoredTimeOrNull(row.last_seen),
    enabled: row.enabled !== 0,
    createdAt: fromStoredTime(row.created_at),
    updatedAt: fromStoredTime(row.updated_at),
    keyFingerprint: row.key_fingerprint,
    caFingerprint: row.ca_fingerprint,
    pending:
      row.pending_cert_serial === null ||
      row.pending_key_fingerprint === null ||
      row.pending_issued_at === null ||
      row.pending_expires_at === null
        ? null
        : {
            certSerial: row.pending_cert_serial,
            keyFingerprint: row.pending_key_fingerprint,
            caFingerprint: row.pending_ca_fingerprint,
            issuedAt: fromStoredTime(row.pending_issued_at),
            expiresAt: fromStoredTime(row.pending_expires_at),
          },
    lastRenewedAt: fromStoredTimeOrNull(row.last_renewed_at),
    renewalError: row.renewal_error,
    renewalErrorAt: fromStoredTimeOrNull(row.renewal_error_at),
  };
}
