import { createPublicKey, type KeyObject } from 'node:crypto';
import { checkAttributes, checkKey, checkSubject, type SlaveKeyType } from './csrPolicy.js';
import { isSingleDerSequence } from './der.js';
import { CsrRejectedError } from './errors.js';
import { spkiFingerprint } from './fingerprint.js';
import { toVerifyingKey } from './keys.js';
import { parseSinglePem } from './pem.js';
import { type CryptoKey, x509 } from './x509.js';

/** A real CSR is under 4 KiB even with an 8192-bit RSA key; the cap bounds parser work on junk. */
export const MAX_CSR_BYTES = 16 * 1024;

/** A CSR that passed every check; the only thing taken from it is its public key. */
export interface ValidatedCsr {
  readonly publicKey: CryptoKey;
  /** SubjectPublicKeyInfo as OpenSSL encodes it: what the issued certificate will carry. */
  readonly spkiDer: Uint8Array;
  readonly keyFingerprint: string;
  readonly keyType: SlaveKeyType;
  readonly rsaBits?: number;
  /** The host id the CSR was checked against; issuing for another id is refused. */
  readonly hostId: string;
  /** The CSR exactly as received. */
  readonly pem: string;
}

function parseCsr(pem: string): x509.Pkcs10CertificateRequest {
  if (Buffer.byteLength(pem, 'utf8') > MAX_CSR_BYTES) {
    throw new CsrRejectedError(`it is larger than ${MAX_CSR_BYTES / 1024} KiB`);
  }
  const block = parseSinglePem(pem);
  if (!block.ok) throw new CsrRejectedError(block.problem);
  if (block.label !== 'CERTIFICATE REQUEST') {
    throw new CsrRejectedError(`it is a PEM "${block.label}" block, not a "CERTIFICATE REQUEST"`);
  }
  if (!isSingleDerSequence(block.der)) {
    throw new CsrRejectedError(
      'its content is not a single DER structure (truncated, or extra bytes at the end)',
    );
  }
  try {
    return new x509.Pkcs10CertificateRequest(block.der);
  } catch {
    throw new CsrRejectedError('its content is not a PKCS#10 certificate request');
  }
}

function readKey(csr: x509.Pkcs10CertificateRequest): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch {
    throw new CsrRejectedError('its public key cannot be read');
  }
}

async function signatureIsValid(csr: x509.Pkcs10CertificateRequest): Promise<boolean> {
  try {
    return await csr.verify();
  } catch {
    return false;
  }
}

/**
 * Checks a slave's CSR before anyone is asked to approve it. Throws `CsrRejectedError` with the
 * reason; never repairs or trims a CSR, since what gets signed must be what was shown.
 */
export async function validateCsr(pem: string, expectedHostId: string): Promise<ValidatedCsr> {
  const csr = parseCsr(pem);
  const key = readKey(csr);
  const verdict = checkKey(key);
  if (!verdict.ok) throw new CsrRejectedError(verdict.reason);
  if (!(await signatureIsValid(csr))) {
    throw new CsrRejectedError('its signature does not verify with its own public key');
  }
  const problem = checkSubject(csr.subjectName, expectedHostId) ?? checkAttributes(csr);
  if (problem) throw new CsrRejectedError(problem);

  const spkiDer = new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  const publicKey = await toVerifyingKey(key);
  if (!publicKey) throw new CsrRejectedError(`its key type ${verdict.keyType} cannot be imported`);
  return {
    publicKey,
    spkiDer,
    keyFingerprint: spkiFingerprint(spkiDer),
    keyType: verdict.keyType,
    ...(verdict.rsaBits === undefined ? {} : { rsaBits: verdict.rsaBits }),
    hostId: expectedHostId,
    pem,
  };
}
