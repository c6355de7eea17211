import { randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
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
  private readonly insertStmt: Statement;
  private readonly upsertStmt: Statement;
  private readonly byHostIdStmt: Statement<[string], SlaveServerRow>;
  private readonly byCertSerialStmt: Statement<[{ serial: string }], SlaveServerRow>;
  private readonly pendingStmt: Statement;
  private readonly promoteStmt: Statement;
  private readonly renewalErrorStmt: Statement;
  private readonly clearPendingStmt: Statement;
  private readonly backfillCaStmt: Statement;
  private readonly byKeyFingerprintStmt: Statement<[string], SlaveServerRow>;
  private readonly listStmt: Statement<[], SlaveServerRow>;
  private readonly lastSeenStmt: Statement;
  private readonly enabledStmt: Statement;
  private readonly certificateStmt: Statement;
  private readonly deleteStmt: Statement<[string]>;
  private readonly lastSeenMany: (seen: Iterable<[string, Date]>) => number;

  constructor(
    db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO slave_servers
         (id, host_id, cert_serial, issued_at, expires_at, last_seen, enabled, created_at, updated_at,
          key_fingerprint)
       VALUES (@id, @hostId, @certSerial, @issuedAt, @expiresAt, NULL, 1, @now, @now, @keyFingerprint)`,
    );
    // last_seen and created_at describe the host, not the certificate, so a re-pair keeps them.
    this.upsertStmt = db.prepare(
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
    );
    this.byHostIdStmt = db.prepare('SELECT * FROM slave_servers WHERE host_id = ?');
    // The pending certificate is found too: its first link is what makes it current.
    this.byCertSerialStmt = db.prepare(
      'SELECT * FROM slave_servers WHERE cert_serial = @serial OR pending_cert_serial = @serial',
    );
    this.pendingStmt = db.prepare(
      `UPDATE slave_servers
          SET pending_cert_serial = @certSerial, pending_key_fingerprint = @keyFingerprint,
              pending_issued_at = @issuedAt, pending_expires_at = @expiresAt,
              pending_ca_fingerprint = @caFingerprint,
              renewal_error = NULL, renewal_error_at = NULL, updated_at = @now
        WHERE host_id = @hostId`,
    );
    this.promoteStmt = db.prepare(
      `UPDATE slave_servers
          SET cert_serial = pending_cert_serial, key_fingerprint = pending_key_fingerprint,
              issued_at = pending_issued_at, expires_at = pending_expires_at, last_renewed_at = @now,
              ca_fingerprint = pending_ca_fingerprint,
              pending_cert_serial = NULL, pending_key_fingerprint = NULL, pending_issued_at = NULL,
              pending_expires_at = NULL, pending_ca_fingerprint = NULL, updated_at = @now
        WHERE host_id = @hostId AND pending_cert_serial = @serial`,
    );
    this.clearPendingStmt = db.prepare(
      `UPDATE slave_servers
          SET pending_cert_serial = NULL, pending_key_fingerprint = NULL, pending_issued_at = NULL,
              pending_expires_at = NULL, pending_ca_fingerprint = NULL, updated_at = @now
        WHERE host_id = @hostId AND pending_cert_serial = @serial`,
    );
    this.backfillCaStmt = db.prepare(
      'UPDATE slave_servers SET ca_fingerprint = @caFingerprint WHERE ca_fingerprint IS NULL',
    );
    this.renewalErrorStmt = db.prepare(
      'UPDATE slave_servers SET renewal_error = @error, renewal_error_at = @at WHERE host_id = @hostId',
    );
    this.byKeyFingerprintStmt = db.prepare('SELECT * FROM slave_servers WHERE key_fingerprint = ? LIMIT 1');
    this.listStmt = db.prepare('SELECT * FROM slave_servers ORDER BY host_id');
    // A heartbeat is activity, not a change to the record, so it leaves updated_at alone.
    this.lastSeenStmt = db.prepare('UPDATE slave_servers SET last_seen = @at WHERE host_id = @hostId');
    this.lastSeenMany = db.transaction((seen: Iterable<[string, Date]>) => {
      let updated = 0;
      for (const [hostId, at] of seen)
        updated += this.lastSeenStmt.run({ hostId, at: toStoredTime(at) }).changes;
      return updated;
    });
    this.enabledStmt = db.prepare(
      'UPDATE slave_servers SET enabled = @enabled, updated_at = @now WHERE host_id = @hostId',
    );
    this.certificateStmt = db.prepare(
      `UPDATE slave_servers
          SET cert_serial = @certSerial, issued_at = @issuedAt, expires_at = @expiresAt, updated_at = @now
        WHERE host_id = @hostId`,
    );
    this.deleteStmt = db.prepare('DELETE FROM slave_servers WHERE host_id = ?');
  }

  /** Throws SQLite's constraint error if host_id is already paired; re-pairing uses updateCertificate. */
  create(input: NewSlaveServer): SlaveServer {
    const id = randomUUID();
    this.insertStmt.run({
      id,
      hostId: input.hostId,
      certSerial: input.certSerial,
      issuedAt: toStoredTime(input.issuedAt),
      expiresAt: toStoredTime(input.expiresAt),
      now: toStoredTime(this.now()),
      keyFingerprint: input.keyFingerprint ?? null,
    });
    return this.getByHostId(input.hostId)!;
  }

  /**
   * Records the certificate a host was (re-)issued by pairing: creates the row, or replaces the
   * certificate of an existing one and enables it again. Revoking the serial it replaces is the
   * caller's job, in the same transaction.
   */
  upsertEnrollment(input: SlaveEnrollment): SlaveServer {
    this.upsertStmt.run({
      id: randomUUID(),
      hostId: input.hostId,
      certSerial: input.certSerial,
      issuedAt: toStoredTime(input.issuedAt),
      expiresAt: toStoredTime(input.expiresAt),
      now: toStoredTime(this.now()),
      keyFingerprint: input.keyFingerprint,
      caFingerprint: input.caFingerprint,
    });
    return this.getByHostId(input.hostId)!;
  }

  getByHostId(hostId: string): SlaveServer | undefined {
    const row = this.byHostIdStmt.get(hostId);
    return row === undefined ? undefined : toSlaveServer(row);
  }

  /**
   * The slave holding a certificate serial (in `normalizeSerial` form) as its current or its
   * pending one; the caller tells which by comparing `certSerial` and `pending.certSerial`.
   */
  getByCertSerial(certSerial: string): SlaveServer | undefined {
    const row = this.byCertSerialStmt.get({ serial: certSerial });
    return row === undefined ? undefined : toSlaveServer(row);
  }

  /** The slave whose current certificate carries this key, if any. */
  getByKeyFingerprint(keyFingerprint: string): SlaveServer | undefined {
    const row = this.byKeyFingerprintStmt.get(keyFingerprint);
    return row === undefined ? undefined : toSlaveServer(row);
  }

  list(): SlaveServer[] {
    return this.listStmt.all().map(toSlaveServer);
  }

  /** Each of the updates returns false when no slave has that host_id. */
  updateLastSeen(hostId: string, at: Date): boolean {
    return this.lastSeenStmt.run({ hostId, at: toStoredTime(at) }).changes === 1;
  }

  /**
   * Every host's `last_seen` in one transaction: a master with thousands of links writes them
   * once per interval rather than once per host. Returns how many hosts were found.
   */
  updateLastSeenMany(seen: Iterable<[string, Date]>): number {
    return this.lastSeenMany(seen);
  }

  setEnabled(hostId: string, enabled: boolean): boolean {
    return (
      this.enabledStmt.run({ hostId, enabled: enabled ? 1 : 0, now: toStoredTime(this.now()) }).changes === 1
    );
  }

  updateCertificate(hostId: string, cert: SlaveCertificate): boolean {
    const result = this.certificateStmt.run({
      hostId,
      certSerial: cert.certSerial,
      issuedAt: toStoredTime(cert.issuedAt),
      expiresAt: toStoredTime(cert.expiresAt),
      now: toStoredTime(this.now()),
    });
    return result.changes === 1;
  }

  /** Records a renewed certificate next to the current one, replacing any earlier pending one. */
  recordPending(hostId: string, cert: PendingCertificate): boolean {
    const result = this.pendingStmt.run({
      hostId,
      certSerial: cert.certSerial,
      keyFingerprint: cert.keyFingerprint,
      caFingerprint: cert.caFingerprint,
      issuedAt: toStoredTime(cert.issuedAt),
      expiresAt: toStoredTime(cert.expiresAt),
      now: toStoredTime(this.now()),
    });
    return result.changes === 1;
  }

  /** Makes the pending certificate `serial` the current one; false if it is not the pending one. */
  promotePending(hostId: string, serial: string, at: Date): boolean {
    return this.promoteStmt.run({ hostId, serial, now: toStoredTime(at) }).changes === 1;
  }

  /** Forgets the pending certificate `serial`; false if it is not the pending one. */
  clearPending(hostId: string, serial: string): boolean {
    return this.clearPendingStmt.run({ hostId, serial, now: toStoredTime(this.now()) }).changes === 1;
  }

  /** Names the issuer of certificates recorded before schema v5, which did not record it. */
  backfillCaFingerprint(caFingerprint: string): number {
    return this.backfillCaStmt.run({ caFingerprint }).changes;
  }

  /** `error` null clears it. Not a change of the record, so updated_at stays. */
  setRenewalError(hostId: string, error: string | null, at: Date): boolean {
    return (
      this.renewalErrorStmt.run({ hostId, error, at: error === null ? null : toStoredTime(at) }).changes === 1
    );
  }

  delete(hostId: string): boolean {
    return this.deleteStmt.run(hostId).changes === 1;
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
