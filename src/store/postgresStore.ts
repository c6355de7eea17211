import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { AgentsRepo } from './agentsRepo.js';
import type { AuditRepo } from './auditRepo.js';
import { StoreError } from './errors.js';
import type { Migration } from './migrations.js';
import type { PairingRequestsRepo } from './pairingRequestsRepo.js';
import { postgresMigrations } from './postgresMigrations.js';
import type { RevokedCredentialsRepo } from './revokedCredentialsRepo.js';
import type { SlaveServersRepo } from './slaveServersRepo.js';
import { namedToPositional, type SqlDialect, type SqlExecutor, type SqlParams } from './sql.js';
import { type MasterRepos, type MasterStore, masterRepos, type TryWriteResult } from './store.js';
import { TransactionMarker } from './transactionMarker.js';

/** The settings of the PostgreSQL store, in one place. */
export const POSTGRES_STORE_DEFAULTS = {
  /** Connections per master. Transactions hold one each; the rest serve single statements. */
  poolSize: 10,
  /** How long to wait for the server when connecting before calling it unreachable. */
  connectTimeoutMs: 10_000,
  /** A background write gives up on a row or table lock held this long by another master. */
  tryWriteLockTimeoutMs: 50,
  /** Attempts of a transaction that keeps failing to serialise against other masters. */
  maxTransactionAttempts: 20,
};

export interface PostgresStoreOptions {
  connectionString: string;
  /** The schema holding Diane's tables; created on first use. A plain identifier. */
  schema: string;
  /** For messages: the URL without its password. */
  display: string;
  now?: () => Date;
  settings?: Partial<typeof POSTGRES_STORE_DEFAULTS>;
}

/** SQLSTATEs this file acts on. */
const SQLSTATE = {
  uniqueViolation: '23505',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
} as const;

/** First key of the two-key advisory lock Diane's migrations take ("DIAN"); the second is the schema's hash. */
const MIGRATION_LOCK_CLASS = 0x4449414e;
/** First key of the advisory lock that puts appends to a table in commit order ("DAPP"). */
const APPEND_LOCK_CLASS = 0x44415050;

const POSTGRES_DIALECT: SqlDialect = {
  name: 'postgres',
  insertionOrder: 'seq',
  /**
   * Identity values are taken when a row is inserted, not when it commits: with two masters
   * appending at once, the row with id 11 may commit before the one with id 10, and a follower
   * that has read 11 and goes on "after 11" never sees 10. Appends therefore take a
   * transaction-scoped advisory lock (per schema and table) before their first id: the next
   * appender gets its ids only after the previous one committed and became visible (PostgreSQL
   * releases a transaction's locks after its commit is visible), so ids are in commit order, as
   * with SQLite's single writer, and `after_id` stays exact for followers and for paging.
   * An advisory lock rather than LOCK TABLE, which would also queue behind (auto)vacuum; it obeys
   * `lock_timeout`, so a background append (`tryWrite`) that meets another master's skips its round.
   * The price is one appender at a time across masters: audit batches are short transactions.
   */
  commitOrderLock: (table) =>
    `SELECT pg_advisory_xact_lock(${APPEND_LOCK_CLASS}, hashtext(current_schema() || '.${table}'))`,
  isUniqueViolation(err, table, column) {
    const e = err as { code?: unknown; table?: unknown; constraint?: unknown };
    return (
      e.code === SQLSTATE.uniqueViolation &&
      e.table === table &&
      typeof e.constraint === 'string' &&
      e.constraint.includes(column)
    );
  },
};

/** BIGINT (ids, counts) as numbers, like SQLite gives them: every value Diane stores is below 2^53. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Opens the master's store in a PostgreSQL schema, creating and migrating it first. Several
 * masters may start at once: the migrations run under an advisory lock, so exactly one applies
 * them and the others find them done.
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresMasterStore> {
  const settings = { ...POSTGRES_STORE_DEFAULTS, ...opts.settings };
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: settings.poolSize,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    types: TYPES,
    // Every connection sees only Diane's schema, so the repositories' SQL names no schema.
    options: `-c search_path=${opts.schema}`,
    application_name: 'diane',
  });
  // An idle connection the server dropped is replaced by the pool; it must not crash the master.
  pool.on('error', () => {});
  try {
    const { schemaVersion, applied } = await migratePostgres(
      pool,
      opts.schema,
      postgresMigrations,
      opts.display,
    );
    return new PostgresMasterStore(pool, opts, settings, schemaVersion, applied);
  } catch (err) {
    await pool.end().catch(() => {});
    throw postgresStoreError(err, opts.display) ?? err;
  }
}

/**
 * Applies the missing migrations in one transaction under a transaction-scoped advisory lock
 * keyed by the schema: a second master waits, then reads the version again and finds nothing to
 * do. A crash leaves the old version or the new one (PostgreSQL's DDL is transactional).
 */
export async function migratePostgres(
  pool: pg.Pool,
  schema: string,
  list: readonly Migration[],
  display: string,
): Promise<{ schemaVersion: number; applied: number }> {
  const latest = list.at(-1)?.version ?? 0;
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      // Set again now that the schema exists, so that this session resolves it.
      await client.query(`SET LOCAL search_path TO ${schema}`);
      const tables = await client.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
        [schema],
      );
      const names = new Set(tables.rows.map((row) => row.table_name));
      if (names.size > 0 && !names.has('schema_migrations')) {
        throw new StoreError(
          'foreign',
          `the schema "${schema}" of ${display} holds tables of another program, not Diane's. It was left ` +
            'untouched; name another schema with ?schema=<name> in the URL.',
        );
      }
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version INTEGER PRIMARY KEY,
           name TEXT NOT NULL,
           applied_at TEXT NOT NULL
         )`,
      );
      const found = await client.query<{ version: number | null }>(
        'SELECT max(version) AS version FROM schema_migrations',
      );
      const current = found.rows[0]?.version ?? 0;
      if (current > latest) {
        throw new StoreError(
          'newer-schema',
          `the schema "${schema}" of ${display} was written by a newer version of Diane (schema v${current}; ` +
            `this build knows up to v${latest}). Upgrade Diane on every master.`,
        );
      }
      const pending = list.filter((migration) => migration.version > current);
      for (const migration of pending) {
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          migration.version,
          migration.name,
          new Date().toISOString(),
        ]);
      }
      await client.query('COMMIT');
      return { schemaVersion: Math.max(current, latest), applied: pending.length };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  } finally {
    client.release();
  }
}

/** The master's store in PostgreSQL: one pool, a transaction on one of its connections. */
export class PostgresMasterStore implements MasterStore {
  readonly backend = 'postgres';
  readonly location: string;
  readonly slaveServers: SlaveServersRepo;
  readonly revokedCredentials: RevokedCredentialsRepo;
  readonly pairingRequests: PairingRequestsRepo;
  readonly agents: AgentsRepo;
  readonly auditEvents: AuditRepo;
  /** Marks the async context of a transaction, to catch the store's repositories used inside one. */
  private readonly transactions = new TransactionMarker<PostgresMasterStore>(this);
  private readonly now: (() => Date) | undefined;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    opts: PostgresStoreOptions,
    private readonly settings: typeof POSTGRES_STORE_DEFAULTS,
    readonly schemaVersion: number,
    /** How many migrations this store applied when it opened (0 when another had). */
    readonly migrationsApplied: number,
  ) {
    this.location = opts.display;
    this.now = opts.now;
    const repos = masterRepos(new PostgresExecutor(pool, this, undefined), opts.now);
    this.slaveServers = repos.slaveServers;
    this.revokedCredentials = repos.revokedCredentials;
    this.pairingRequests = repos.pairingRequests;
    this.agents = repos.agents;
    this.auditEvents = repos.auditEvents;
  }

  /**
   * SERIALIZABLE, so that a check-then-write judges the same rows another master may be writing
   * (SQLite's IMMEDIATE gives this by locking the file). A serialisation failure runs `fn` again
   * on a fresh snapshot, a few times, with a short random pause.
   */
  transaction<T>(fn: (tx: MasterRepos) => Promise<T>): Promise<T> {
    return this.serializable((sql) => fn(masterRepos(sql, this.now)));
  }

  /** `transaction` over the bare executor (what a repository's `atomically` needs). */
  async serializable<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inTransaction('BEGIN ISOLATION LEVEL SERIALIZABLE', fn);
      } catch (err) {
        if (!isSerializationFailure(err) || attempt >= this.settings.maxTransactionAttempts) throw err;
        await delay(Math.random() * Math.min(5 * attempt, 50));
      }
    }
  }

  /**
   * READ COMMITTED with a short lock timeout: a row another master is writing makes this round
   * skip (`written: false`) instead of waiting.
   */
  async tryWrite<T>(fn: (tx: MasterRepos) => Promise<T>): Promise<TryWriteResult<T>> {
    try {
      const value = await this.inTransaction(
        'BEGIN',
        (sql) => fn(masterRepos(sql, this.now)),
        this.settings.tryWriteLockTimeoutMs,
      );
      return { written: true, value };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === SQLSTATE.lockNotAvailable || isSerializationFailure(err)) return { written: false };
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** Called by every statement from outside a transaction. */
  checkOutside(): void {
    if (this.transactions.inside) {
      throw new Error('inside transaction(), use the repositories handed to it, not the store');
    }
  }

  private async inTransaction<T>(
    begin: string,
    fn: (sql: SqlExecutor) => Promise<T>,
    lockTimeoutMs?: number,
  ): Promise<T> {
    if (this.transactions.inside) {
      throw new Error('transactions do not nest: use the repositories handed to the outer one');
    }
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query(begin);
      try {
        if (lockTimeoutMs !== undefined)
          await client.query(`SET LOCAL lock_timeout = ${Math.trunc(lockTimeoutMs)}`);
        const sql = new PostgresExecutor(client, this, client);
        const value = await this.transactions.run(() => fn(sql));
        await client.query('COMMIT');
        return value;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw err;
      }
    } finally {
      // A connection that could not even roll back is dropped rather than reused.
      client.release(broken);
    }
  }
}

class PostgresExecutor implements SqlExecutor {
  readonly dialect = POSTGRES_DIALECT;

  constructor(
    private readonly target: pg.Pool | pg.PoolClient,
    private readonly store: PostgresMasterStore,
    /** Set when this executor belongs to a transaction. */
    private readonly transaction: pg.PoolClient | undefined,
  ) {}

  async all<Row>(sql: string, params?: SqlParams): Promise<Row[]> {
    return (await this.query(sql, params)).rows as Row[];
  }

  async get<Row>(sql: string, params?: SqlParams): Promise<Row | undefined> {
    return (await this.query(sql, params)).rows[0] as Row | undefined;
  }

  async run(sql: string, params?: SqlParams): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }

  atomically<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.transaction) return fn(this);
    return this.store.serializable(fn);
  }

  private query(sql: string, params: SqlParams | undefined): Promise<pg.QueryResult> {
    if (!this.transaction) this.store.checkOutside();
    const { text, names } = translated(sql);
    const values = names.map((name) => {
      const value = params?.[name];
      if (value === undefined) throw new Error(`SQL parameter @${name} was not given`);
      return value;
    });
    return this.target.query(text, values);
  }
}

const translations = new Map<string, { text: string; names: string[] }>();
function translated(sql: string): { text: string; names: string[] } {
  let found = translations.get(sql);
  if (found === undefined) {
    found = namedToPositional(sql);
    translations.set(sql, found);
  }
  return found;
}

function isSerializationFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === SQLSTATE.serializationFailure || code === SQLSTATE.deadlockDetected;
}

/** What a person can act on when the server cannot be reached or refuses Diane. */
export function postgresStoreError(err: unknown, display: string): StoreError | undefined {
  if (err instanceof StoreError) return err;
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (
    code === 'ECONNREFUSED' ||
    code === 'ENOTFOUND' ||
    code === 'EAI_AGAIN' ||
    code === 'ETIMEDOUT' ||
    code === 'EHOSTUNREACH' ||
    /timeout expired|Connection terminated/i.test(err.message)
  ) {
    return new StoreError(
      'unreachable',
      `cannot reach the PostgreSQL server of ${display} (${err.message}).`,
    );
  }
  if (typeof code === 'string' && /^(28|3D|42501)/.test(code)) {
    return new StoreError('unreadable', `PostgreSQL refused Diane at ${display} (${err.message}).`);
  }
  return undefined;
}
