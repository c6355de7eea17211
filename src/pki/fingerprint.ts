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
  // Every link of a reconnect storm comes through here: parsing the certificate and exporting
  // its key cost about 0.3 ms a link, reading the SPKI's bytes in place a few microseconds.
  // The bytes are the OpenSSL encoding for every certificate this CA issued (issue.ts embeds
  // the CSR key as OpenSSL exported it), which is all the hub hashes: it refuses others first.
  const spki = spkiOfCertificateDer(peer.raw);
  return spki ? spkiFingerprint(spki) : nodeCertKeyFingerprint(new NodeX509Certificate(peer.raw));
}

/**
 * The SubjectPublicKeyInfo of a DER certificate, by walking the TBSCertificate's leading fields
 * (RFC 5280, 4.1: optional [0] version, serialNumber, signature, issuer, validity, subject,
 * subjectPublicKeyInfo) without parsing their contents. Undefined for anything not laid out so.
 */
export function spkiOfCertificateDer(der: Uint8Array): Uint8Array | undefined {
  const certificate = readTlv(der, 0, der.length);
  if (!certificate || certificate.tag !== SEQUENCE || certificate.end !== der.length) return undefined;
  const tbs = readTlv(der, certificate.contentStart, certificate.end);
  if (!tbs || tbs.tag !== SEQUENCE) return undefined;
  let at = tbs.contentStart;
  const version = readTlv(der, at, tbs.end);
  if (version?.tag === VERSION_TAG) at = version.end;
  const serial = readTlv(der, at, tbs.end);
  if (serial?.tag !== INTEGER) return undefined;
  at = serial.end;
  // signature, issuer, validity, subject, then subjectPublicKeyInfo: five SEQUENCEs.
  for (let field = 1; field <= 5; field++) {
    const tlv = readTlv(der, at, tbs.end);
    if (!tlv || tlv.tag !== SEQUENCE) return undefined;
    if (field === 5) return der.subarray(at, tlv.end);
    at = tlv.end;
  }
  return undefined;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const VERSION_TAG = 0xa0;

/** One DER tag-length-value inside [at, limit): single-byte tags, definite lengths up to 2^32. */
function readTlv(
  der: Uint8Array,
  at: number,
  limit: number,
): { tag: number; contentStart: number; end: number } | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at] as number;
  let length = der[at + 1] as number;
  let contentStart = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || contentStart + octets > limit) return undefined;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[contentStart + i] as number);
    contentStart += octets;
  }
  const end = contentStart + length;
  return end > limit ? undefined : { tag, contentStart, end };
}
