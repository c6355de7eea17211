import type { CertificateAuthority } from './authority.js';
import type { ValidatedCsr } from './csr.js';
import { PkiError } from './errors.js';
import { encodePem } from './pem.js';
import { signWithCa } from './sign.js';
import { x509 } from './x509.js';

export const DEFAULT_SLAVE_VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;

export interface IssuedCertificate {
  certPem: string;
  /** In the format of `normalizeSerial`; the store's lookup key. */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  keyFingerprint: string;
}

export interface IssueOptions {
  validityMs?: number;
  now?: Date;
}

/**
 * Signs a slave's client certificate from the fixed template: the CSR contributes its public key
 * and nothing else. clientAuth only, so a slave's certificate cannot impersonate the master's
 * TLS server, and CA:false so it cannot sign anything.
 */
export async function issueSlaveCertificate(
  ca: CertificateAuthority,
  csr: ValidatedCsr,
  hostId: string,
  options: IssueOptions = {},
): Promise<IssuedCertificate> {
  if (csr.hostId !== hostId) {
    throw new PkiError(`The CSR was validated for host "${csr.hostId}", not "${hostId}"`);
  }
  const usages =
    csr.keyType === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  const { cert, serialHex } = await signWithCa(ca, {
    commonName: hostId,
    publicKey: csr.spkiDer,
    validityMs: options.validityMs ?? DEFAULT_SLAVE_VALIDITY_MS,
    now: options.now ?? new Date(),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usages, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  return {
    certPem: encodePem(cert.rawData, 'CERTIFICATE'),
    serialHex,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    keyFingerprint: csr.keyFingerprint,
  };
}
