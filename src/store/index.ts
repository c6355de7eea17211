export {
  AGENT_MODES,
  AGENT_NAME_PATTERN,
  type Agent,
  type AgentMode,
  AgentsRepo,
  type AgentUpdate,
  assertAgentName,
  isAgentMode,
  type NewAgent,
} from './agentsRepo.js';
export {
  type AuditQuery,
  type AuditRecord,
  AuditRepo,
  type AuditRow,
  type AuditTable,
  MASTER_AUDIT_TABLE,
  SLAVE_AUDIT_TABLE,
  type StoredAuditEvent,
} from './auditRepo.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export { latestSchemaVersion, type Migration, migrations, slaveAuditMigrations } from './migrations.js';
export { openMasterStore } from './openMasterStore.js';
export {
  type NewPairingRequest,
  type PairingApproval,
  type PairingRequest,
  PairingRequestsRepo,
  type PairingStatus,
} from './pairingRequestsRepo.js';
export { postgresMigrations } from './postgresMigrations.js';
export { openPostgresStore, POSTGRES_STORE_DEFAULTS, PostgresMasterStore } from './postgresStore.js';
export {
  type NewRevocation,
  type RevocableCredential,
  type RevokedCredential,
  RevokedCredentialsRepo,
} from './revokedCredentialsRepo.js';
export {
  type NewSlaveServer,
  type PendingCertificate,
  type SlaveCertificate,
  type SlaveEnrollment,
  type SlaveServer,
  SlaveServersRepo,
} from './slaveServersRepo.js';
export type { SqlDialect, SqlExecutor, SqlParams, SqlValue } from './sql.js';
export {
  DIANE_APPLICATION_ID,
  MAIN_SCHEMA,
  openSlaveAuditStore,
  openStore,
  type Schema,
  SLAVE_AUDIT_APPLICATION_ID,
  SLAVE_AUDIT_SCHEMA,
  SqliteAuditStore,
  SqliteMasterStore,
  type SqliteStoreOptions,
} from './sqliteStore.js';
export type {
  AuditRepos,
  AuditStore,
  MasterRepos,
  MasterStore,
  StoreOptions,
  Transactional,
  TryWriteResult,
} from './store.js';
export { DEFAULT_POSTGRES_SCHEMA, parseStoreTarget, type StoreTarget } from './storeTarget.js';
