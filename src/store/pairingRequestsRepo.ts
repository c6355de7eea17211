import { randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
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
  private readonly insertStmt: Statement;
  private readonly byIdStmt: Statement<[string], PairingRequestRow>;
  private readonly byRequestIdHashStmt: Statement<[string], PairingRequestRow>;
  private readonly forHostStmt: Statement<[string], PairingRequestRow>;
  private readonly findPendingStmt: Statement<[string, string], PairingRequestRow>;
  private readonly listPendingStmt: Statement<[string], PairingRequestRow>;
  private readonly pendingCodesStmt: Statement<[], string>;
  private readonly pendingWithKeyStmt: Statement<[string, string], { found: number }>;
  private readonly updateStatusStmt: Statement;
  private readonly approveStmt: Statement;
  private readonly denyStmt: Statement;
  private readonly expireOneStmt: Statement<{ id: string; now: string }, PairingRequestRow>;
  private readonly deleteExpiredStmt: Statement<[string]>;
  private readonly markExpiredStmt: Statement<{ now: string }, PairingRequestRow>;

  constructor(
    db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO pairing_requests
         (id, host_id, pairing_code, csr, requested_at, expires_at, status,
          request_id_hash, source_address, key_fingerprint, re_pair)
       VALUES (@id, @hostId, @pairingCode, @csr, @requestedAt, @expiresAt, 'pending',
          @requestIdHash, @sourceAddress, @keyFingerprint, @rePair)`,
    );
    this.byIdStmt = db.prepare('SELECT * FROM pairing_requests WHERE id = ?');
    this.byRequestIdHashStmt = db.prepare('SELECT * FROM pairing_requests WHERE request_id_hash = ?');
    this.forHostStmt = db.prepare(
      'SELECT * FROM pairing_requests WHERE host_id = ? ORDER BY requested_at DESC, rowid DESC',
    );
    this.findPendingStmt = db.prepare(
      `SELECT * FROM pairing_requests
        WHERE host_id = ? AND pairing_code = ? AND status = 'pending'
        ORDER BY requested_at DESC, rowid DESC LIMIT 1`,
    );
    // rowid keeps insertion order among requests made in the same millisecond.
    this.listPendingStmt = db.prepare(
      `SELECT * FROM pairing_requests
        WHERE status = 'pending' AND expires_at > ?
        ORDER BY requested_at, rowid`,
    );
    this.pendingCodesStmt = db
      .prepare<[], string>("SELECT pairing_code FROM pairing_requests WHERE status = 'pending'")
      .pluck();
    this.pendingWithKeyStmt = db.prepare(
      `SELECT 1 AS found FROM pairing_requests
        WHERE key_fingerprint = ? AND status = 'pending' AND expires_at > ? LIMIT 1`,
    );
    this.updateStatusStmt = db.prepare(
      'UPDATE pairing_requests SET status = @to WHERE id = @id AND status = @from',
    );
    this.approveStmt = db.prepare(
      `UPDATE pairing_requests
          SET status = 'approved', client_cert = @clientCert, cert_serial = @certSerial,
              cert_expires_at = @certExpiresAt, decided_at = @decidedAt, re_pair = @rePair
        WHERE id = @id AND status = 'pending'`,
    );
    this.denyStmt = db.prepare(
      `UPDATE pairing_requests SET status = 'denied', decided_at = @decidedAt
        WHERE id = @id AND status = 'pending'`,
    );
    this.expireOneStmt = db.prepare(
      `UPDATE pairing_requests SET status = 'expired', decided_at = @now
        WHERE id = @id AND status = 'pending' AND expires_at <= @now
        RETURNING *`,
    );
    this.deleteExpiredStmt = db.prepare('DELETE FROM pairing_requests WHERE expires_at <= ?');
    this.markExpiredStmt = db.prepare(
      `UPDATE pairing_requests SET status = 'expired', decided_at = @now
        WHERE status = 'pending' AND expires_at <= @now
        RETURNING *`,
    );
  }

  create(input: NewPairingRequest): PairingRequest {
    const id = randomUUID();
    this.insertStmt.run({
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
    });
    return this.get(id)!;
  }

  get(id: string): PairingRequest | undefined {
    const row = this.byIdStmt.get(id);
    return row === undefined ? undefined : toPairingRequest(row);
  }

  getByRequestIdHash(requestIdHash: string): PairingRequest | undefined {
    const row = this.byRequestIdHashStmt.get(requestIdHash);
    return row === undefined ? undefined : toPairingRequest(row);
  }

  /**
   * Every stored request of a host, whatever its status, newest first. Lets the service compare
   * pairing codes itself (in constant time) instead of matching them in SQL.
   */
  listForHost(hostId: string): PairingRequest[] {
    return this.forHostStmt.all(hostId).map(toPairingRequest);
  }

  /** Matches on status only: whether it has run out is for the caller to compare with expiresAt. */
  findPending(hostId: string, pairingCode: string): PairingRequest | undefined {
    const row = this.findPendingStmt.get(hostId, pairingCode);
    return row === undefined ? undefined : toPairingRequest(row);
  }

  /** Pending requests that have not run out at `now`, oldest first. */
  listPending(now: Date): PairingRequest[] {
    return this.listPendingStmt.all(toStoredTime(now)).map(toPairingRequest);
  }

  /** Codes of every request still marked pending, including ones the sweeper has not expired yet. */
  pendingCodes(): Set<string> {
    return new Set(this.pendingCodesStmt.all());
  }

  hasPendingWithKey(keyFingerprint: string, now: Date): boolean {
    return this.pendingWithKeyStmt.get(keyFingerprint, toStoredTime(now)) !== undefined;
  }

  /**
   * Compare-and-set: changes the status only if it is still `fromStatus`, and says whether it did.
   * Of two admins approving the same request at once, exactly one gets true.
   */
  updateStatus(id: string, fromStatus: PairingStatus, toStatus: PairingStatus): boolean {
    return this.updateStatusStmt.run({ id, from: fromStatus, to: toStatus }).changes === 1;
  }

  /** Compare-and-set pending → approved, recording the issued certificate; false if it lost. */
  recordApproval(id: string, approval: PairingApproval): boolean {
    const result = this.approveStmt.run({
      id,
      clientCert: approval.clientCert,
      certSerial: approval.certSerial,
      certExpiresAt: toStoredTime(approval.certExpiresAt),
      decidedAt: toStoredTime(approval.decidedAt),
      rePair: approval.rePair ? 1 : 0,
    });
    return result.changes === 1;
  }

  /** Compare-and-set pending → denied; false if it lost. */
  recordDenial(id: string, decidedAt: Date): boolean {
    return this.denyStmt.run({ id, decidedAt: toStoredTime(decidedAt) }).changes === 1;
  }

  /** Moves one pending request that has run out at `now` to `expired`; returns it if it did. */
  expireOne(id: string, now: Date): PairingRequest | undefined {
    const row = this.expireOneStmt.get({ id, now: toStoredTime(now) });
    return row === undefined ? undefined : toPairingRequest(row);
  }

  /**
   * Deletes every request, whatever its status, whose expiry is at or before `now`; returns how
   * many. Call markExpired first if pending ones should be reported, and pass an earlier time to
   * keep finished requests around for a while.
   */
  deleteExpired(now: Date): number {
    return this.deleteExpiredStmt.run(toStoredTime(now)).changes;
  }

  /** Moves pending requests that have run out to `expired`, atomically, and returns them. */
  markExpired(now: Date): PairingRequest[] {
    return this.markExpiredStmt.all({ now: toStoredTime(now) }).map(toPairingRequest);
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
