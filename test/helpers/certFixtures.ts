import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { certKeyFingerprint, normalizeSerial } from '../../src/pki/index.js';

/** A stored certificate (test/fixtures/certs) as the hub's TLS socket would present it. */
export interface FixtureCert {
  pem: string;
  peer: PeerCertificate;
  /** The store's spelling of its serial. */
  serial: string;
  key: string;
  validTo: Date;
}

export function fixtureFile(name: string): string {
  return readFileSync(new URL(`../fixtures/certs/${name}`, import.meta.url), 'utf8');
}

export function fixtureCert(name: string): FixtureCert {
  const pem = fixtureFile(`${name}-cert.pem`);
  const peer = new X509Certificate(pem).toLegacyObject();
  return {
    pem,
    peer,
    serial: normalizeSerial(peer.serialNumber),
    key: certKeyFingerprint(pem),
    validTo: new Date(peer.valid_to),
  };
}
