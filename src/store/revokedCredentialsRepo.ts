import { randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { fromStoredTime, toStoredTime } from './time.js';

export interface RevokedCredential {
  id: string;
  hostId: string;
  certSerial: string;
  revokedAt: Date;
  reason: string | null;
}

export interface NewRevocation {
  hostId: string;
  certSerial: string;
  reason?: string | null;
}

interface RevokedCredentialRow {
  id: string;
  host_id: string;
  cert_serial: string;
  revoked_at: string;
  reason: string | null;
}

/** The revocation log, checked by certificate serial on every slave connection. */
export class RevokedCredentialsRepo {
  private readonly insertStmt: Statement;
  private readonly bySerialStmt: Statement<[string], RevokedCredentialRow>;
  private readonly isRevokedStmt: Statement<[string], { found: number }>;
  private readonly listStmt: Statement<[], RevokedCredentialRow>;

  constructor(
    db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    // The unique index on cert_serial (migration 2) turns a second revocation into a no-op.
    this.insertStmt = db.prepare(
      `INSERT INTO revoked_slave_credentials (id, host_id, cert_serial, revoked_at, reason)
       VALUES (@id, @hostId, @certSerial, @revokedAt, @reason)
       ON CONFLICT (cert_serial) DO NOTHING`,
    );
    this.bySerialStmt = db.prepare('SELECT * FROM revoked_slave_credentials WHERE cert_serial = ?');
    this.isRevokedStmt = db.prepare('SELECT 1 AS found FROM revoked_slave_credentials WHERE cert_serial = ?');
    this.listStmt = db.prepare('SELECT * FROM revoked_slave_credentials ORDER BY revoked_at, rowid');
  }

  /** Returns the stored revocation; revoking a serial again keeps the first record (time, reason). */
  revoke(input: NewRevocation): RevokedCredential {
    this.insertStmt.run({
      id: randomUUID(),
      hostId: input.hostId,
      certSerial: input.certSerial,
      revokedAt: toStoredTime(this.now()),
      reason: input.reason ?? null,
    });
    return toRevokedCredential(this.bySerialStmt.get(input.certSerial)!);
  }

  isRevoked(certSerial: string): boolean {
    return this.isRevokedStmt.get(certSerial) !== undefined;
  }

  list(): RevokedCredential[] {
    return this.listStmt.all().map(toRevokedCredential);
  }
}

function toRevokedCredential(row: RevokedCredentialRow): RevokedCredential {
  return {
    id: row.id,
    hostId: row.host_id,
    certSerial: row.cert_serial,
    revokedAt: fromStoredTime(row.revoked_at),
    reason: row.reason,
  };
}
