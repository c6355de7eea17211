import type { SqlExecutor, SqlParams, SqlValue } from './sql.js';
import { fromStoredTime, toStoredTime } from './time.js';

/**
 * One row of the audit trail as written. Kind and outcome are the audit layer's vocabulary
 * (audit/auditEvent.ts); the store keeps them as text, so that rows of a newer Diane still read.
 */
export interface AuditRecord {
  at: Date;
  /** The agent's name. In the slave's file: what the master said (`master_agent`), unverified. */
  agent: string | null;
  kind: string;
  exposedName: string | null;
  /** The slave host that served the call; null for the master's own servers. Master only. */
  host: string | null;
  server: string | null;
  originalName: string | null;
  durationMs: number | null;
  outcome: string;
  error: string | null;
  bytesIn: number | null;
  bytesOut: number | null;
  /** The redacted arguments as JSON text, when the agent's arguments are recorded. */
  arguments: string | null;
  callId: string | null;
}

export interface StoredAuditEvent extends AuditRecord {
  id: number;
}

export interface AuditQuery {
  agent?: string;
  host?: string;
  outcome?: string;
  kind?: string;
  /** Rows at or after this time. */
  since?: Date;
  /** Rows before this time. */
  until?: Date;
  /** Rows with an id greater than this (paging forward, following). */
  afterId?: number;
  /** At most this many rows (default 100). */
  limit?: number;
  /**
   * The newest `limit` matching rows instead of the oldest. Either way the rows come back in id
   * order, oldest first.
   */
  newest?: boolean;
}

/** The two tables the repository serves: the master's and the slave's. */
export interface AuditTable {
  /** `agent` on the master, `master_agent` on the slave. */
  readonly agentColumn: 'agent' | 'master_agent';
  /** Whether the table has a `host` column; a slave's rows are all of the slave itself. */
  readonly hasHost: boolean;
}

export const MASTER_AUDIT_TABLE: AuditTable = { agentColumn: 'agent', hasHost: true };
export const SLAVE_AUDIT_TABLE: AuditTable = { agentColumn: 'master_agent', hasHost: false };

const DEFAULT_QUERY_LIMIT = 100;

/** A row of `audit_events` as SQLite returns it; the admin API's JSON has the same columns. */
export interface AuditRow {
  id: number;
  at: string;
  agent: string | null;
  kind: string;
  exposed_name: string | null;
  host: string | null;
  server: string | null;
  original_name: string | null;
  duration_ms: number | null;
  outcome: string;
  error: string | null;
  bytes_in: number | null;
  bytes_out: number | null;
  arguments: string | null;
  call_id: string | null;
}

/**
 * The audit trail: appended in batches by audit/AuditLog, read by id, trimmed from the old end.
 * Column names in the SQL below come from `AuditTable`, never from input.
 */
export class AuditRepo {
  private readonly insertSql: string;
  /** What a row is selected as: the slave's columns renamed to the master's. */
  private readonly columns: string;

  constructor(
    private readonly sql: SqlExecutor,
    private readonly table: AuditTable = MASTER_AUDIT_TABLE,
    private readonly now: () => Date = () => new Date(),
  ) {
    const agent = table.agentColumn;
    const host = table.hasHost ? ', host' : '';
    this.insertSql = `INSERT INTO audit_events
         (at, ${agent}, kind, exposed_name${host}, server, original_name, duration_ms, outcome, error,
          bytes_in, bytes_out, arguments, call_id)
       VALUES (@at, @agent, @kind, @exposedName${table.hasHost ? ', @host' : ''}, @server, @originalName,
               @durationMs, @outcome, @error, @bytesIn, @bytesOut, @arguments, @callId)
       RETURNING id`;
    this.columns =
      `id, at, ${agent} AS agent, kind, exposed_name, ${table.hasHost ? 'host' : 'NULL AS host'}, server, ` +
      'original_name, duration_ms, outcome, error, bytes_in, bytes_out, arguments, call_id';
  }

  /**
   * Appends the rows in one transaction, all or none, and returns them with their ids. Ids are
   * given in commit order on every backend (SqlDialect.commitOrderLock): a reader that has seen
   * id N has seen every row below N that will ever exist, which followers rely on.
   */
  insertMany(records: readonly AuditRecord[]): Promise<StoredAuditEvent[]> {
    return this.sql.atomically(async (sql) => {
      const lock = sql.dialect.commitOrderLock('audit_events');
      if (lock !== undefined) await sql.get(lock);
      const stored: StoredAuditEvent[] = [];
      for (const record of records) {
        const row = await sql.get<{ id: number }>(this.insertSql, toParams(record, this.table));
        stored.push({ id: Number(row!.id), ...record, host: this.table.hasHost ? record.host : null });
      }
      return stored;
    });
  }

  async query(filter: AuditQuery = {}): Promise<StoredAuditEvent[]> {
    const where: string[] = [];
    const params: Record<string, SqlValue> = {};
    const equal = (column: string, name: string, value: string | undefined) => {
      if (value === undefined) return;
      where.push(`${column} = @${name}`);
      params[name] = value;
    };
    equal(this.table.agentColumn, 'agent', filter.agent);
    if (filter.host !== undefined) {
      // The slave's table has no host: every row is the slave's own, none matches another host.
      if (!this.table.hasHost) return [];
      equal('host', 'host', filter.host);
    }
    equal('outcome', 'outcome', filter.outcome);
    equal('kind', 'kind', filter.kind);
    if (filter.since !== undefined) {
      where.push('at >= @since');
      params.since = toStoredTime(filter.since);
    }
    if (filter.until !== undefined) {
      where.push('at < @until');
      params.until = toStoredTime(filter.until);
    }
    if (filter.afterId !== undefined) {
      where.push('id > @afterId');
      params.afterId = filter.afterId;
    }
    params.limit = filter.limit ?? DEFAULT_QUERY_LIMIT;
    const query =
      `SELECT ${this.columns} FROM audit_events` +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY id ${filter.newest ? 'DESC' : 'ASC'} LIMIT @limit`;
    const rows = (await this.sql.all<AuditRow>(query, params)).map(toStored);
    return filter.newest ? rows.reverse() : rows;
  }

  /** The id of the newest row, 0 when there is none: where a follower starts. */
  async maxId(): Promise<number> {
    const row = await this.sql.get<{ id: number | null }>('SELECT max(id) AS id FROM audit_events');
    return Number(row?.id ?? 0);
  }

  async count(): Promise<number> {
    const row = await this.sql.get<{ n: number }>('SELECT count(*) AS n FROM audit_events');
    return Number(row?.n ?? 0);
  }

  /**
   * Deletes rows older than `maxAgeMs` and, beyond that, the oldest rows past the newest
   * `maxRows`. At most `chunk` rows go per call (call again until it returns 0). Returns the
   * number of rows deleted.
   */
  async trim(maxAgeMs: number, maxRows: number, chunk = Number.MAX_SAFE_INTEGER): Promise<number> {
    const cutoff = toStoredTime(new Date(this.now().getTime() - maxAgeMs));
    // Trims go in chunks, each its own statement, so that no single write holds the lock (and the
    // event loop) for a long time; the caller loops until a chunk deletes nothing.
    let deleted = await this.sql.run(
      `DELETE FROM audit_events WHERE id IN
         (SELECT id FROM audit_events WHERE at < @cutoff ORDER BY id LIMIT @chunk)`,
      { cutoff, chunk },
    );
    if (deleted < chunk) {
      const boundary = await this.sql.get<{ id: number }>(
        'SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET @offset',
        { offset: maxRows },
      );
      if (boundary !== undefined) {
        deleted += await this.sql.run(
          `DELETE FROM audit_events WHERE id IN
             (SELECT id FROM audit_events WHERE id <= @upTo ORDER BY id LIMIT @chunk)`,
          { upTo: Number(boundary.id), chunk: chunk - deleted },
        );
      }
    }
    return deleted;
  }
}

function toParams(r: AuditRecord, table: AuditTable): SqlParams {
  return {
    at: toStoredTime(r.at),
    agent: r.agent,
    kind: r.kind,
    exposedName: r.exposedName,
    ...(table.hasHost ? { host: r.host } : {}),
    server: r.server,
    originalName: r.originalName,
    durationMs: r.durationMs,
    outcome: r.outcome,
    error: r.error,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    arguments: r.arguments,
    callId: r.callId,
  };
}

function toStored(row: AuditRow): StoredAuditEvent {
  return {
    id: row.id,
    at: fromStoredTime(row.at),
    agent: row.agent,
    kind: row.kind,
    exposedName: row.exposed_name,
    host: row.host,
    server: row.server,
    originalName: row.original_name,
    durationMs: row.duration_ms,
    outcome: row.outcome,
    error: row.error,
    bytesIn: row.bytes_in,
    bytesOut: row.bytes_out,
    arguments: row.arguments,
    callId: row.call_id,
  };
}
