import { resolve } from 'node:path';
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { AsyncLock } from './asyncLock.js';
import type { SqlDialect, SqlExecutor, SqlParams } from './sql.js';
import type { TryWriteResult } from './store.js';
import { TransactionMarker } from './transactionMarker.js';

export const SQLITE_DIALECT: SqlDialect = {
  name: 'sqlite',
  insertionOrder: 'rowid',
  // BEGIN IMMEDIATE: one writer at a time, so ids are already given in commit order.
  commitOrderLock: () => undefined,
  isUniqueViolation(err, table, column) {
    const code = (err as { code?: unknown }).code;
    return (
      typeof code === 'string' &&
      code.startsWith('SQLITE_CONSTRAINT') &&
      err instanceof Error &&
      err.message.includes(`${table}.${column}`)
    );
  },
};

/**
 * The one better-sqlite3 connection of a store, made asynchronous. Statements still run
 * synchronously; what the promises add is that a transaction may await between its statements,
 * so the connection is held by one transaction (or background write) at a time, and a statement
 * from outside waits for it rather than joining it by accident.
 */
export class SqliteConnection {
  private readonly statements = new Map<string, Statement>();
  private readonly lock: AsyncLock;
  /** Marks the async context of the transaction holding the connection. */
  private readonly transactions = new TransactionMarker<SqliteConnection>(this);
  /** Runs outside any transaction: each statement waits until no transaction holds the connection. */
  readonly executor: SqlExecutor;
  readonly transactionExecutor: SqlExecutor;

  constructor(readonly db: Database.Database) {
    this.lock = lockOf(db.name);
    this.executor = new SqliteExecutor(this, false);
    this.transactionExecutor = new SqliteExecutor(this, true);
  }

  async transaction<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    this.refuseNesting();
    return this.lock.exclusive(() => this.inTransaction(fn));
  }

  async tryWrite<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<TryWriteResult<T>> {
    this.refuseNesting();
    return this.lock.exclusive(async () => {
      const waited = this.db.pragma('busy_timeout', { simple: true }) as number;
      this.db.pragma('busy_timeout = 0');
      try {
        return { written: true, value: await this.inTransaction(fn) };
      } catch (err) {
        if (isBusy(err)) return { written: false };
        throw err;
      } finally {
        this.db.pragma(`busy_timeout = ${Math.trunc(waited)}`);
      }
    });
  }

  /**
   * Runs a statement from outside any transaction: at once (synchronously, so that nothing can
   * begin in between) when no transaction holds the connection, else once it is free.
   */
  outside<T>(statement: () => T): Promise<T> {
    if (this.lock.held) {
      if (this.transactions.inside) {
        return Promise.reject(
          new Error('inside transaction(), use the repositories handed to it, not the store'),
        );
      }
      return this.lock.idle().then(() => this.outside(statement));
    }
    try {
      return Promise.resolve(statement());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Runs a statement of the transaction holding the connection. */
  within<T>(statement: () => T): Promise<T> {
    try {
      return Promise.resolve(statement());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  statement(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** IMMEDIATE: the write lock is taken up front, so two writers never deadlock on an upgrade. */
  private async inTransaction<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const value = await this.transactions.run(() => fn(this.transactionExecutor));
      this.db.exec('COMMIT');
      return value;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  private refuseNesting(): void {
    if (this.transactions.inside) {
      throw new Error('transactions do not nest: use the repositories handed to the outer one');
    }
  }
}

class SqliteExecutor implements SqlExecutor {
  readonly dialect = SQLITE_DIALECT;

  constructor(
    private readonly connection: SqliteConnection,
    private readonly inTransaction: boolean,
  ) {}

  all<Row>(sql: string, params?: SqlParams): Promise<Row[]> {
    return this.execute(() => this.connection.statement(sql).all(...bind(params)) as Row[]);
  }

  get<Row>(sql: string, params?: SqlParams): Promise<Row | undefined> {
    return this.execute(() => this.connection.statement(sql).get(...bind(params)) as Row | undefined);
  }

  run(sql: string, params?: SqlParams): Promise<number> {
    return this.execute(() => this.connection.statement(sql).run(...bind(params)).changes);
  }

  atomically<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    return this.inTransaction ? fn(this) : this.connection.transaction(fn);
  }

  private execute<T>(statement: () => T): Promise<T> {
    return this.inTransaction ? this.connection.within(statement) : this.connection.outside(statement);
  }
}

/**
 * Connections to one file in one process share a lock: a transaction holds SQLite's write lock
 * across its awaits, and a second connection's BEGIN would wait for it synchronously, blocking
 * the very event loop the first one needs to finish (until the busy timeout). Queued on the same
 * lock, the second simply waits its turn. Other processes are SQLite's business (busy timeout).
 */
const fileLocks = new Map<string, WeakRef<AsyncLock>>();
function lockOf(file: string): AsyncLock {
  if (file === '' || file === ':memory:') return new AsyncLock();
  const key = resolve(file);
  const existing = fileLocks.get(key)?.deref();
  if (existing) return existing;
  const lock = new AsyncLock();
  fileLocks.set(key, new WeakRef(lock));
  return lock;
}

function bind(params: SqlParams | undefined): [SqlParams] | [] {
  return params === undefined ? [] : [params];
}

export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
