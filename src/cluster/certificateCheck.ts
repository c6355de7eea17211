import type { PeerCertificate } from 'node:tls';
import { keyHashOfPeerCertificate, normalizeSerial } from '../pki/index.js';
import type { RevokedCredentialsRepo, SlaveServersRepo } from '../store/index.js';

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
  superseded: 'certificate superseded by a newer one of this host (re-pairing or renewal)',
  revoked: 'credentials revoked',
  disabled: 'host disabled by the admin',
  expired: 'certificate expired',
};

export type CertificateVerdict =
  | {
      ok: true;
      hostId: string;
      serial: string;
      keyFingerprint: string;
      /** The host's renewed certificate, not yet current: this link is what confirms it. */
      pending: boolean;
    }
  | { ok: false; refusal: Refusal; detail?: string };

/** The three lookups the check needs; the hub passes the store, unit tests a table of rows. */
export interface CertificateCheckStore {
  readonly revokedCredentials: Pick<RevokedCredentialsRepo, 'getBySerial' | 'isKeyRevoked'>;
  readonly slaveServers: Pick<SlaveServersRepo, 'getByCertSerial'>;
}

/** Revocation reasons that mean "this host holds a newer certificate", not "this host is out". */
const SUPERSEDING_REASONS: ReadonlySet<string | null> = new Set(['superseded', 'renewed']);

/** The only TLS verification error after which the chain is still known to be ours. */
const EXPIRED_TLS_ERROR = 'CERT_HAS_EXPIRED';

/**
 * Decides whether a presented client certificate may open a slave link. Identity comes from
 * the store row found by the certificate's serial and key, never from anything the slave says.
 * Runs on every upgrade, so a revocation applies to resumed TLS sessions as well.
 *
 * The chain is judged before the revocation list: a serial is only meaningful inside our CA, so
 * a foreign or self-signed certificate that copies a revoked serial is "unknown", and a stranger
 * cannot learn which serials were revoked. OpenSSL reports an expiry only after the chain and
 * its signatures verified, so an expired certificate of ours still gets its revocation answer.
 */
export async function checkSlaveCertificate(
  store: CertificateCheckStore,
  peer: PeerCertificate | undefined,
  tlsAuthorized: boolean,
  tlsError: string | undefined,
  now: Date,
): Promise<CertificateVerdict> {
  // getPeerCertificate() returns {} when the client sent no certificate.
  if (!peer?.raw) return { ok: false, refusal: 'no-certificate' };
  if (!tlsAuthorized && tlsError !== EXPIRED_TLS_ERROR) {
    return { ok: false, refusal: 'unknown-certificate', detail: tlsError };
  }
  const serial = normalizeSerial(peer.serialNumber);
  const keyFingerprint = keyHashOfPeerCertificate(peer);
  const revoked = await store.revokedCredentials.getBySerial(serial);
  if (revoked)
    return { ok: false, refusal: SUPERSEDING_REASONS.has(revoked.reason) ? 'superseded' : 'revoked' };
  if (await store.revokedCredentials.isKeyRevoked(keyFingerprint)) return { ok: false, refusal: 'revoked' };
  if (!tlsAuthorized) return { ok: false, refusal: 'expired' };
  const row = await store.slaveServers.getByCertSerial(serial);
  // Exactly the current certificate, or the pending one that is about to replace it: once the
  // pending one is confirmed, the previous serial is on the revocation list (reason `renewed`).
  if (!row) return { ok: false, refusal: 'unknown-certificate' };
  const recorded = row.pending?.certSerial === serial ? row.pending : row;
  const pending = recorded !== row;
  if (recorded.keyFingerprint !== keyFingerprint) return { ok: false, refusal: 'unknown-certificate' };
  if (!row.enabled) return { ok: false, refusal: 'disabled' };
  // The store's date is the one the admin sees; the certificate's own is checked in case the two
  // ever disagree (TLS has already checked it, with the clock of the moment of the handshake).
  if (recorded.expiresAt.getTime() <= now.getTime() || new Date(peer.valid_to).getTime() <= now.getTime()) {
    return { ok: false, refusal: 'expired' };
  }
  return { ok: true, hostId: row.hostId, serial, keyFingerprint, pending };
}
