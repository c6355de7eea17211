import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensureDir, writeFileAtomic } from '../config/files.js';
import type { CertificateAuthority } from './authority.js';
import { generateP256Keys, privateKeyToPem, readPrivateKey } from './keys.js';
import { encodePem } from './pem.js';
import { certificateSans, sanKey, wantedSans } from './sans.js';
import { signWithCa } from './sign.js';
import { x509 } from './x509.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const SERVER_VALIDITY_MS = 365 * DAY_MS;
/** Renewing a month ahead leaves time to notice if renewal keeps failing. */
const RENEW_BEFORE_MS = 30 * DAY_MS;

export interface ServerCertificateOptions {
  certPath: string;
  keyPath: string;
  /** Extra names or IPs slaves use to reach the master, besides localhost and this host's name. */
  hosts: string[];
  now?: Date;
}

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
  reissued: boolean;
}

async function isReusable(
  ca: CertificateAuthority,
  certPem: string,
  keyPem: string,
  wanted: string[],
  now: Date,
): Promise<boolean> {
  const cert = new x509.X509Certificate(certPem);
  if (cert.issuer !== ca.cert.subject) return false;
  if (!(await cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true }))) return false;
  if (cert.notAfter.getTime() - now.getTime() < RENEW_BEFORE_MS) return false;
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [];
  if (eku.length !== 1 || eku[0] !== x509.ExtendedKeyUsage.serverAuth) return false;
  const sans = certificateSans(cert.getExtension(x509.SubjectAlternativeNameExtension));
  if (sans.join(',') !== wanted.join(',')) return false;
  const certKey = createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' });
  return readPrivateKey(keyPem).publicKey.equals(certKey);
}

function readExisting(certPath: string, keyPath: string): { certPem: string; keyPem: string } | null {
  try {
    return { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
  } catch {
    return null;
  }
}

/**
 * Makes sure the master's TLS server certificate exists, is signed by this CA, names every wanted
 * host and is not about to expire; otherwise issues a new one. Unlike the CA, this certificate is
 * derived from the CA alone, so any doubt about the files (missing, unreadable, foreign) is settled
 * by replacing them.
 */
export async function ensureServerCertificate(
  ca: CertificateAuthority,
  options: ServerCertificateOptions,
): Promise<ServerCertificate> {
  const { certPath, keyPath, hosts, now = new Date() } = options;
  const sans = wantedSans(hosts);
  const existing = readExisting(certPath, keyPath);
  if (existing) {
    const wanted = sans.map(sanKey);
    const reusable = await isReusable(ca, existing.certPem, existing.keyPem, wanted, now).catch(() => false);
    if (reusable) return { ...existing, reissued: false };
  }

  const keys = await generateP256Keys();
  const { cert } = await signWithCa(ca, {
    commonName: 'Diane master',
    publicKey: keys.publicKey,
    validityMs: SERVER_VALIDITY_MS,
    now,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
    ],
  });
  const certPem = encodePem(cert.rawData, 'CERTIFICATE');
  const keyPem = await privateKeyToPem(keys.privateKey);
  ensureDir(dirname(keyPath));
  ensureDir(dirname(certPath));
  // Key first: a crash in between leaves a key that does not match the old certificate, which the
  // next start detects and repairs.
  writeFileAtomic(keyPath, keyPem, 0o600);
  writeFileAtomic(certPath, certPem, 0o644);
  return { certPem, keyPem, reissued: true };
}
