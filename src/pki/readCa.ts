import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type CaFiles, type CertificateAuthority, toAuthority } from './authority.js';
import { PkiError } from './errors.js';
import { readPrivateKey, toSigningKey, toVerifyingKey } from './keys.js';
import { parseSinglePem } from './pem.js';
import { x509 } from './x509.js';

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PkiError(`Cannot read the ${what} ${path}: ${(err as Error).message}`);
  }
}

function parseCaCert(pem: string, path: string): x509.X509Certificate {
  const parsed = parseSinglePem(pem);
  if (!parsed.ok) throw new PkiError(`The slave CA certificate ${path} is unusable: ${parsed.problem}`);
  if (parsed.label !== 'CERTIFICATE') {
    throw new PkiError(`The slave CA certificate ${path} holds a ${parsed.label}, not a CERTIFICATE`);
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(parsed.der);
  } catch (err) {
    throw new PkiError(`The slave CA certificate ${path} cannot be parsed: ${(err as Error).message}`);
  }
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca !== true) {
    throw new PkiError(`${path} is not a CA certificate (basicConstraints CA:true is missing)`);
  }
  return cert;
}

/** Reads both CA files, which must exist, and checks that the key belongs to the certificate. */
export async function readCa({ certPath, keyPath }: CaFiles): Promise<CertificateAuthority> {
  const certPem = readText(certPath, 'slave CA certificate');
  const keyPem = readText(keyPath, 'slave CA key');
  return caFromPem(certPem, keyPem, { cert: certPath, key: keyPath });
}

/**
 * A CA from its certificate and key text, checked as `readCa` checks the files: a CA
 * certificate, a readable key of a type Diane signs with, and the key of that certificate.
 * `where` names the two texts in errors (file paths, or the entries of an imported bundle).
 */
export async function caFromPem(
  certPem: string,
  keyPem: string,
  where: { cert: string; key: string },
): Promise<CertificateAuthority> {
  const { cert: certPath, key: keyPath } = where;
  const cert = parseCaCert(certPem, certPath);

  let key: ReturnType<typeof readPrivateKey>;
  try {
    key = readPrivateKey(keyPem);
  } catch (err) {
    throw new PkiError(
      `The slave CA key ${keyPath} is not a readable private key: ${(err as Error).message}`,
    );
  }
  const certPublicKey = createPublicKey({
    key: Buffer.from(cert.publicKey.rawData),
    format: 'der',
    type: 'spki',
  });
  if (!key.publicKey.equals(certPublicKey)) {
    throw new PkiError(
      `The slave CA key ${keyPath} does not match the CA certificate ${certPath}; ` +
        'one of the two files was replaced. Restore the pair from the same backup.',
    );
  }
  const privateKey = await toSigningKey(key.privateKey);
  const publicKey = await toVerifyingKey(certPublicKey);
  if (!privateKey || !publicKey) {
    throw new PkiError(
      `The slave CA key ${keyPath} is of a type Diane cannot sign with (${key.privateKey.asymmetricKeyType})`,
    );
  }
  return toAuthority(certPem, cert, { privateKey, publicKey });
}
