import { randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { fromStoredTime, toStoredTime } from './time.js';

export interface RevokedCredential {
  id: string;
  hostId: string;
  certSerial: string;
  revokedAt: Date;
  reason: string | null;
  /** `sha256:<hex>` of the revoked certificate's key; null when it was not known. */
  keyFingerprint: string | null;
}

export interface NewRevocation {
  hostId: string;
  certSerial: string;
  reason?: string | null;
  keyFingerprint?: string | null;
}

/** One certificate of a host to revoke: its serial, and its key when known. */
export interface RevocableCredential {
  certSerial: string;
  keyFingerprint?: string | null;
}

interface RevokedCredentialRow {
  id: string;
  host_id: string;
  cert_serial: string;
  revoked_at: string;
  reason: string | null;
  key_fingerprint: string | null;
}

/** The revocation log, checked by certificate serial and by key on every slave connection. */
export class RevokedCredentialsRepo {
  private readonly insertStmt: Statement;
  private readonly bySerialStmt: Statement<[string], RevokedCredentialRow>;
  private readonly isRevokedStmt: Statement<[string], { found: number }>;
  private readonly isKeyRevokedStmt: Statement<[string], { found: number }>;
  private readonly listStmt: Statement<[], RevokedCredentialRow>;
  private readonly forHostStmt: Statement<[string], RevokedCredentialRow>;

  constructor(
    private readonly db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    // The unique index on cert_serial (migration 2) turns a second revocation into a no-op.
    this.insertStmt = db.prepare(
      `INSERT INTO revoked_slave_credentials (id, host_id, cert_serial, revoked_at, reason, key_fingerprint)
       VALUES (@id, @hostId, @certSerial, @revokedAt, @reason, @keyFingerprint)
       ON CONFLICT (cert_serial) DO NOTHING`,
    );
    this.bySerialStmt = db.prepare('SELECT * FROM revoked_slave_credentials WHERE cert_serial = ?');
    this.isRevokedStmt = db.prepare('SELECT 1 AS found FROM revoked_slave_credentials WHERE cert_serial = ?');
    this.isKeyRevokedStmt = db.prepare(
      'SELECT 1 AS found FROM revoked_slave_credentials WHERE key_fingerprint = ? LIMIT 1',
    );
    this.listStmt = db.prepare('SELECT * FROM revoked_slave_credentials ORDER BY revoked_at, rowid');
    this.forHostStmt = db.prepare(
      'SELECT * FROM revoked_slave_credentials WHERE host_id = ? ORDER BY revoked_at, rowid',
    );
  }

  /** Returns the stored revocation; revoking a serial again keeps the first record (time, reason). */
  revoke(input: NewRevocation): RevokedCredential {
    this.insertStmt.run({
      id: randomUUID(),
      hostId: input.hostId,
      certSerial: input.certSerial,
      revokedAt: toStoredTime(this.now()),
      reason: input.reason ?? null,
      keyFingerprint: input.keyFingerprint ?? null,
    });
    return toRevokedCredential(this.bySerialStmt.get(input.certSerial)!);
  }

  /**
   * Revokes several certificates of one host at once, all or none (a serial given as a plain
   * string has no key recorded). Returns the stored revocations in the order given.
   */
  revokeHost(
    hostId: string,
    serials: ReadonlyArray<string | RevocableCredential>,
    reason: string | null,
  ): RevokedCredential[] {
    return this.db
      .transaction(() =>
        serials.map((entry) => {
          const credential = typeof entry === 'string' ? { certSerial: entry } : entry;
          return this.revoke({ hostId, reason, ...credential });
        }),
      )
      .immediate();
  }

  getBySerial(certSerial: string): RevokedCredential | undefined {
    const row = this.bySerialStmt.get(certSerial);
    return row === undefined ? undefined : toRevokedCredential(row);
  }

  isRevoked(certSerial: string): boolean {
    return this.isRevokedStmt.get(certSerial) !== undefined;
  }

  /** True when any revoked certificate carried this key: a revoked key never comes back. */
  isKeyRevoked(keyFingerprint: string): boolean {
    return this.isKeyRevokedStmt.get(keyFingerprint) !== undefined;
  }

  list(): RevokedCredential[] {
    return this.listStmt.all().map(toRevokedCredential);
  }

  listForHost(hostId: string): RevokedCredential[] {
    return this.forHostStmt.all(hostId).map(toRevokedCredential);
  }
}

function toRevokedCredential(row: RevokedCredentialRow): RevokedCredential {
  return {
    id: row.id,
    hostId: row.host_id,
    certSerial: row.cert_serial,
    revokedAt: fromStoredTime(row.revoked_at),
    reason: row.reason,
    keyFingerprint: row.key_fingerprint,
  };
}
