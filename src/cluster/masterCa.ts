import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, type PeerCertificate } from 'node:tls';
import { DianeError, ExitCode } from '../errors.js';
import { certKeyFingerprint } from '../pki/index.js';

export interface MasterEndpoint {
  host: string;
  port: number;
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
      host: endpoint.host,
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
