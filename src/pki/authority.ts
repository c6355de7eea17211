import { certKeyFingerprint } from './fingerprint.js';
import type { CryptoKeyPair, x509 } from './x509.js';

/** The master's slave CA, loaded and checked: its certificate matches its key. */
export interface CertificateAuthority {
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  /** `privateKey` signs certificates; it is not extractable once loaded from disk. */
  readonly keys: CryptoKeyPair;
  /** `spkiFingerprint` of the CA's public key. */
  readonly fingerprint: string;
  readonly notAfter: Date;
}

export interface CaFiles {
  certPath: string;
  keyPath: string;
}

export function toAuthority(
  certPem: string,
  cert: x509.X509Certificate,
  keys: CryptoKeyPair,
): CertificateAuthority {
  return { certPem, cert, keys, fingerprint: certKeyFingerprint(certPem), notAfter: cert.notAfter };
}
