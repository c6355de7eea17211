import { accessSync, closeSync, constants, fchmodSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { AgentsRepo } from './agentsRepo.js';
import { type AuditRepo, SLAVE_AUDIT_TABLE } from './auditRepo.js';
import { StoreError, storeErrorFrom } from './errors.js';
import { type Migration, migrations, slaveAuditMigrations } from './migrations.js';
import type { PairingRequestsRepo } from './pairingRequestsRepo.js';
import type { RevokedCredentialsRepo } from './revokedCredentialsRepo.js';
import type { SlaveServersRepo } from './slaveServersRepo.js';
import { SqliteConnection } from './sqliteConnection.js';
import {
  type AuditRepos,
  type AuditStore,
  auditRepos,
  type MasterRepos,
  type MasterStore,
  masterRepos,
  type TryWriteResult,
} from './store.js';

export interface SqliteStoreOptions {
  /** How long to wait for another process's lock before giving up with a `locked` error. */
  busyTimeoutMs?: number;
  /** The clock used for created/updated/requested/revoked times; tests pass a fixed one. */
  now?: () => Date;
  /**
   * Opens an existing database for reading only: nothing is created, migrated or written, so a
   * command that only looks (`diane slave audit`) never changes the file. The file must exist and
   * already have this build's schema.
   */
  readOnly?: boolean;
}

/**
 * One kind of database file: its migrations and the `application_id` that marks a file as being
 * of this kind, so that one kind is never migrated into another (the versions of two lists mean
 * different things).
 */
export interface Schema {
  readonly applicationId: number;
  readonly migrations: readonly Migration[];
}

/** "DIAN": marks the file as Diane's, so another program's SQLite file is never migrated into. */
export const DIANE_APPLICATION_ID = 0x4449414e;
/** "DIAU": the slave's audit file (`slave-audit.db`). */
export const SLAVE_AUDIT_APPLICATION_ID = 0x44494155;

export const MAIN_SCHEMA: Schema = { applicationId: DIANE_APPLICATION_ID, migrations };
export const SLAVE_AUDIT_SCHEMA: Schema = {
  applicationId: SLAVE_AUDIT_APPLICATION_ID,
  migrations: slaveAuditMigrations,
};

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if missing) and migrates the database. The file is only read until it is known
 * to be a database this build understands, so a corrupt file or one from a newer Diane is left
 * byte for byte as it was. Failures a person can fix come out as StoreError.
 */
export function openStore(path: string, opts: SqliteStoreOptions = {}): SqliteMasterStore {
  const { db, schemaVersion } = openDatabase(path, MAIN_SCHEMA, opts);
  return new SqliteMasterStore(path, db, schemaVersion, opts.now);
}

/** Opens the slave's own audit trail (`slave-audit.db`) the same way. */
export function openSlaveAuditStore(path: string, opts: SqliteStoreOptions = {}): SqliteAuditStore {
  const { db, schemaVersion } = openDatabase(path, SLAVE_AUDIT_SCHEMA, opts);
  return new SqliteAuditStore(db, schemaVersion, opts.now);
}

function openDatabase(
  path: string,
  schema: Schema,
  opts: SqliteStoreOptions,
): { db: Database.Database; schemaVersion: number } {
  const busyTimeoutMs = opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const latest = latestVersionOf(schema);
  let db: Database.Database | undefined;
  try {
    if (opts.readOnly) {
      db = new Database(path, { timeout: busyTimeoutMs, readonly: true, fileMustExist: true });
      const found = readSchemaVersion(db);
      refuseNewerSchema(path, found, latest);
      refuseForeignDatabase(db, path, found, schema.applicationId);
      refuseOlderSchema(path, found, latest);
      return { db, schemaVersion: found };
    }
    refuseReadOnlyFile(path);
    createPrivateFile(path);
    db = new Database(path, { timeout: busyTimeoutMs });
    const found = readSchemaVersion(db);
    refuseNewerSchema(path, found, latest);
    refuseForeignDatabase(db, path, found, schema.applicationId);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    const schemaVersion = migrate(db, path, schema, found);
    return { db, schemaVersion };
  } catch (err) {
    db?.close();
    throw storeErrorFrom(err, path) ?? err;
  }
}

function latestVersionOf(schema: Schema): number {
  return schema.migrations.at(-1)?.version ?? 0;
}

/** SQLite silently opens a file it cannot write read-only; failing later, mid-write, is worse. */
function refuseReadOnlyFile(path: string): void {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new StoreError(
      'unreadable',
      `cannot open ${path} for reading and writing (${(err as Error).message}).`,
    );
  }
}

/**
 * SQLite creates the database with 0644 under the usual umask, and gives its -wal and -shm files
 * the database file's mode. Creating the (empty) file first, 0600, keeps all three private. An
 * existing file keeps its mode: a loose one is refused by the home check, never changed here.
 */
function createPrivateFile(path: string): void {
  if (path === '' || path === ':memory:') return;
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch {
    // Already there, or not creatable: SQLite opens it or reports why in its own words.
    return;
  }
  try {
    // The umask may have taken bits off the mode; it can never have added any.
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** The first reads of the file: they are where SQLite notices a file that is not a database. */
function readSchemaVersion(db: Database.Database): number {
  db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get();
  return db.pragma('user_version', { simple: true }) as number;
}

function refuseNewerSchema(path: string, found: number, latest: number): void {
  if (found <= latest) return;
  throw new StoreError(
    'newer-schema',
    `${path} was written by a newer version of Diane (schema v${found}; this build knows up to ` +
      `v${latest}). Upgrade Diane, or point DIANE_HOME elsewhere.`,
  );
}

/** Read-only opens cannot migrate, and the repositories expect the latest schema. */
function refuseOlderSchema(path: string, found: number, latest: number): void {
  if (found >= latest) return;
  throw new StoreError(
    'older-schema',
    `${path} has schema v${found}, older than this build's v${latest}; run the Diane that writes it ` +
      '(this version) once to upgrade it, then try again.',
  );
}

function refuseForeignDatabase(db: Database.Database, path: string, found: number, expected: number): void {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const tables = db
    .prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'")
    .pluck()
    .get() as number;
  const foreign = (applicationId !== 0 && applicationId !== expected) || (found === 0 && tables > 0);
  if (!foreign) return;
  throw new StoreError(
    'foreign',
    `${path} is an SQLite database of another program, not Diane's. It was left untouched; ` +
      'point DIANE_HOME elsewhere or move the file aside.',
  );
}

/**
 * Applies each missing migration in its own IMMEDIATE transaction together with the
 * `user_version` bump, so a crash leaves the old version or the new one, never half of one. The
 * version is read again inside the lock because another process may have migrated meanwhile.
 */
function migrate(db: Database.Database, path: string, schema: Schema, found: number): number {
  const list = schema.migrations;
  const latest = latestVersionOf(schema);
  list.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(
        `migrations must be numbered 1, 2, 3...; entry ${index} has version ${migration.version}`,
      );
    }
  });
  // Skipping what is already applied keeps an ordinary open from taking the write lock at all.
  const pending = list.filter((migration) => migration.version > found);
  if (pending.length === 0) return found;
  for (const migration of pending) {
    db.transaction(() => {
      const current = readSchemaVersion(db);
      refuseNewerSchema(path, current, latest);
      if (current >= migration.version) return;
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
      db.pragma(`application_id = ${schema.applicationId}`);
    }).immediate();
  }
  return readSchemaVersion(db);
}

/** Transactions, background writes and closing, over one connection. */
abstract class SqliteStoreBase<R> {
  protected readonly connection: SqliteConnection;
  /** Repositories bound to the transaction holding the connection. */
  protected readonly transactionRepos: R;

  constructor(
    readonly db: Database.Database,
    readonly schemaVersion: number,
    repos: (connection: SqliteConnection, inTransaction: boolean) => R,
  ) {
    this.connection = new SqliteConnection(db);
    this.transactionRepos = repos(this.connection, true);
  }

  transaction<T>(fn: (tx: R) => Promise<T>): Promise<T> {
    return this.connection.transaction(() => fn(this.transactionRepos));
  }

  tryWrite<T>(fn: (tx: R) => Promise<T>): Promise<TryWriteResult<T>> {
    return this.connection.tryWrite(() => fn(this.transactionRepos));
  }

  async close(): Promise<void> {
    this.connection.close();
  }
}

/** The master's `diane.db`; `db` is there for SQLite-specific tests and nothing else. */
export class SqliteMasterStore extends SqliteStoreBase<MasterRepos> implements MasterStore {
  readonly backend = 'sqlite';
  readonly slaveServers: SlaveServersRepo;
  readonly revokedCredentials: RevokedCredentialsRepo;
  readonly pairingRequests: PairingRequestsRepo;
  readonly agents: AgentsRepo;
  readonly auditEvents: AuditRepo;

  constructor(
    readonly location: string,
    db: Database.Database,
    schemaVersion: number,
    now?: () => Date,
  ) {
    super(db, schemaVersion, (connection, inTransaction) =>
      masterRepos(inTransaction ? connection.transactionExecutor : connection.executor, now),
    );
    const repos = masterRepos(this.connection.executor, now);
    this.slaveServers = repos.slaveServers;
    this.revokedCredentials = repos.revokedCredentials;
    this.pairingRequests = repos.pairingRequests;
    this.agents = repos.agents;
    this.auditEvents = repos.auditEvents;
  }
}

/** The slave's `slave-audit.db`. */
export class SqliteAuditStore extends SqliteStoreBase<AuditRepos> implements AuditStore {
  readonly auditEvents: AuditRepo;

  constructor(db: Database.Database, schemaVersion: number, now?: () => Date) {
    super(db, schemaVersion, (connection, inTransaction) =>
      auditRepos(
        inTransaction ? connection.transactionExecutor : connection.executor,
        SLAVE_AUDIT_TABLE,
        now,
      ),
    );
    this.auditEvents = auditRepos(this.connection.executor, SLAVE_AUDIT_TABLE, now).auditEvents;
  }
}
