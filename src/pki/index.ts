// First import: loads reflect-metadata and sets Node's WebCrypto as @peculiar/x509's provider,
// before anything below touches the library.
import './x509.js';

export type { CaFiles, CertificateAuthority } from './authority.js';
export { loadCa, loadOrCreateCa } from './ca.js';
export { type CaExpirySettings, caExpiryWarning, DEFAULT_CA_EXPIRY_SETTINGS } from './caExpiry.js';
export {
  type CaSet,
  type CaSetFiles,
  crossCertify,
  finishRollover,
  type IssuingCa,
  issuingCa,
  loadCaSet,
  SlaveCas,
  startRollover,
  trustedCas,
} from './caSet.js';
export { CA_KEY_BITS, type CreateCaOptions } from './createCa.js';
export { MAX_CSR_BYTES, type ValidatedCsr, validateCsr } from './csr.js';
export type { SlaveKeyType } from './csrPolicy.js';
export { CsrRejectedError, PkiError } from './errors.js';
export { certKeyFingerprint, keyHashOfPeerCertificate, spkiFingerprint } from './fingerprint.js';
export {
  DEFAULT_SLAVE_VALIDITY_MS,
  type IssuedCertificate,
  type IssueOptions,
  issueSlaveCertificate,
} from './issue.js';
export { makeCsr } from './makeCsr.js';
export { caFromPem } from './readCa.js';
export {
  open as openSealed,
  type ScryptParameters,
  SEALED_BOX_DEFAULTS,
  SealedBoxError,
  seal,
} from './sealedBox.js';
export { normalizeSerial, serialOf } from './serial.js';
export {
  ensureServerCertificate,
  type ServerCertificate,
  type ServerCertificateOptions,
} from './serverCert.js';
export {
  type ExportResult,
  exportTrustBundle,
  type ImportResult,
  installTrustBundle,
  isCaShared,
  markShared,
  openTrustBundle,
  type TrustBundle,
} from './trustBundle.js';
export { x509 } from './x509.js';
