import type { CertificateAuthority } from './authority.js';
import { PkiError } from './errors.js';
import { randomSerial } from './serial.js';
import { type CryptoKey, x509 } from './x509.js';

/** Backdating notBefore lets a peer whose clock is a little behind accept a fresh certificate. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface SignRequest {
  /** Used as the only subject attribute, CN; built as a value, never parsed as a DN string. */
  commonName: string;
  /** SubjectPublicKeyInfo DER or a WebCrypto public key. */
  publicKey: Uint8Array | CryptoKey;
  validityMs: number;
  now: Date;
  /** The template's own extensions; key identifiers are added here. */
  extensions: x509.Extension[];
}

export interface Signed {
  cert: x509.X509Certificate;
  serialHex: string;
}

/**
 * Signs a certificate with the CA. Validity runs from now−5 min to now+validity, but never past
 * the CA's own expiry: a certificate outliving its issuer would fail anyway, and later than the
 * date it promises.
 */
export async function signWithCa(ca: CertificateAuthority, request: SignRequest): Promise<Signed> {
  const { commonName, publicKey, validityMs, now, extensions } = request;
  if (!(Number.isFinite(validityMs) && validityMs > 0)) {
    throw new PkiError(`Certificate validity must be a positive number of milliseconds, got ${validityMs}`);
  }
  if (now.getTime() >= ca.notAfter.getTime()) {
    throw new PkiError(`The slave CA expired on ${ca.notAfter.toISOString()}; it cannot issue certificates`);
  }
  const notAfter = new Date(Math.min(now.getTime() + validityMs, ca.notAfter.getTime()));
  const caKeyId = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const serialHex = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject: new x509.Name([{ CN: [commonName] }]),
    issuer: ca.cert.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      ...extensions,
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      caKeyId
        ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return { cert, serialHex };
}
