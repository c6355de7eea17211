import { createHash, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { PkiError } from './errors.js';

/**
 * `sha256:<lowercase hex>` of a SubjectPublicKeyInfo DER. Every key hash in Diane (CSR, issued
 * certificate, certificate presented over TLS) goes through this one function, with the SPKI as
 * OpenSSL encodes it, so the three always agree for the same key.
 */
export function spkiFingerprint(spkiDer: Uint8Array | ArrayBuffer): string {
  const bytes = spkiDer instanceof ArrayBuffer ? new Uint8Array(spkiDer) : spkiDer;
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function nodeCertKeyFingerprint(cert: NodeX509Certificate): string {
  return spkiFingerprint(cert.publicKey.export({ type: 'spki', format: 'der' }));
}

/** Key fingerprint of the public key in a PEM certificate. */
export function certKeyFingerprint(certPem: string): string {
  return nodeCertKeyFingerprint(new NodeX509Certificate(certPem));
}

/**
 * Key fingerprint of the certificate a TLS peer presented (`socket.getPeerCertificate()`, or
 * `socket.getPeerX509Certificate()`), for the hub to look the slave up by key as well as serial.
 */
export function keyHashOfPeerCertificate(
  peer: PeerCertificate | NodeX509Certificate | null | undefined,
): string {
  if (peer instanceof NodeX509Certificate) return nodeCertKeyFingerprint(peer);
  // Without a peer certificate, getPeerCertificate() returns an empty object and
  // getPeerX509Certificate() undefined.
  if (!peer?.raw || peer.raw.length === 0) throw new PkiError('The TLS peer presented no certificate');
  return nodeCertKeyFingerprint(new NodeX509Certificate(peer.raw));
}
