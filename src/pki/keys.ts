import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { encodePem } from './pem.js';
import { type CryptoKey, type CryptoKeyPair, subtle } from './x509.js';

type ImportAlgorithm =
  | { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' }
  | { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384' }
  | { name: 'Ed25519' };

const CURVES: Record<string, 'P-256' | 'P-384'> = { prime256v1: 'P-256', secp384r1: 'P-384' };

/**
 * The WebCrypto algorithm to use a key with, from what OpenSSL says the key is; null for keys we
 * do not sign or verify with. RSA keys are always used with PKCS#1 v1.5 and SHA-256.
 */
export function webCryptoAlgorithmOf(key: KeyObject): ImportAlgorithm | null {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    case 'ec': {
      const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return curve ? { name: 'ECDSA', namedCurve: curve } : null;
    }
    case 'ed25519':
      return { name: 'Ed25519' };
    default:
      return null;
  }
}

export function generateRsaKeys(bits: number): Promise<CryptoKeyPair> {
  return subtle.generateKey(
    {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: bits,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    true,
    ['sign', 'verify'],
  );
}

export function generateP256Keys(): Promise<CryptoKeyPair> {
  return subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return encodePem(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/**
 * Node's key parser for a private key PEM, and its public half as OpenSSL derives it. Throws what
 * OpenSSL throws; callers say which file it was.
 */
export function readPrivateKey(pem: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const privateKey = createPrivateKey({ key: pem, format: 'pem' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** Imports a private key into WebCrypto for signing; null when its type is not one we sign with. */
export async function toSigningKey(privateKey: KeyObject): Promise<CryptoKey | null> {
  const algorithm = webCryptoAlgorithmOf(privateKey);
  if (!algorithm) return null;
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  return subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
}

export async function toVerifyingKey(publicKey: KeyObject): Promise<CryptoKey | null> {
  const algorithm = webCryptoAlgorithmOf(publicKey);
  if (!algorithm) return null;
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return subtle.importKey('spki', spki, algorithm, true, ['verify']);
}
