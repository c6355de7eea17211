/**
 * What the repositories need of a database: one SQL text, run with named parameters. The same
 * repository code serves SQLite and PostgreSQL; each backend implements this once (the SQLite
 * one in sqlite/, the PostgreSQL one in postgres/), so no repository knows which it talks to.
 *
 * SQL is written with `@name` parameters (SQLite's own syntax); the PostgreSQL executor turns
 * them into `$1, $2, ...` (namedToPositional). Values are strings, numbers or null: booleans are
 * stored as 0/1 and times as ISO-8601 text on both (time.ts), so rows read back identically.
 */
export type SqlValue = string | number | null;
export type SqlParams = Readonly<Record<string, SqlValue>>;

export interface SqlExecutor {
  readonly dialect: SqlDialect;
  all<Row>(sql: string, params?: SqlParams): Promise<Row[]>;
  get<Row>(sql: string, params?: SqlParams): Promise<Row | undefined>;
  /** Runs a write; returns the number of rows it changed. */
  run(sql: string, params?: SqlParams): Promise<number>;
  /**
   * Runs `fn` all or nothing: in a new transaction, or inside the one this executor already
   * belongs to (a repository method that writes several rows uses it either way).
   */
  atomically<T>(fn: (sql: SqlExecutor) => Promise<T>): Promise<T>;
}

/** The few places where the two SQL dialects differ, as seen by the repositories. */
export interface SqlDialect {
  readonly name: 'sqlite' | 'postgres';
  /**
   * The column that orders rows by insertion where the timestamp ties: SQLite's `rowid`, a
   * `seq` identity column on PostgreSQL (which has no rowid).
   */
  readonly insertionOrder: string;
  /**
   * A statement an appending transaction runs before its rows take their ids, so that ids are
   * handed out in commit order and "every row after id N" is a sound way to follow a table
   * (audit/auditTail.ts); undefined where writers are serialised already (SQLite's one writer).
   */
  commitOrderLock(table: string): string | undefined;
  /** Whether `err` is a unique-constraint violation on `table.column`. */
  isUniqueViolation(err: unknown, table: string, column: string): boolean;
}

const NAMED_PARAMETER = /@([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * `@name` parameters to PostgreSQL's `$n`, the same name getting the same number. The SQL of the
 * repositories holds no `@` anywhere else (no string literals with one).
 */
export function namedToPositional(sql: string): { text: string; names: string[] } {
  const names: string[] = [];
  const text = sql.replace(NAMED_PARAMETER, (_match, name: string) => {
    let index = names.indexOf(name);
    if (index === -1) index = names.push(name) - 1;
    return `$${index + 1}`;
  });
  return { text, names };
}
