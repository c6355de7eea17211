import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { ensureDir, writeFileAtomic } from '../config/files.js';
import { type CaFiles, type CertificateAuthority, toAuthority } from './authority.js';
import { PkiError } from './errors.js';
import { generateRsaKeys, privateKeyToPem } from './keys.js';
import { encodePem } from './pem.js';
import { randomSerial } from './serial.js';
import { CLOCK_SKEW_MS } from './sign.js';
import { x509 } from './x509.js';

export const CA_KEY_BITS = 4096;
const CA_VALIDITY_YEARS = 10;

export interface CreateCaOptions extends CaFiles {
  now?: Date;
  /** Only for tests, which need throwaway CAs fast; production always uses the default. */
  keyBits?: number;
}

/**
 * Makes a new CA and writes it. The key is written first: a crash in between leaves a lone key,
 * which the next start reports instead of guessing.
 */
export async function createCa(options: CreateCaOptions): Promise<CertificateAuthority> {
  const { certPath, keyPath, now = new Date(), keyBits = CA_KEY_BITS } = options;
  if (!Number.isInteger(keyBits) || keyBits < 2048) {
    throw new PkiError(`CA key size must be an integer of at least 2048 bits, got ${keyBits}`);
  }
  const keys = await generateRsaKeys(keyBits);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  // The random suffix tells apart the CAs of different masters (or of a re-created master) in
  // error messages and certificate viewers.
  const name = new x509.Name([{ CN: [`Diane Slave CA ${randomBytes(4).toString('hex')}`] }]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = encodePem(cert.rawData, 'CERTIFICATE');
  ensureDir(dirname(keyPath));
  ensureDir(dirname(certPath));
  writeFileAtomic(keyPath, await privateKeyToPem(keys.privateKey), 0o600);
  writeFileAtomic(certPath, certPem, 0o644);
  return toAuthority(certPem, cert, keys);
}
