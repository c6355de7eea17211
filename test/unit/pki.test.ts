import { createPublicKey, X509Certificate as NodeX509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { spkiOfCertificateDer } from '../../src/pki/fingerprint.js';
import {
  type CertificateAuthority,
  certKeyFingerprint,
  ensureServerCertificate,
  type IssuedCertificate,
  issueSlaveCertificate,
  keyHashOfPeerCertificate,
  loadCa,
  loadOrCreateCa,
  makeCsr,
  normalizeSerial,
  PkiError,
  serialOf,
  spkiFingerprint,
  validateCsr,
  x509,
} from '../../src/pki/index.js';

const YEAR_MS = 365 * 24 * 60 * 60 * 1000;

let root: string;
let caDir: string;
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let otherCaDir: string;
let slave: { keyPem: string; issued: IssuedCertificate };
let dirModeBefore: number;

function caFiles(dir: string) {
  return { certPath: path.join(dir, 'slave-ca-cert.pem'), keyPath: path.join(dir, 'slave-ca-key.pem') };
}

function newDir(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
}

async function pkiErrorOf(promise: Promise<unknown>): Promise<PkiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PkiError);
  expect((err as PkiError).exitCode).toBe(ExitCode.pki);
  return err as PkiError;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'diane-pki-'));
  caDir = newDir('home');
  // A mode we would never choose, to see that creating the CA leaves the directory alone.
  fs.chmodSync(caDir, 0o750);
  dirModeBefore = fs.statSync(caDir).mode & 0o777;
  // The one CA of this file is made with production defaults (RSA 4096), so the default is tested.
  ca = await loadOrCreateCa(caFiles(caDir));
  otherCaDir = newDir('other');
  otherCa = await loadOrCreateCa({ ...caFiles(otherCaDir), keyBits: 2048 });

  const { csrPem, keyPem } = await makeCsr('workstation');
  const issued = await issueSlaveCertificate(ca, await validateCsr(csrPem, 'workstation'), 'workstation');
  slave = { keyPem, issued };
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('slave CA', () => {
  it('is a 10-year RSA-4096 CA limited to signing end-entity certificates', () => {
    const bc = ca.cert.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.pathLength).toBe(0);
    expect(bc.critical).toBe(true);
    const ku = ca.cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(ku.critical).toBe(true);
    expect(ca.cert.subject).toMatch(/^CN=Diane Slave CA [0-9a-f]{8}$/);
    expect(ca.cert.issuer).toBe(ca.cert.subject);

    const years = (ca.notAfter.getTime() - ca.cert.notBefore.getTime()) / YEAR_MS;
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.02);
    expect(ca.notAfter).toEqual(ca.cert.notAfter);

    const key = createPublicKey(ca.certPem);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(4096);
    expect(ca.fingerprint).toBe(certKeyFingerprint(ca.certPem));
    expect(ca.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('stores the key as PKCS#8 with mode 0600 and leaves the directory mode alone', () => {
    const { certPath, keyPath } = caFiles(caDir);
    expect(fs.statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(keyPath, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(fs.statSync(certPath).mode & 0o777).toBe(0o644 & ~process.umask());
    expect(fs.statSync(caDir).mode & 0o777).toBe(dirModeBefore);
    // No temp files left behind by the atomic writes.
    expect(fs.readdirSync(caDir).sort()).toEqual(['slave-ca-cert.pem', 'slave-ca-key.pem']);
  });

  it('is reloaded, not re-created, on later starts', async () => {
    const { certPath, keyPath } = caFiles(caDir);
    const keyBefore = fs.readFileSync(keyPath, 'utf8');
    const again = await loadOrCreateCa(caFiles(caDir));
    const loaded = await loadCa(caFiles(caDir));
    for (const reloaded of [again, loaded]) {
      expect(reloaded.fingerprint).toBe(ca.fingerprint);
      expect(reloaded.certPem).toBe(ca.certPem);
      expect(reloaded.notAfter).toEqual(ca.notAfter);
    }
    expect(fs.readFileSync(keyPath, 'utf8')).toBe(keyBefore);
    expect(fs.readFileSync(certPath, 'utf8')).toBe(ca.certPem);

    // The reloaded key really signs: a certificate it issues chains to the CA.
    const { csrPem } = await makeCsr('laptop');
    const issued = await issueSlaveCertificate(loaded, await validateCsr(csrPem, 'laptop'), 'laptop');
    expect(await new x509.X509Certificate(issued.certPem).verify({ publicKey: ca.cert.publicKey })).toBe(
      true,
    );
  });

  it('refuses a lone certificate and never creates a new CA next to it', async () => {
    const dir = newDir('cert-only');
    const files = caFiles(dir);
    fs.copyFileSync(caFiles(caDir).certPath, files.certPath);
    const err = await pkiErrorOf(loadOrCreateCa({ ...files, keyBits: 2048 }));
    expect(err.message).toContain(files.keyPath);
    expect(err.message).toMatch(/missing/);
    expect(fs.existsSync(files.keyPath)).toBe(false);
    await pkiErrorOf(loadCa(files));
  });

  it('refuses a lone key and never creates a new CA next to it', async () => {
    const dir = newDir('key-only');
    const files = caFiles(dir);
    fs.copyFileSync(caFiles(caDir).keyPath, files.keyPath);
    const err = await pkiErrorOf(loadOrCreateCa({ ...files, keyBits: 2048 }));
    expect(err.message).toContain(files.certPath);
    expect(fs.existsSync(files.certPath)).toBe(false);
  });

  it('loadCa never creates a CA', async () => {
    const files = caFiles(newDir('empty'));
    const err = await pkiErrorOf(loadCa(files));
    expect(err.message).toMatch(/No slave CA found/);
    expect(fs.existsSync(files.certPath) || fs.existsSync(files.keyPath)).toBe(false);
  });

  it("refuses another CA's key", async () => {
    const files = caFiles(newDir('mixed'));
    fs.copyFileSync(caFiles(caDir).certPath, files.certPath);
    fs.copyFileSync(caFiles(otherCaDir).keyPath, files.keyPath);
    const err = await pkiErrorOf(loadOrCreateCa(files));
    expect(err.message).toMatch(/does not match/);
  });

  it('refuses a key file that is not a key', async () => {
    const files = caFiles(newDir('garbage-key'));
    fs.copyFileSync(caFiles(caDir).certPath, files.certPath);
    fs.writeFileSync(files.keyPath, 'this is not a key\n', { mode: 0o600 });
    const err = await pkiErrorOf(loadOrCreateCa(files));
    expect(err.message).toMatch(/not a readable private key/);
  });

  it('refuses a certificate file that is not a certificate', async () => {
    const files = caFiles(newDir('garbage-cert'));
    fs.writeFileSync(files.certPath, 'garbage\n');
    fs.copyFileSync(caFiles(caDir).keyPath, files.keyPath);
    await pkiErrorOf(loadOrCreateCa(files));
  });

  it.skipIf(process.getuid?.() === 0)('refuses an unreadable key file', async () => {
    const files = caFiles(newDir('unreadable'));
    fs.copyFileSync(caFiles(caDir).certPath, files.certPath);
    fs.copyFileSync(caFiles(caDir).keyPath, files.keyPath);
    fs.chmodSync(files.keyPath, 0o000);
    const err = await pkiErrorOf(loadOrCreateCa(files));
    expect(err.message).toMatch(/Cannot read/);
  });
});

describe('slave certificate', () => {
  it('follows the fixed client template', async () => {
    const cert = new x509.X509Certificate(slave.issued.certPem);
    expect(cert.subjectName.toJSON()).toEqual([{ CN: ['workstation'] }]);
    expect(new NodeX509Certificate(slave.issued.certPem).subject).toBe('CN=workstation');
    expect(cert.issuer).toBe(ca.cert.subject);

    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(false);
    expect(bc.critical).toBe(true);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(ku.critical).toBe(true);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)).toBeNull();
    const caKeyId = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(caKeyId);
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();
    expect(cert.extensions.map((e) => e.type).sort()).toEqual(
      ['2.5.29.14', '2.5.29.15', '2.5.29.19', '2.5.29.35', '2.5.29.37'].sort(),
    );

    expect(await cert.verify({ publicKey: ca.cert.publicKey })).toBe(true);
    expect(await cert.verify({ publicKey: otherCa.cert.publicKey })).toBe(false);
  });

  it('has a positive 128-bit random serial in the documented format', async () => {
    const cert = new x509.X509Certificate(slave.issued.certPem);
    const serial = slave.issued.serialHex;
    expect(serial).toMatch(/^(?:[0-9a-f]{2})+$/);
    expect(serialOf(cert)).toBe(serial);
    expect(serialOf(new NodeX509Certificate(slave.issued.certPem))).toBe(serial);
    const value = BigInt(`0x${serial}`);
    expect(value > 0n).toBe(true);
    expect(value < 2n ** 127n).toBe(true);

    const { csrPem } = await makeCsr('workstation');
    const csr = await validateCsr(csrPem, 'workstation');
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add((await issueSlaveCertificate(ca, csr, 'workstation')).serialHex);
    expect(serials.size).toBe(5);
  });

  it('normalises serials from every source to one format', () => {
    expect(normalizeSerial('0501')).toBe('0501');
    expect(normalizeSerial('501')).toBe('0501');
    expect(normalizeSerial('000501')).toBe('0501');
    expect(normalizeSerial('85AB')).toBe('0085ab');
    expect(normalizeSerial('0085ab')).toBe('0085ab');
    expect(normalizeSerial('85:ab')).toBe('0085ab');
    expect(normalizeSerial('00')).toBe('00');
    expect(() => normalizeSerial('xyz')).toThrow(PkiError);
    expect(() => normalizeSerial('')).toThrow(PkiError);
  });

  it('runs from now−5 min for the requested validity, capped at the CA expiry', async () => {
    const now = new Date('2030-01-01T12:00:00.000Z');
    const { csrPem } = await makeCsr('nas');
    const csr = await validateCsr(csrPem, 'nas');

    const normal = await issueSlaveCertificate(ca, csr, 'nas', { now });
    expect(normal.notBefore).toEqual(new Date('2030-01-01T11:55:00.000Z'));
    expect(normal.notAfter.getTime()).toBe(now.getTime() + YEAR_MS);

    const short = await issueSlaveCertificate(ca, csr, 'nas', { now, validityMs: 60 * 60 * 1000 });
    expect(short.notAfter).toEqual(new Date('2030-01-01T13:00:00.000Z'));

    const capped = await issueSlaveCertificate(ca, csr, 'nas', { now, validityMs: 50 * YEAR_MS });
    expect(capped.notAfter).toEqual(ca.notAfter);
    expect(new x509.X509Certificate(capped.certPem).notAfter).toEqual(ca.notAfter);

    await pkiErrorOf(issueSlaveCertificate(ca, csr, 'nas', { now: new Date(ca.notAfter.getTime() + 1000) }));
    await pkiErrorOf(issueSlaveCertificate(ca, csr, 'nas', { now, validityMs: 0 }));
  });

  it("carries exactly the CSR's public key", async () => {
    const { csrPem } = await makeCsr('printer');
    const csr = await validateCsr(csrPem, 'printer');
    const issued = await issueSlaveCertificate(ca, csr, 'printer');
    expect(issued.keyFingerprint).toBe(csr.keyFingerprint);
    expect(certKeyFingerprint(issued.certPem)).toBe(csr.keyFingerprint);
    const csrKey = createPublicKey(new x509.Pkcs10CertificateRequest(csrPem).publicKey.toString('pem'));
    expect(createPublicKey(issued.certPem).equals(csrKey)).toBe(true);
  });

  it('is only issued for the host id the CSR was validated for', async () => {
    const { csrPem } = await makeCsr('printer');
    const csr = await validateCsr(csrPem, 'printer');
    const err = await pkiErrorOf(issueSlaveCertificate(ca, csr, 'scanner'));
    expect(err.message).toMatch(/printer/);
  });
});

describe('master server certificate', () => {
  const serverFiles = () => ({
    certPath: path.join(caDir, 'server-cert.pem'),
    keyPath: path.join(caDir, 'server-key.pem'),
  });

  function sansOf(certPem: string): string[] {
    const san = new x509.X509Certificate(certPem).getExtension(x509.SubjectAlternativeNameExtension)!;
    return san.names.items.map((n) => `${n.type}:${n.value}`);
  }

  it('is issued by the CA for localhost, loopback IPs, this host and the configured hosts', async () => {
    const result = await ensureServerCertificate(ca, {
      ...serverFiles(),
      hosts: ['diane.example.org', '192.0.2.7'],
    });
    expect(result.reissued).toBe(true);
    const cert = new x509.X509Certificate(result.certPem);
    expect(await cert.verify({ publicKey: ca.cert.publicKey })).toBe(true);
    const sans = sansOf(result.certPem);
    for (const want of ['dns:localhost', 'ip:127.0.0.1', 'ip:::1', 'dns:diane.example.org', 'ip:192.0.2.7']) {
      expect(sans).toContain(want);
    }
    expect(sans).toContain(`dns:${os.hostname().toLowerCase()}`);

    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([
      x509.ExtendedKeyUsage.serverAuth,
    ]);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(ku.critical).toBe(true);
    expect(cert.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    expect((cert.notAfter.getTime() - cert.notBefore.getTime()) / YEAR_MS).toBeCloseTo(1, 2);

    const key = createPublicKey(result.certPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const { certPath, keyPath } = serverFiles();
    expect(fs.statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(keyPath, 'utf8')).toBe(result.keyPem);
    expect(result.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(fs.readFileSync(certPath, 'utf8')).toBe(result.certPem);
  });

  it('is reused while nothing changed, whatever the order or spelling of hosts', async () => {
    const first = await ensureServerCertificate(ca, {
      ...serverFiles(),
      hosts: ['192.0.2.7', 'diane.example.org'],
    });
    const second = await ensureServerCertificate(ca, {
      ...serverFiles(),
      hosts: ['Diane.Example.org.', '192.0.2.7'],
    });
    expect(first.reissued).toBe(false);
    expect(second.reissued).toBe(false);
    expect(second.certPem).toBe(first.certPem);
  });

  it('is reissued when the hosts change', async () => {
    const before = fs.readFileSync(serverFiles().certPath, 'utf8');
    const result = await ensureServerCertificate(ca, {
      ...serverFiles(),
      hosts: ['diane.example.org', '2001:db8::1'],
    });
    expect(result.reissued).toBe(true);
    expect(result.certPem).not.toBe(before);
    expect(sansOf(result.certPem)).toContain('ip:2001:db8::1');
    expect(sansOf(result.certPem)).not.toContain('ip:192.0.2.7');
  });

  it('is reissued within 30 days of expiry, or when another CA signed it', async () => {
    const files = serverFiles();
    const hosts = ['diane.example.org', '2001:db8::1'];
    const current = new x509.X509Certificate(fs.readFileSync(files.certPath, 'utf8'));
    const nearExpiry = new Date(current.notAfter.getTime() - 29 * 24 * 60 * 60 * 1000);
    expect((await ensureServerCertificate(ca, { ...files, hosts, now: nearExpiry })).reissued).toBe(true);

    await ensureServerCertificate(otherCa, { ...files, hosts });
    const result = await ensureServerCertificate(ca, { ...files, hosts });
    expect(result.reissued).toBe(true);
    expect(await new x509.X509Certificate(result.certPem).verify({ publicKey: ca.cert.publicKey })).toBe(
      true,
    );
  });

  it('is reissued when its key is missing or does not match', async () => {
    const files = serverFiles();
    const hosts = ['diane.example.org'];
    await ensureServerCertificate(ca, { ...files, hosts });
    fs.rmSync(files.keyPath);
    expect((await ensureServerCertificate(ca, { ...files, hosts })).reissued).toBe(true);
    fs.writeFileSync(files.keyPath, slave.keyPem);
    expect((await ensureServerCertificate(ca, { ...files, hosts })).reissued).toBe(true);
    expect((await ensureServerCertificate(ca, { ...files, hosts })).reissued).toBe(false);
  });

  it('refuses a host that is neither a DNS name nor an IP', async () => {
    await pkiErrorOf(ensureServerCertificate(ca, { ...serverFiles(), hosts: ['not a host'] }));
  });
});

type HandshakeResult =
  | { ok: true; serverSocket: tls.TLSSocket; peer: tls.PeerCertificate; peerX509?: NodeX509Certificate }
  | { ok: false; error: NodeJS.ErrnoException };

/**
 * One TLS handshake over loopback. It succeeded when both ends saw it complete; with TLS 1.3 the
 * client finishes first, so a server that refuses the client's certificate shows up as an error
 * or a close on the client afterwards.
 */
async function handshake(
  serverOptions: tls.TlsOptions,
  clientOptions: tls.ConnectionOptions,
): Promise<HandshakeResult> {
  const server = tls.createServer(serverOptions);
  server.on('tlsClientError', () => {});
  const serverSide = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = tls.connect({ host: '127.0.0.1', port, ...clientOptions });
  const failed = new Promise<HandshakeResult>((resolve) => {
    client.on('error', (error) => resolve({ ok: false, error }));
    client.on('close', () =>
      resolve({ ok: false, error: new Error('closed before the handshake completed') }),
    );
  });
  const connected = new Promise<void>((resolve) => client.once('secureConnect', resolve));
  const succeeded = Promise.all([connected, serverSide]).then(
    ([, serverSocket]): HandshakeResult => ({
      ok: true,
      serverSocket,
      peer: serverSocket.getPeerCertificate(),
      peerX509: serverSocket.getPeerX509Certificate(),
    }),
  );
  try {
    return await Promise.race([succeeded, failed]);
  } finally {
    client.destroy();
    void serverSide.then((socket) => socket.destroy());
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('TLS', () => {
  let master: { certPem: string; keyPem: string };

  beforeAll(async () => {
    const dir = newDir('tls');
    master = await ensureServerCertificate(ca, {
      certPath: path.join(dir, 'server-cert.pem'),
      keyPath: path.join(dir, 'server-key.pem'),
      hosts: [],
    });
  });

  it('refuses a slave certificate used as a server certificate', async () => {
    const result = await handshake(
      { cert: slave.issued.certPem, key: slave.keyPem },
      { ca: ca.certPem, servername: 'localhost' },
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(`${result.error.code} ${result.error.message}`).toMatch(/purpose/i);
  });

  it('accepts the master certificate for localhost and 127.0.0.1 with only the CA trusted', async () => {
    const server = { cert: master.certPem, key: master.keyPem };
    const byName = await handshake(server, { ca: ca.certPem, servername: 'localhost' });
    expect(byName.ok).toBe(true);
    const byIp = await handshake(server, { ca: ca.certPem });
    expect(byIp.ok).toBe(true);
    const otherTrust = await handshake(server, { ca: otherCa.certPem, servername: 'localhost' });
    expect(otherTrust.ok).toBe(false);
  });

  it('completes mutual TLS with the slave certificate as client certificate', async () => {
    const result = await handshake(
      {
        cert: master.certPem,
        key: master.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      { ca: ca.certPem, servername: 'localhost', cert: slave.issued.certPem, key: slave.keyPem },
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.serverSocket.authorized).toBe(true);
    // What the hub will look up in the store.
    expect(serialOf(result.peer)).toBe(slave.issued.serialHex);
    expect(keyHashOfPeerCertificate(result.peer)).toBe(slave.issued.keyFingerprint);
    const x509Peer = result.peerX509!;
    expect(keyHashOfPeerCertificate(x509Peer)).toBe(slave.issued.keyFingerprint);
    expect(serialOf(x509Peer)).toBe(slave.issued.serialHex);
  });

  it('reads the key hash from the certificate bytes exactly as from the parsed key, and refuses garbage', async () => {
    // A P-256 slave certificate, the master's, and the RSA-4096 CA's own.
    for (const cert of [slave.issued.certPem, master.certPem, ca.certPem]) {
      const parsed = new NodeX509Certificate(cert);
      const raw = parsed.raw;
      const viaKey = spkiFingerprint(parsed.publicKey.export({ type: 'spki', format: 'der' }));
      expect(spkiFingerprint(spkiOfCertificateDer(raw)!)).toBe(viaKey);
      expect(keyHashOfPeerCertificate({ raw } as tls.PeerCertificate)).toBe(viaKey);
    }
    const raw = new NodeX509Certificate(slave.issued.certPem).raw;
    expect(spkiOfCertificateDer(raw.subarray(0, raw.length - 1))).toBeUndefined();
    expect(spkiOfCertificateDer(Buffer.concat([raw, Buffer.from([0])]))).toBeUndefined();
    expect(spkiOfCertificateDer(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]))).toBeUndefined();
    expect(spkiOfCertificateDer(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]))).toBeUndefined();
    expect(spkiOfCertificateDer(new Uint8Array())).toBeUndefined();
    // Whatever is not a certificate's layout falls back to the full parse, which refuses it.
    expect(() => keyHashOfPeerCertificate({ raw: Buffer.from([1, 2, 3]) } as tls.PeerCertificate)).toThrow();
  });

  it('tells the hub when there is no peer certificate', () => {
    expect(() => keyHashOfPeerCertificate({} as tls.PeerCertificate)).toThrow(PkiError);
    expect(() => keyHashOfPeerCertificate(undefined)).toThrow(PkiError);
  });

  it('refuses a client certificate from another CA', async () => {
    const { csrPem, keyPem } = await makeCsr('intruder');
    const foreign = await issueSlaveCertificate(otherCa, await validateCsr(csrPem, 'intruder'), 'intruder');
    const result = await handshake(
      {
        cert: master.certPem,
        key: master.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      { ca: ca.certPem, servername: 'localhost', cert: foreign.certPem, key: keyPem },
    );
    expect(result.ok).toBe(false);
  });
});
