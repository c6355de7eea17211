import { randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { fromStoredTime, toStoredTime } from './time.js';

export type PairingStatus = 'pending' | 'approved' | 'denied' | 'expired';

export interface PairingRequest {
  id: string;
  hostId: string;
  pairingCode: string;
  csr: string;
  requestedAt: Date;
  expiresAt: Date;
  status: PairingStatus;
}

export interface NewPairingRequest {
  hostId: string;
  pairingCode: string;
  csr: string;
  expiresAt: Date;
}

interface PairingRequestRow {
  id: string;
  host_id: string;
  pairing_code: string;
  csr: string;
  requested_at: string;
  expires_at: string;
  status: string;
}

/**
 * Pairing requests and their lifecycle. A request is expired once `expires_at <= now`; the
 * service decides what "now" is, so every time-dependent query takes it as an argument.
 */
export class PairingRequestsRepo {
  private readonly insertStmt: Statement;
  private readonly byIdStmt: Statement<[string], PairingRequestRow>;
  private readonly findPendingStmt: Statement<[string, string], PairingRequestRow>;
  private readonly listPendingStmt: Statement<[string], PairingRequestRow>;
  private readonly updateStatusStmt: Statement;
  private readonly deleteExpiredStmt: Statement<[string]>;
  private readonly markExpiredStmt: Statement<[string], PairingRequestRow>;

  constructor(
    db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO pairing_requests (id, host_id, pairing_code, csr, requested_at, expires_at, status)
       VALUES (@id, @hostId, @pairingCode, @csr, @requestedAt, @expiresAt, 'pending')`,
    );
    this.byIdStmt = db.prepare('SELECT * FROM pairing_requests WHERE id = ?');
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
    this.updateStatusStmt = db.prepare(
      'UPDATE pairing_requests SET status = @to WHERE id = @id AND status = @from',
    );
    this.deleteExpiredStmt = db.prepare('DELETE FROM pairing_requests WHERE expires_at <= ?');
    this.markExpiredStmt = db.prepare(
      `UPDATE pairing_requests SET status = 'expired'
        WHERE status = 'pending' AND expires_at <= ?
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
      requestedAt: toStoredTime(this.now()),
      expiresAt: toStoredTime(input.expiresAt),
    });
    return this.get(id)!;
  }

  get(id: string): PairingRequest | undefined {
    const row = this.byIdStmt.get(id);
    return row === undefined ? undefined : toPairingRequest(row);
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

  /**
   * Compare-and-set: changes the status only if it is still `fromStatus`, and says whether it did.
   * Of two admins approving the same request at once, exactly one gets true.
   */
  updateStatus(id: string, fromStatus: PairingStatus, toStatus: PairingStatus): boolean {
    return this.updateStatusStmt.run({ id, from: fromStatus, to: toStatus }).changes === 1;
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
    return this.markExpiredStmt.all(toStoredTime(now)).map(toPairingRequest);
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
  };
}
