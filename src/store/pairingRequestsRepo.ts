import { randomUUID } from 'node:crypto';
import type { SqlExecutor, SqlParams } from './sql.js';
import { fromStoredTime, fromStoredTimeOrNull, toStoredTime } from './time.js';

export type PairingStatus = 'pending' | 'approved' | 'denied' | 'expired';

export interface PairingRequest {
  id: string;
  hostId: string;
  pairingCode: string;
  csr: string;
  requestedAt: Date;
  expiresAt: Date;
  status: PairingStatus;
  /** sha256 (hex) of the request id handed to the slave; the id itself is never stored. */
  requestIdHash: string | null;
  sourceAddress: string | null;
  keyFingerprint: string | null;
  /** Whether the host was already enrolled when the request was made (or approved). */
  rePair: boolean;
  /** Set on approval: the issued certificate, for the slave to pick up. */
  clientCert: string | null;
  certSerial: string | null;
  certExpiresAt: Date | null;
  /** When the request left `pending`, whichever way. */
  decidedAt: Date | null;
}

export interface NewPairingRequest {
  hostId: string;
  pairingCode: string;
  csr: string;
  expiresAt: Date;
  /** Defaults to the store's clock; a service with its own clock passes it so both agree. */
  requestedAt?: Date;
  requestIdHash?: string | null;
  sourceAddress?: string | null;
  keyFingerprint?: string | null;
  rePair?: boolean;
}

export interface PairingApproval {
  clientCert: string;
  certSerial: string;
  certExpiresAt: Date;
  decidedAt: Date;
  rePair: boolean;
}

interface PairingRequestRow {
  id: string;
  host_id: string;
  pairing_code: string;
  csr: string;
  requested_at: string;
  expires_at: string;
  status: string;
  request_id_hash: string | null;
  source_address: string | null;
  key_fingerprint: string | null;
  re_pair: number;
  client_cert: string | null;
  cert_serial: string | null;
  cert_expires_at: string | null;
  decided_at: string | null;
}

/**
 * Pairing requests and their lifecycle. A request is expired once `expires_at <= now`; the
 * service decides what "now" is, so every time-dependent query takes it as an argument.
 */
export class PairingRequestsRepo {
  constructor(
    private readonly sql: SqlExecutor,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(input: NewPairingRequest): Promise<PairingRequest> {
    const id = randomUUID();
    await this.sql.run(
      `INSERT INTO pairing_requests
         (id, host_id, pairing_code, csr, requested_at, expires_at, status,
          request_id_hash, source_address, key_fingerprint, re_pair)
       VALUES (@id, @hostId, @pairingCode, @csr, @requestedAt, @expiresAt, 'pending',
          @requestIdHash, @sourceAddress, @keyFingerprint, @rePair)`,
      {
        id,
        hostId: input.hostId,
        pairingCode: input.pairingCode,
        csr: input.csr,
        requestedAt: toStoredTime(input.requestedAt ?? this.now()),
        expiresAt: toStoredTime(input.expiresAt),
        requestIdHash: input.requestIdHash ?? null,
        sourceAddress: input.sourceAddress ?? null,
        keyFingerprint: input.keyFingerprint ?? null,
        rePair: input.rePair ? 1 : 0,
      },
    );
    return (await this.get(id))!;
  }

  get(id: string): Promise<PairingRequest | undefined> {
    return this.one('SELECT * FROM pairing_requests WHERE id = @id', { id });
  }

  getByRequestIdHash(requestIdHash: string): Promise<PairingRequest | undefined> {
    return this.one('SELECT * FROM pairing_requests WHERE request_id_hash = @requestIdHash', {
      requestIdHash,
    });
  }

  /**
   * Every stored request of a host, whatever its status, newest first. Lets the service compare
   * pairing codes itself (in constant time) instead of matching them in SQL.
   */
  listForHost(hostId: string): Promise<PairingRequest[]> {
    return this.many(
      `SELECT * FROM pairing_requests WHERE host_id = @hostId
        ORDER BY requested_at DESC, ${this.order} DESC`,
      { hostId },
    );
  }

  /** Matches on status only: whether it has run out is for the caller to compare with expiresAt. */
  findPending(hostId: string, pairingCode: string): Promise<PairingRequest | undefined> {
    return this.one(
      `SELECT * FROM pairing_requests
        WHERE host_id = @hostId AND pairing_code = @pairingCode AND status = 'pending'
        ORDER BY requested_at DESC, ${this.order} DESC LIMIT 1`,
      { hostId, pairingCode },
    );
  }

  /** Pending requests that have not run out at `now`, oldest first. */
  listPending(now: Date): Promise<PairingRequest[]> {
    // The insertion order keeps requests made in the same millisecond in order.
    return this.many(
      `SELECT * FROM pairing_requests
        WHERE status = 'pending' AND expires_at > @now
        ORDER BY requested_at, ${this.order}`,
      { now: toStoredTime(now) },
    );
  }

  /** Codes of every request still marked pending, including ones the sweeper has not expired yet. */
  async pendingCodes(): Promise<Set<string>> {
    const rows = await this.sql.all<{ pairing_code: string }>(
      "SELECT pairing_code FROM pairing_requests WHERE status = 'pending'",
    );
    return new Set(rows.map((row) => row.pairing_code));
  }

  async hasPendingWithKey(keyFingerprint: string, now: Date): Promise<boolean> {
    const row = await this.sql.get(
      `SELECT 1 AS found FROM pairing_requests
        WHERE key_fingerprint = @keyFingerprint AND status = 'pending' AND expires_at > @now LIMIT 1`,
      { keyFingerprint, now: toStoredTime(now) },
    );
    return row !== undefined;
  }

  /**
   * Compare-and-set: changes the status only if it is still `fromStatus`, and says whether it did.
   * Of two admins approving the same request at once, exactly one gets true, on one master or
   * several (the UPDATE re-reads the row under its lock).
   */
  async updateStatus(id: string, fromStatus: PairingStatus, toStatus: PairingStatus): Promise<boolean> {
    const changed = await this.sql.run(
      'UPDATE pairing_requests SET status = @to WHERE id = @id AND status = @from',
      { id, from: fromStatus, to: toStatus },
    );
    return changed === 1;
  }

  /** Compare-and-set pending → approved, recording the issued certificate; false if it lost. */
  async recordApproval(id: string, approval: PairingApproval): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE pairing_requests
          SET status = 'approved', client_cert = @clientCert, cert_serial = @certSerial,
              cert_expires_at = @certExpiresAt, decided_at = @decidedAt, re_pair = @rePair
        WHERE id = @id AND status = 'pending'`,
      {
        id,
        clientCert: approval.clientCert,
        certSerial: approval.certSerial,
        certExpiresAt: toStoredTime(approval.certExpiresAt),
        decidedAt: toStoredTime(approval.decidedAt),
        rePair: approval.rePair ? 1 : 0,
      },
    );
    return changed === 1;
  }

  /** Compare-and-set pending → denied; false if it lost. */
  async recordDenial(id: string, decidedAt: Date): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE pairing_requests SET status = 'denied', decided_at = @decidedAt
        WHERE id = @id AND status = 'pending'`,
      { id, decidedAt: toStoredTime(decidedAt) },
    );
    return changed === 1;
  }

  /** Moves one pending request that has run out at `now` to `expired`; returns it if it did. */
  expireOne(id: string, now: Date): Promise<PairingRequest | undefined> {
    return this.one(
      `UPDATE pairing_requests SET status = 'expired', decided_at = @now
        WHERE id = @id AND status = 'pending' AND expires_at <= @now
        RETURNING *`,
      { id, now: toStoredTime(now) },
    );
  }

  /**
   * Deletes every request, whatever its status, whose expiry is at or before `now`; returns how
   * many. Call markExpired first if pending ones should be reported, and pass an earlier time to
   * keep finished requests around for a while.
   */
  deleteExpired(now: Date): Promise<number> {
    return this.sql.run('DELETE FROM pairing_requests WHERE expires_at <= @now', { now: toStoredTime(now) });
  }

  /** Moves pending requests that have run out to `expired`, atomically, and returns them. */
  markExpired(now: Date): Promise<PairingRequest[]> {
    return this.many(
      `UPDATE pairing_requests SET status = 'expired', decided_at = @now
        WHERE status = 'pending' AND expires_at <= @now
        RETURNING *`,
      { now: toStoredTime(now) },
    );
  }

  private get order(): string {
    return this.sql.dialect.insertionOrder;
  }

  private async one(query: string, params: SqlParams): Promise<PairingRequest | undefined> {
    const rows = await this.sql.all<PairingRequestRow>(query, params);
    return rows[0] === undefined ? undefined : toPairingRequest(rows[0]);
  }

  private async many(query: string, params: SqlParams): Promise<PairingRequest[]> {
    return (await this.sql.all<PairingRequestRow>(query, params)).map(toPairingRequest);
  }
}

function toPairingRequest(row: PairingRequestRow): PairingRequest {
  return {
    id: row.id,
    hostId: row.host_id,
    pairingCode: row.pairing_code,
    csr: row.csr,
    requestedAt: fromStoredTime(row.requested_at),
    expiresAt: fromStoredTime(row.expires_at),
    // Only this repository writes the column, and only PairingStatus values.
    status: row.status as PairingStatus,
    requestIdHash: row.request_id_hash,
    sourceAddress: row.source_address,
    keyFingerprint: row.key_fingerprint,
    rePair: row.re_pair !== 0,
    clientCert: row.client_cert,
    certSerial: row.cert_serial,
    certExpiresAt: fromStoredTimeOrNull(row.cert_expires_at),
    decidedAt: fromStoredTimeOrNull(row.decided_at),
  };
}
