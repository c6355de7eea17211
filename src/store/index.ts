export { DIANE_APPLICATION_ID, openStore, type Store, type StoreOptions } from './database.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export { latestSchemaVersion, type Migration, migrations } from './migrations.js';
export {
  type NewPairingRequest,
  type PairingApproval,
  type PairingRequest,
  PairingRequestsRepo,
  type PairingStatus,
} from './pairingRequestsRepo.js';
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
