import type { PeerCertificate } from 'node:tls';
import { keyHashOfPeerCertificate, normalizeSerial } from '../pki/index.js';
import type { Store } from '../store/index.js';

export type Refusal =
  | 'no-certificate'
  | 'unknown-certificate'
  | 'revoked'
  | 'superseded'
  | 'disabled'
  | 'expired';

/** Each refusal has its own HTTP status so a slave can tell them apart before any upgrade. */
export const REFUSAL_STATUS: Record<Refusal, number> = {
  'no-certificate': 401,
  'unknown-certificate': 403,
  superseded: 409,
  revoked: 410,
  disabled: 423,
  expired: 495,
};

export const REFUSAL_TEXT: Record<Refusal, string> = {
  'no-certificate': 'a client certificate is required',
  'unknown-certificate': 'certificate not issued by this master or not enrolled',
  superseded: 'certificate superseded by a newer pairing of this host',
  revoked: 'credentials revoked',
  disabled: 'host disabled by the admin',
  expired: 'certificate expired',
};

export type CertificateVerdict =
  | { ok: true; hostId: string; serial: string; keyFingerprint: string }
  | { ok: false; refusal: Refusal; detail?: string };

/**
 * Decides whether a presented client certificate may open a slave link. Identity comes from
 * the store row found by the certificate's serial and key, never from anything the slave says.
 * Runs on every upgrade, so a revocation applies to resumed TLS sessions as well.
 */
export function checkSlaveCertificate(
  store: Store,
  peer: PeerCertificate | undefined,
  tlsAuthorized: boolean,
  tlsError: string | undefined,
  now: Date,
): CertificateVerdict {
  if (!peer?.raw || Object.keys(peer).length === 0) return { ok: false, refusal: 'no-certificate' };
  const serial = normalizeSerial(peer.serialNumber);
  const keyFingerprint = keyHashOfPeerCertificate(peer);
  const revoked = store.revokedCredentials.getBySerial(serial);
  if (revoked) return { ok: false, refusal: revoked.reason === 'superseded' ? 'superseded' : 'revoked' };
  if (store.revokedCredentials.isKeyRevoked(keyFingerprint)) return { ok: false, refusal: 'revoked' };
  if (!tlsAuthorized) {
    if (tlsError === 'CERT_HAS_EXPIRED') return { ok: false, refusal: 'expired' };
    return { ok: false, refusal: 'unknown-certificate', detail: tlsError };
  }
  const row = store.slaveServers.getByCertSerial(serial);
  if (!row || row.keyFingerprint !== keyFingerprint) return { ok: false, refusal: 'unknown-certificate' };
  if (!row.enabled) return { ok: false, refusal: 'disabled' };
  if (row.expiresAt.getTime() <= now.getTime() || new Date(peer.valid_to).getTime() <= now.getTime()) {
    return { ok: false, refusal: 'expired' };
  }
  return { ok: true, hostId: row.hostId, serial, keyFingerprint };
}
