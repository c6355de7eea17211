import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, type PeerCertificate } from 'node:tls';
import { DianeError, ExitCode } from '../errors.js';
import { certKeyFingerprint } from '../pki/index.js';

export interface MasterEndpoint {
  host: string;
  port: number;
  /** Connect to this address instead of resolving `host` (one address of a name with several). */
  address?: string;
}

export function parseMasterUrl(text: string): URL & { endpoint: MasterEndpoint } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DianeError(`invalid --master "${text}": expected https://HOST:8765`, ExitCode.usage);
  }
  if (url.protocol !== 'https:') {
    throw new DianeError(`invalid --master "${text}": the master is reached over https://`, ExitCode.usage);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return Object.assign(url, { endpoint: { host, port: Number(url.port || 443) } });
}

/**
 * Reads the CA certificate the master sends at the end of its TLS chain. The connection is not
 * trusted yet, so nothing is sent over it: the caller compares the CA's fingerprint with the one
 * the admin gave (or the person confirms it) before any request goes out, and every later
 * connection verifies the master against exactly this CA.
 */
export function fetchMasterCa(
  endpoint: MasterEndpoint,
  timeoutMs = 10_000,
): Promise<{ caPem: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: endpoint.address ?? endpoint.host,
      port: endpoint.port,
      servername: isIP(endpoint.host) ? undefined : endpoint.host,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DianeError(`timed out reaching the master at ${endpoint.host}:${endpoint.port}`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const root = chainRoot(socket.getPeerCertificate(true));
      socket.end();
      if (!root) {
        reject(new DianeError('the master did not present its CA certificate; is this a Diane master?'));
        return;
      }
      const caPem = new X509Certificate(root.raw).toString();
      resolve({ caPem, fingerprint: certKeyFingerprint(caPem) });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new DianeError(`cannot reach the master at ${endpoint.host}:${endpoint.port}: ${err.message}`));
    });
  });
}

/**
 * During a CA rollover the master presents the current CA, and the admin may have given the
 * next CA's fingerprint instead. The pin still holds if the master's trust reply (fetched over
 * the unpinned connection, so trusted for nothing by itself) has a self-signed CA with the pinned
 * key and a cross certificate in which that CA certifies the presented CA's key: only the holder
 * of the pinned key can make one. Returns the bundle to trust (both CAs), or undefined.
 */
export function rolloverPinBundle(
  presentedPem: string,
  pin: string,
  reply: { ca_certs: string[]; cross_certs: string[] },
): string | undefined {
  const presented = new X509Certificate(presentedPem);
  const presentedKey = certKeyFingerprint(presentedPem);
  for (const caPem of reply.ca_certs) {
    const ca = parse(caPem);
    if (!ca || certKeyFingerprint(caPem) !== pin || !ca.ca) continue;
    if (!ca.checkIssued(ca) || !ca.verify(ca.publicKey)) continue;
    for (const crossPem of reply.cross_certs) {
      const cross = parse(crossPem);
      if (!cross || certKeyFingerprint(crossPem) !== presentedKey) continue;
      if (!cross.checkIssued(ca) || !cross.verify(ca.publicKey)) continue;
      return `${presented.toString().trim()}\n${ca.toString().trim()}\n`;
    }
  }
  return undefined;
}

function parse(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function chainRoot(
  leaf: PeerCertificate & { issuerCertificate?: PeerCertificate },
): PeerCertificate | undefined {
  let cert = leaf;
  for (let depth = 0; depth < 4; depth++) {
    const issuer = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate;
    if (!issuer || issuer === cert || issuer.fingerprint256 === cert.fingerprint256) {
      return depth === 0 ? undefined : cert;
    }
    cert = issuer;
  }
  return undefined;
}
