import {
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  webcrypto,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkAttributes,
  checkKey,
  checkSubject,
  RSA_MAX_BITS,
  RSA_MIN_BITS,
} from '../../src/pki/csrPolicy.js';
import { CsrRejectedError, validateCsr, x509 } from '../../src/pki/index.js';

const HOST = 'workstation';
const ACCEPTED = 'accepted keys are EC P-256, Ed25519, or RSA 2048-8192 bits';

/**
 * CSRs for CN=workstation made once with OpenSSL (see test/fixtures/csr/README.md): big RSA keys
 * take seconds to generate, and Ed448, RSA-PSS and DSA keys cannot be made with WebCrypto.
 */
function fixture(name: string): string {
  return readFileSync(new URL(`../fixtures/csr/${name}.csr.pem`, import.meta.url), 'utf8');
}

function keyOf(pem: string): KeyObject {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  return createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
}

async function reasonFor(pem: string): Promise<string> {
  const err = await validateCsr(pem, HOST).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the CSR was accepted').toBeInstanceOf(CsrRejectedError);
  return (err as CsrRejectedError).reason;
}

describe('the key policy, from stored CSRs', () => {
  it('states the limits it enforces', () => {
    expect([RSA_MIN_BITS, RSA_MAX_BITS]).toEqual([2048, 8192]);
  });

  it.each([
    ['rsa-8200', `its key is RSA 8200 bits; ${ACCEPTED}`],
    ['rsa-2047', `its key is RSA 2047 bits; ${ACCEPTED}`],
    ['ed448', `its key type is ed448; ${ACCEPTED}`],
    ['rsa-pss', `its key type is rsa-pss; ${ACCEPTED}`],
    ['dsa', `its key type is dsa; ${ACCEPTED}`],
  ])('refuses %s: "%s"', async (name, reason) => {
    const pem = fixture(name);
    expect(checkKey(keyOf(pem))).toEqual({ ok: false, reason });
    expect(await reasonFor(pem)).toBe(reason);
  });

  it('accepts RSA at exactly 8192 bits, through the whole CSR check', async () => {
    const pem = fixture('rsa-8192');
    expect(checkKey(keyOf(pem))).toEqual({ ok: true, keyType: 'rsa', rsaBits: 8192 });
    await expect(validateCsr(pem, HOST)).resolves.toMatchObject({ keyType: 'rsa', rsaBits: 8192 });
  });
});

describe('checkKey on key objects', () => {
  const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve }).publicKey;

  it.each([
    ['P-256', () => ec('prime256v1'), { ok: true, keyType: 'p256' }],
    ['Ed25519', () => generateKeyPairSync('ed25519').publicKey, { ok: true, keyType: 'ed25519' }],
    [
      'secp256k1 (same size as P-256, other curve)',
      () => ec('secp256k1'),
      { ok: false, reason: `its key is on the EC curve secp256k1; ${ACCEPTED}` },
    ],
    [
      'X25519',
      () => generateKeyPairSync('x25519').publicKey,
      { ok: false, reason: `its key type is x25519; ${ACCEPTED}` },
    ],
    [
      'a secret key, which has no asymmetric type at all',
      () => createSecretKey(Buffer.alloc(32)),
      { ok: false, reason: `its key type is unknown; ${ACCEPTED}` },
    ],
  ] as Array<[string, () => KeyObject, unknown]>)('%s', (_name, make, verdict) => {
    expect(checkKey(make())).toEqual(verdict);
  });

  it('accepts RSA at exactly 2048 bits and reports the size', () => {
    expect(checkKey(keyOf(fixture('rsa-2048')))).toEqual({ ok: true, keyType: 'rsa', rsaBits: 2048 });
  });
});

describe('checkSubject', () => {
  const must = `it must be exactly "CN=${HOST}"`;
  const rows: Array<[string, x509.JsonName | string, string | null]> = [
    ['exactly CN=<host id>', [{ CN: [HOST] }], null],
    [
      'an extra empty RDN after the CN',
      [{ CN: [HOST] }, {}],
      `its subject "CN=${HOST}, " has an empty RDN; ${must}`,
    ],
    [
      'an extra empty RDN before the CN',
      [{}, { CN: [HOST] }],
      `its subject ", CN=${HOST}" has an empty RDN; ${must}`,
    ],
    ['one empty RDN', [{}], `its subject "" has 0 attributes; ${must}`],
    ['no RDN', [], `its subject is empty; ${must}`],
    [
      'two CNs in one RDN',
      `CN=${HOST}+CN=${HOST}`,
      `its subject "CN=${HOST}+CN=${HOST}" has 2 attributes; ${must}`,
    ],
    [
      'an OU beside the CN',
      [{ CN: [HOST] }, { OU: ['x'] }],
      `its subject "CN=${HOST}, OU=x" has 2 attributes; ${must}`,
    ],
    ['a serialNumber instead of a CN', [{ '2.5.4.5': ['1'] }], `its subject "2.5.4.5=1" has no CN; ${must}`],
    [
      'the host id in another case',
      [{ CN: ['Workstation'] }],
      `its subject is "CN=Workstation" but this host pairs as "${HOST}"; ${must}`,
    ],
  ];

  it.each(rows)('%s', (_name, json, reason) => {
    expect(checkSubject(new x509.Name(json), HOST)).toBe(reason);
  });

  it('refuses an extra empty RDN in a signed CSR', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: [HOST] }, {}],
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    expect(await reasonFor(csr.toString('pem'))).toBe(`its subject "CN=${HOST}, " has an empty RDN; ${must}`);
  });

  describe('shows the subject safely', () => {
    const shownCn = (cn: string) => checkSubject(new x509.Name([{ CN: [cn] }]), HOST)!;

    it('in full up to 120 characters', () => {
      const cn = 'x'.repeat(117);
      expect(shownCn(cn)).toBe(`its subject is "CN=${cn}" but this host pairs as "${HOST}"; ${must}`);
    });

    it('cut to 120 characters and "..." beyond', () => {
      const cn = 'y'.repeat(118);
      expect(shownCn(cn)).toBe(
        `its subject is "CN=${'y'.repeat(117)}..." but this host pairs as "${HOST}"; ${must}`,
      );
    });

    it('printable ASCII as it is, everything else as \\u{..} by code point', () => {
      expect(shownCn('a ~\u007f\u001fé😀')).toMatch(
        /^its subject is "CN=a ~\\u\{7f\}\\u\{1f\}\\u\{e9\}\\u\{1f600\}" but/,
      );
    });
  });
});

describe('checkAttributes', () => {
  const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
  const der = (...bytes: number[]) => new Uint8Array(bytes).buffer;

  async function csrWith(params: { extensions?: x509.Extension[]; attributes?: x509.Attribute[] }) {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ]);
    return x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: [HOST] }],
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      ...params,
    });
  }

  const rows: Array<[string, () => Promise<x509.Pkcs10CertificateRequest>, string | null]> = [
    ['none', () => csrWith({}), null],
    [
      'two extensions, by name',
      () =>
        csrWith({
          extensions: [
            new x509.BasicConstraintsExtension(false),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature),
          ],
        }),
      'it requests certificate extensions (basicConstraints, keyUsage); the master sets all extensions itself, a CSR must request none',
    ],
    [
      'an extension unknown by name, by OID',
      () => csrWith({ extensions: [new x509.Extension('1.2.3.4', false, der(0x05, 0x00))] }),
      'it requests certificate extensions (1.2.3.4); the master sets all extensions itself, a CSR must request none',
    ],
    [
      'an empty extension request',
      () => csrWith({ attributes: [new x509.Attribute(EXTENSION_REQUEST, [der(0x30, 0x00)])] }),
      'it requests certificate extensions (none listed); the master sets all extensions itself, a CSR must request none',
    ],
    [
      'an extension request that cannot be read',
      () =>
        csrWith({
          attributes: [
            new x509.Attribute(EXTENSION_REQUEST, [
              der(0x30, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x04, 0x02, 0x05, 0x00),
            ]),
          ],
        }),
      'its attributes cannot be read; a CSR must carry none',
    ],
    [
      'two attributes, by name and by OID',
      () =>
        csrWith({
          attributes: [
            new x509.ChallengePasswordAttribute('secret'),
            new x509.Attribute('1.2.3.4', [der(0x05, 0x00)]),
          ],
        }),
      'it carries attributes (challengePassword, 1.2.3.4); a CSR must carry none',
    ],
  ];

  it.each(rows)('%s', async (_name, make, reason) => {
    expect(checkAttributes(await make())).toBe(reason);
  });

  it('refuses an unreadable extension request through the whole CSR check, as a CSR rejection', async () => {
    const csr = await rows.find(([name]) => name.includes('cannot be read'))![1]();
    expect(await reasonFor(csr.toString('pem'))).toBe('its attributes cannot be read; a CSR must carry none');
  });
});
