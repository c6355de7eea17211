import { generateP256Keys, privateKeyToPem } from './keys.js';
import { encodePem } from './pem.js';
import { x509 } from './x509.js';

/**
 * The slave's side of pairing: a fresh P-256 key that never leaves the slave, and a CSR with
 * subject CN=<hostId> and no extensions, which is all the master accepts.
 */
export async function makeCsr(hostId: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await generateP256Keys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: new x509.Name([{ CN: [hostId] }]),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return {
    csrPem: encodePem(csr.rawData, 'CERTIFICATE REQUEST'),
    keyPem: await privateKeyToPem(keys.privateKey),
  };
}
