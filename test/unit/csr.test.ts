import { createPublicKey, webcrypto } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import {
  type CertificateAuthority,
  CsrRejectedError,
  certKeyFingerprint,
  issueSlaveCertificate,
  loadOrCreateCa,
  makeCsr,
  spkiFingerprint,
  validateCsr,
  x509,
} from '../../src/pki/index.js';

type KeyPair = webcrypto.CryptoKeyPair;
const { subtle } = webcrypto;
const HOST = 'workstation';

let root: string;
let ca: CertificateAuthority;
const keys: Record<'p256' | 'p256b' | 'p384' | 'ed25519' | 'rsa1024' | 'rsa2048', KeyPair> = {} as never;

function rsaKeys(bits: number): Promise<KeyPair> {
  return subtle.generateKey(
    {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: bits,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    false,
    ['sign', 'verify'],
  );
}

interface CsrParams {
  name?: string | x509.JsonName;
  keys?: KeyPair;
  extensions?: x509.Extension[];
  attributes?: x509.Attribute[];
}

/** A CSR as an attacker or a careless tool would make it; defaults make a valid one. */
async function csrPem(params: CsrParams = {}): Promise<string> {
  const pair = params.keys ?? keys.p256;
  const algorithm = pair.privateKey.algorithm.name;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: params.name ?? [{ CN: [HOST] }],
    keys: pair,
    signingAlgorithm: algorithm === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: algorithm },
    ...(params.extensions ? { extensions: params.extensions } : {}),
    ...(params.attributes ? { attributes: params.attributes } : {}),
  });
  return csr.toString('pem');
}

function pemOf(der: Uint8Array, label = 'CERTIFICATE REQUEST'): string {
  const lines = Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!;
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function derOf(pem: string): Uint8Array {
  return new Uint8Array(x509.PemConverter.decodeFirst(pem));
}

async function rejection(pem: string, hostId = HOST): Promise<CsrRejectedError> {
  const err = await validateCsr(pem, hostId).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the CSR was accepted').toBeInstanceOf(CsrRejectedError);
  const rejected = err as CsrRejectedError;
  expect(rejected.exitCode).toBe(ExitCode.pki);
  expect(rejected.message).toContain(rejected.reason);
  return rejected;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'diane-pki-'));
  // keyBits 2048: this file's CA only needs to sign, and a 4096-bit key is slow to make.
  ca = await loadOrCreateCa({
    certPath: path.join(root, 'slave-ca-cert.pem'),
    keyPath: path.join(root, 'slave-ca-key.pem'),
    keyBits: 2048,
  });
  const ec = (namedCurve: string) =>
    subtle.generateKey({ name: 'ECDSA', namedCurve }, false, ['sign', 'verify']);
  [keys.p256, keys.p256b, keys.p384, keys.rsa1024, keys.rsa2048] = await Promise.all([
    ec('P-256'),
    ec('P-256'),
    ec('P-384'),
    rsaKeys(1024),
    rsaKeys(2048),
  ]);
  keys.ed25519 = (await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as KeyPair;
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('validateCsr accepts', () => {
  it('a CSR from makeCsr (P-256), as it is', async () => {
    const { csrPem: pem, keyPem } = await makeCsr(HOST);
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const csr = await validateCsr(pem, HOST);
    expect(csr.keyType).toBe('p256');
    expect(csr.rsaBits).toBeUndefined();
    expect(csr.pem).toBe(pem);
    expect(csr.hostId).toBe(HOST);
    // The fingerprint is of the key the slave holds.
    const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    expect(csr.keyFingerprint).toBe(spkiFingerprint(spki));
    expect(Buffer.from(csr.spkiDer).equals(spki)).toBe(true);
    expect(csr.publicKey.type).toBe('public');
  });

  it('an Ed25519 CSR, and signs it with the Ed25519 key', async () => {
    const csr = await validateCsr(await csrPem({ keys: keys.ed25519 }), HOST);
    expect(csr.keyType).toBe('ed25519');
    const issued = await issueSlaveCertificate(ca, csr, HOST);
    expect(certKeyFingerprint(issued.certPem)).toBe(csr.keyFingerprint);
    const cert = new x509.X509Certificate(issued.certPem);
    expect(cert.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(await cert.verify({ publicKey: ca.cert.publicKey })).toBe(true);
  });

  it('an RSA-2048 CSR, and adds keyEncipherment for the RSA key', async () => {
    const csr = await validateCsr(await csrPem({ keys: keys.rsa2048 }), HOST);
    expect(csr.keyType).toBe('rsa');
    expect(csr.rsaBits).toBe(2048);
    const issued = await issueSlaveCertificate(ca, csr, HOST);
    expect(certKeyFingerprint(issued.certPem)).toBe(csr.keyFingerprint);
    const cert = new x509.X509Certificate(issued.certPem);
    expect(cert.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
  });

  it('CRLF line endings and surrounding whitespace', async () => {
    const pem = (await csrPem()).replace(/\n/g, '\r\n');
    await expect(validateCsr(`\n  ${pem}\n\n`, HOST)).resolves.toMatchObject({ keyType: 'p256' });
  });
});

describe('validateCsr rejects', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    [
      'a request for CA:true',
      () => csrPem({ extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] }),
      /requests certificate extensions \(basicConstraints\)/,
    ],
    [
      'a request for serverAuth',
      () => csrPem({ extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])] }),
      /extensions \(extendedKeyUsage\)/,
    ],
    [
      'a request for SANs',
      () =>
        csrPem({
          extensions: [
            new x509.SubjectAlternativeNameExtension([
              { type: 'dns', value: 'master.example.org' },
              { type: 'ip', value: '127.0.0.1' },
            ]),
          ],
        }),
      /extensions \(subjectAltName\)/,
    ],
    [
      'a harmless-looking extension request (keyUsage)',
      () => csrPem({ extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature)] }),
      /extensions \(keyUsage\)/,
    ],
    ['two CNs', () => csrPem({ name: [{ CN: [HOST] }, { CN: ['other'] }] }), /2 attributes/],
    ['two CNs in one RDN', () => csrPem({ name: `CN=${HOST}+CN=other` }), /2 attributes/],
    ['a wrong CN', () => csrPem({ name: 'CN=master' }), /"CN=master" but this host pairs as "workstation"/],
    [
      'a CN that only starts with the host id',
      () => csrPem({ name: `CN=${HOST}x` }),
      /but this host pairs as/,
    ],
    ['an empty subject', () => csrPem({ name: [] }), /subject is empty/],
    ['an extra O attribute', () => csrPem({ name: [{ CN: [HOST] }, { O: ['Evil Corp'] }] }), /2 attributes/],
    ['an O instead of a CN', () => csrPem({ name: [{ O: [HOST] }] }), /has no CN/],
    ['an RSA-1024 key', () => csrPem({ keys: keys.rsa1024 }), /RSA 1024 bits; accepted keys are/],
    ['a P-384 key', () => csrPem({ keys: keys.p384 }), /EC curve secp384r1; accepted keys are/],
    [
      'a challengePassword attribute',
      () => csrPem({ attributes: [new x509.ChallengePasswordAttribute('secret')] }),
      /attributes \(challengePassword\)/,
    ],
    [
      'a signature made with another key',
      () => csrPem({ keys: { publicKey: keys.p256.publicKey, privateKey: keys.p256b.privateKey } }),
      /signature does not verify/,
    ],
    [
      'a tampered signature',
      async () => {
        const der = derOf(await csrPem());
        der[der.length - 1]! ^= 0x01;
        return pemOf(der);
      },
      /signature does not verify/,
    ],
    [
      'a tampered subject (signature no longer covers it)',
      async () => {
        const der = derOf(await csrPem({ name: 'CN=workstatioN' }));
        const at = Buffer.from(der).indexOf('workstatioN');
        der[at + 10] = 'n'.charCodeAt(0);
        return pemOf(der);
      },
      /signature does not verify/,
    ],
    ['an oversized CSR', () => csrPem({ name: [{ CN: ['x'.repeat(17 * 1024)] }] }), /larger than 16 KiB/],
    ['padding that makes it oversized', async () => `${await csrPem()}${' '.repeat(16 * 1024)}`, /16 KiB/],
    [
      'two PEM blocks',
      async () => `${await csrPem()}${await csrPem({ name: 'CN=other' })}`,
      /2 PEM blocks, exactly one is allowed/,
    ],
    ['a certificate instead of a CSR', async () => ca.certPem, /PEM "CERTIFICATE" block/],
    [
      'a certificate relabelled as a CSR',
      async () => pemOf(derOf(ca.certPem)),
      /not a PKCS#10 certificate request/,
    ],
    [
      'the legacy NEW CERTIFICATE REQUEST label',
      async () => (await csrPem()).replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST'),
      /"NEW CERTIFICATE REQUEST" block/,
    ],
    ['garbage text', async () => 'hello, please sign me\n', /not PEM/],
    ['an empty string', async () => '', /not PEM/],
    [
      'text before the block',
      async () => `Subject: CN=${HOST}\n${await csrPem()}`,
      /text before the PEM block/,
    ],
    ['text after the block', async () => `${await csrPem()}trailing words\n`, /text after the PEM block/],
    [
      'an END line that does not match',
      async () => (await csrPem()).replace('END CERTIFICATE REQUEST', 'END CERTIFICATE'),
      /END line does not match/,
    ],
    [
      'a body that is not base64',
      async () => (await csrPem()).replace(/\n([A-Za-z0-9+/]{10})/, '\n!!!$1'),
      /not plain base64/,
    ],
    [
      'bytes after the DER structure',
      async () => pemOf(new Uint8Array([...derOf(await csrPem()), 0x05, 0x00])),
      /not a single DER structure/,
    ],
    [
      'a truncated DER structure',
      async () => pemOf(derOf(await csrPem()).slice(0, 60)),
      /not a single DER structure/,
    ],
    [
      'valid DER that is not a CSR',
      async () => pemOf(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05])),
      /PKCS#10/,
    ],
  ];

  it.each(cases)('%s', async (_label, make, reason) => {
    const err = await rejection(await make());
    expect(err.reason).toMatch(reason);
  });

  it('a subject with terminal escape sequences, shown without them', async () => {
    const err = await rejection(await csrPem({ name: [{ CN: ['\u001b]0;pwned\u0007evil'] }] }));
    expect(err.reason).toContain('"CN=\\u{1b}]0');
    expect(err.reason).toContain('pwned\\u{7}evil"');
    expect([...err.reason].filter((c) => c.charCodeAt(0) < 0x20)).toEqual([]);
  });

  it('a CSR for another host id', async () => {
    const { csrPem: pem } = await makeCsr('laptop');
    const err = await rejection(pem, HOST);
    expect(err.reason).toMatch(/"CN=laptop" but this host pairs as "workstation"/);
  });
});
