import { AgentsRepo } from './agentsRepo.js';
import { AuditRepo, type AuditTable, MASTER_AUDIT_TABLE } from './auditRepo.js';
import { PairingRequestsRepo } from './pairingRequestsRepo.js';
import { RevokedCredentialsRepo } from './revokedCredentialsRepo.js';
import { SlaveServersRepo } from './slaveServersRepo.js';
import type { SqlExecutor } from './sql.js';

/**
 * The store as every service sees it, whichever database is underneath (SQLite in DIANE_HOME, or
 * PostgreSQL shared by several masters). Repository methods return promises; a check-then-write
 * runs in `transaction`, with the repositories it is handed.
 */

/** What `tryWrite` reports: whether the write happened, and its result if it did. */
export type TryWriteResult<T> = { written: true; value: T } | { written: false };

/** A database's transactions and lifetime, over its set of repositories `R`. */
export interface Transactional<R> {
  readonly schemaVersion: number;
  /**
   * Runs `fn` in one transaction with repositories bound to it: committed when `fn` resolves,
   * rolled back when it throws. Other writers are serialised against it (SQLite: IMMEDIATE;
   * PostgreSQL: SERIALIZABLE, where `fn` may run again after a serialisation failure, so it must
   * not act outside the database: return what happened and act once it resolved). Inside `fn`,
   * use only the repositories given to it.
   */
  transaction<T>(fn: (tx: R) => Promise<T>): Promise<T>;
  /**
   * A background write (a heartbeat's last_seen, a sweep, an audit batch) in one transaction
   * that does not wait for a lock held by another process or master: the event loop must not
   * freeze behind it. `{ written: false }` when the database was busy and nothing was written;
   * the next round tries again.
   */
  tryWrite<T>(fn: (tx: R) => Promise<T>): Promise<TryWriteResult<T>>;
  close(): Promise<void>;
}

/** A database that holds an audit trail: the master's store and the slave's audit file alike. */
export interface AuditRepos {
  readonly auditEvents: AuditRepo;
}

export interface AuditStore extends AuditRepos, Transactional<AuditRepos> {}

/** The master's tables. */
export interface MasterRepos extends AuditRepos {
  readonly slaveServers: SlaveServersRepo;
  readonly revokedCredentials: RevokedCredentialsRepo;
  readonly pairingRequests: PairingRequestsRepo;
  readonly agents: AgentsRepo;
}

/** The master's store: `diane.db`, or a PostgreSQL schema (`diane serve --store`). */
export interface MasterStore extends MasterRepos, Transactional<MasterRepos> {
  readonly backend: 'sqlite' | 'postgres';
  /** Where it is, for messages: the file, or the URL without its password. */
  readonly location: string;
}

export interface StoreOptions {
  /** The clock used for created/updated/requested/revoked times; tests pass a fixed one. */
  now?: () => Date;
}

/** The master's repositories over one executor (the store's own, or a transaction's). */
export function masterRepos(sql: SqlExecutor, now?: () => Date): MasterRepos {
  return {
    slaveServers: new SlaveServersRepo(sql, now),
    revokedCredentials: new RevokedCredentialsRepo(sql, now),
    pairingRequests: new PairingRequestsRepo(sql, now),
    agents: new AgentsRepo(sql, now),
    auditEvents: new AuditRepo(sql, MASTER_AUDIT_TABLE, now),
  };
}

export function auditRepos(sql: SqlExecutor, table: AuditTable, now?: () => Date): AuditRepos {
  return { auditEvents: new AuditRepo(sql, table, now) };
}
