import { X509Certificate } from 'node:crypto';
import type { Server } from '@modelcontextprotocol/server';
import { certKeyFingerprint } from '../pki/index.js';
import type { SlaveCredentials } from './slaveCredentials.js';
import { TRUST_METHOD, type TrustResult, TrustResultSchema } from './trustWire.js';

/** The CA certificates of a PEM bundle (`ca_cert` of the credentials holds one or two). */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Key fingerprints of the CAs a slave trusts for its master. */
export function trustedFingerprints(creds: Pick<SlaveCredentials, 'ca_cert'>): Set<string> {
  return new Set(splitPemBundle(creds.ca_cert).map((pem) => certKeyFingerprint(pem)));
}

export interface TrustUpdate {
  /** The credentials with the new CA bundle; the same object when nothing changed. */
  creds: SlaveCredentials;
  changed: boolean;
  /** The client certificate is not from the CA that issues now: renew onto it at once. */
  renewNow: boolean;
}

/**
 * Asks the master which CAs to trust (`diane/trust`) over the link, which this slave verified
 * against the CAs it trusts already: that is what authenticates the answer. Each CA must be a
 * self-signed CA certificate, and the new set must keep one CA of the old set, so that a broken
 * answer cannot make the slave distrust the master it is talking to.
 */
export async function requestTrust(server: Server, timeoutMs: number): Promise<TrustResult> {
  return server.request({ method: TRUST_METHOD, params: {} }, TrustResultSchema, { timeout: timeoutMs });
}

export function applyTrust(creds: SlaveCredentials, trust: TrustResult): TrustUpdate {
  const cas = trust.ca_certs.map((pem) => checkedCa(pem));
  const known = trustedFingerprints(creds);
  if (!cas.some((ca) => known.has(ca.fingerprint))) {
    throw new Error('the master named only CAs this slave does not trust yet; the answer is ignored');
  }
  const client = new X509Certificate(creds.client_cert);
  const issuing = cas.find((ca) => ca.fingerprint === trust.issuing_ca_fingerprint);
  const renewNow = issuing !== undefined && !client.verify(issuing.cert.publicKey);
  const bundle = `${cas.map((ca) => ca.pem.trim()).join('\n')}\n`;
  const same = known.size === cas.length && cas.every((ca) => known.has(ca.fingerprint));
  if (same) return { creds, changed: false, renewNow };
  return { creds: { ...creds, ca_cert: bundle }, changed: true, renewNow };
}

function checkedCa(pem: string): { pem: string; cert: X509Certificate; fingerprint: string } {
  const cert = new X509Certificate(pem);
  if (!cert.ca) throw new Error('the master named a CA certificate that is not a CA');
  if (!cert.checkIssued(cert) || !cert.verify(cert.publicKey)) {
    throw new Error('the master named a CA certificate that is not self-signed');
  }
  return { pem: cert.toString(), cert, fingerprint: certKeyFingerprint(pem) };
}
