import { randomUUID } from 'node:crypto';
import type { SqlExecutor } from './sql.js';
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
  constructor(
    private readonly sql: SqlExecutor,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Returns the stored revocation; revoking a serial again keeps the first record (time, reason). */
  async revoke(input: NewRevocation): Promise<RevokedCredential> {
    // The unique index on cert_serial (migration 2) turns a second revocation into a no-op.
    await this.sql.run(
      `INSERT INTO revoked_slave_credentials (id, host_id, cert_serial, revoked_at, reason, key_fingerprint)
       VALUES (@id, @hostId, @certSerial, @revokedAt, @reason, @keyFingerprint)
       ON CONFLICT (cert_serial) DO NOTHING`,
      {
        id: randomUUID(),
        hostId: input.hostId,
        certSerial: input.certSerial,
        revokedAt: toStoredTime(this.now()),
        reason: input.reason ?? null,
        keyFingerprint: input.keyFingerprint ?? null,
      },
    );
    return (await this.getBySerial(input.certSerial))!;
  }

  /**
   * Revokes several certificates of one host at once, all or none (a serial given as a plain
   * string has no key recorded). Returns the stored revocations in the order given.
   */
  revokeHost(
    hostId: string,
    serials: ReadonlyArray<string | RevocableCredential>,
    reason: string | null,
  ): Promise<RevokedCredential[]> {
    return this.sql.atomically(async (sql) => {
      const repo = new RevokedCredentialsRepo(sql, this.now);
      const stored: RevokedCredential[] = [];
      for (const entry of serials) {
        const credential = typeof entry === 'string' ? { certSerial: entry } : entry;
        stored.push(await repo.revoke({ hostId, reason, ...credential }));
      }
      return stored;
    });
  }

  async getBySerial(certSerial: string): Promise<RevokedCredential | undefined> {
    const row = await this.sql.get<RevokedCredentialRow>(
      'SELECT * FROM revoked_slave_credentials WHERE cert_serial = @certSerial',
      { certSerial },
    );
    return row === undefined ? undefined : toRevokedCredential(row);
  }

  async isRevoked(certSerial: string): Promise<boolean> {
    const row = await this.sql.get(
      'SELECT 1 AS found FROM revoked_slave_credentials WHERE cert_serial = @certSerial',
      {
        certSerial,
      },
    );
    return row !== undefined;
  }

  /** True when any revoked certificate carried this key: a revoked key never comes back. */
  async isKeyRevoked(keyFingerprint: string): Promise<boolean> {
    const row = await this.sql.get(
      'SELECT 1 AS found FROM revoked_slave_credentials WHERE key_fingerprint = @keyFingerprint LIMIT 1',
      { keyFingerprint },
    );
    return row !== undefined;
  }

  async list(): Promise<RevokedCredential[]> {
    const rows = await this.sql.all<RevokedCredentialRow>(
      `SELECT * FROM revoked_slave_credentials ORDER BY revoked_at, ${this.sql.dialect.insertionOrder}`,
    );
    return rows.map(toRevokedCredential);
  }

  async listForHost(hostId: string): Promise<RevokedCredential[]> {
    const rows = await this.sql.all<RevokedCredentialRow>(
      `SELECT * FROM revoked_slave_credentials WHERE host_id = @hostId
        ORDER BY revoked_at, ${this.sql.dialect.insertionOrder}`,
      { hostId },
    );
    return rows.map(toRevokedCredential);
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
