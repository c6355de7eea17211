import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import {
  type CertificateCheckStore,
  type CertificateVerdict,
  checkSlaveCertificate,
  REFUSAL_STATUS,
  REFUSAL_TEXT,
  type Refusal,
} from '../../src/cluster/certificateCheck.js';
import type { RevokedCredential, SlaveServer } from '../../src/store/index.js';
import { fixtureCert } from '../helpers/certFixtures.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const DAY = 24 * 60 * 60 * 1000;

/** Issued by a CA for CN=laptop; the store rows below decide which host it is. */
const cert = fixtureCert('laptop');
/** Another certificate of the same CA, with another key. */
const other = fixtureCert('laptop-2');

/** The store as the check sees it: a table of rows, looked up exactly as SQLite would. */
interface Tables {
  slaves?: Array<Partial<SlaveServer> & { certSerial: string }>;
  revoked?: Array<{ certSerial: string; reason: string | null; keyFingerprint?: string | null }>;
}

function fakeStore(tables: Tables): CertificateCheckStore {
  const slaves = (tables.slaves ?? []).map(
    (row): SlaveServer => ({
      id: `id-${row.certSerial}`,
      hostId: 'ws1',
      issuedAt: new Date(NOW.getTime() - DAY),
      expiresAt: new Date(NOW.getTime() + 300 * DAY),
      lastSeen: null,
      enabled: true,
      createdAt: new Date(NOW.getTime() - DAY),
      updatedAt: new Date(NOW.getTime() - DAY),
      keyFingerprint: null,
      pending: null,
      lastRenewedAt: null,
      renewalError: null,
      renewalErrorAt: null,
      ...row,
    }),
  );
  const revoked = (tables.revoked ?? []).map(
    (row): RevokedCredential => ({
      id: `rev-${row.certSerial}`,
      hostId: 'ws1',
      revokedAt: NOW,
      keyFingerprint: null,
      ...row,
    }),
  );
  return {
    revokedCredentials: {
      getBySerial: async (serial) => revoked.find((r) => r.certSerial === serial),
      isKeyRevoked: async (key) => revoked.some((r) => r.keyFingerprint === key),
    },
    slaveServers: {
      getByCertSerial: async (serial) =>
        slaves.find((r) => r.certSerial === serial || r.pending?.certSerial === serial),
    },
  };
}

/** A host whose current certificate is `other` and whose renewed, pending one is `cert`. */
function renewing(pending: Partial<NonNullable<SlaveServer['pending']>> = {}): Tables['slaves'] {
  return [
    {
      certSerial: other.serial,
      keyFingerprint: other.key,
      pending: {
        certSerial: cert.serial,
        keyFingerprint: cert.key,
        issuedAt: new Date(NOW.getTime() - 1000),
        expiresAt: new Date(NOW.getTime() + 30 * DAY),
        ...pending,
      },
    },
  ];
}

/** The enrolled row of `cert`, as pairing writes it. */
function enrolled(patch: Partial<SlaveServer> = {}): Tables['slaves'] {
  return [{ certSerial: cert.serial, keyFingerprint: cert.key, ...patch }];
}

interface Case {
  name: string;
  peer: () => PeerCertificate | undefined;
  authorized?: boolean;
  tlsError?: string;
  tables: () => Tables;
  now?: () => Date;
  refusal: Refusal;
  detail?: string;
}

const SELF_SIGNED = 'DEPTH_ZERO_SELF_SIGNED_CERT';
const FOREIGN = 'UNABLE_TO_VERIFY_LEAF_SIGNATURE';
const EXPIRED = 'CERT_HAS_EXPIRED';

const refusals: Case[] = [
  { name: 'no peer at all', peer: () => undefined, tables: enrolledTables, refusal: 'no-certificate' },
  {
    name: 'the empty object getPeerCertificate() returns without a certificate',
    peer: () => ({}) as PeerCertificate,
    tables: enrolledTables,
    refusal: 'no-certificate',
  },
  {
    name: 'a peer object without the certificate bytes',
    peer: () => ({ ...cert.peer, raw: undefined }) as unknown as PeerCertificate,
    tables: enrolledTables,
    refusal: 'no-certificate',
  },
  {
    name: 'a foreign CA, although a row has its serial and key',
    peer: () => cert.peer,
    authorized: false,
    tlsError: FOREIGN,
    tables: enrolledTables,
    refusal: 'unknown-certificate',
    detail: FOREIGN,
  },
  {
    name: 'a self-signed certificate carrying a revoked serial (not 410)',
    peer: () => cert.peer,
    authorized: false,
    tlsError: SELF_SIGNED,
    tables: () => ({ revoked: [{ certSerial: cert.serial, reason: 'admin' }] }),
    refusal: 'unknown-certificate',
    detail: SELF_SIGNED,
  },
  {
    name: 'a self-signed certificate carrying a superseded serial (not 409)',
    peer: () => cert.peer,
    authorized: false,
    tlsError: SELF_SIGNED,
    tables: () => ({ revoked: [{ certSerial: cert.serial, reason: 'superseded' }] }),
    refusal: 'unknown-certificate',
    detail: SELF_SIGNED,
  },
  {
    name: 'a foreign certificate carrying a revoked key',
    peer: () => cert.peer,
    authorized: false,
    tlsError: FOREIGN,
    tables: () => ({ revoked: [{ certSerial: 'aa', reason: 'admin', keyFingerprint: cert.key }] }),
    refusal: 'unknown-certificate',
    detail: FOREIGN,
  },
  {
    name: 'an unauthorized peer with no error text',
    peer: () => cert.peer,
    authorized: false,
    tables: enrolledTables,
    refusal: 'unknown-certificate',
  },
  {
    name: 'a revoked serial',
    peer: () => cert.peer,
    tables: () => ({ slaves: enrolled(), revoked: [{ certSerial: cert.serial, reason: 'admin' }] }),
    refusal: 'revoked',
  },
  {
    name: 'a serial revoked without a reason',
    peer: () => cert.peer,
    tables: () => ({ slaves: enrolled(), revoked: [{ certSerial: cert.serial, reason: null }] }),
    refusal: 'revoked',
  },
  {
    name: 'a serial superseded by a newer pairing',
    peer: () => cert.peer,
    tables: () => ({ slaves: enrolled(), revoked: [{ certSerial: cert.serial, reason: 'superseded' }] }),
    refusal: 'superseded',
  },
  {
    name: 'a serial replaced by a renewal once the renewed one was confirmed',
    peer: () => cert.peer,
    tables: () => ({ slaves: enrolled(), revoked: [{ certSerial: cert.serial, reason: 'renewed' }] }),
    refusal: 'superseded',
  },
  {
    name: 'a pending renewed serial whose row carries another key',
    peer: () => cert.peer,
    tables: () => ({ slaves: renewing({ keyFingerprint: other.key }) }),
    refusal: 'unknown-certificate',
  },
  {
    name: 'a pending renewed serial of a disabled host',
    peer: () => cert.peer,
    tables: () => ({ slaves: [{ ...renewing()![0]!, enabled: false }] }),
    refusal: 'disabled',
  },
  {
    name: 'a pending renewed serial whose recorded expiry has passed',
    peer: () => cert.peer,
    tables: () => ({ slaves: renewing({ expiresAt: NOW }) }),
    refusal: 'expired',
  },
  {
    name: 'the current serial checked against the pending expiry would pass, the current one has passed',
    peer: () => cert.peer,
    tables: () => ({
      slaves: [
        {
          certSerial: cert.serial,
          keyFingerprint: cert.key,
          expiresAt: NOW,
          pending: {
            certSerial: other.serial,
            keyFingerprint: other.key,
            issuedAt: NOW,
            expiresAt: new Date(NOW.getTime() + DAY),
          },
        },
      ],
    }),
    refusal: 'expired',
  },
  {
    name: 'the current key presented under a pending serial',
    peer: () => cert.peer,
    tables: () => ({
      slaves: [
        {
          certSerial: other.serial,
          keyFingerprint: cert.key,
          pending: {
            certSerial: cert.serial,
            keyFingerprint: other.key,
            issuedAt: NOW,
            expiresAt: new Date(NOW.getTime() + DAY),
          },
        },
      ],
    }),
    refusal: 'unknown-certificate',
  },
  {
    name: 'a revoked key under a new, enrolled serial',
    peer: () => cert.peer,
    tables: () => ({
      slaves: enrolled(),
      revoked: [{ certSerial: other.serial, reason: 'admin', keyFingerprint: cert.key }],
    }),
    refusal: 'revoked',
  },
  {
    name: 'an expired certificate of ours that was revoked',
    peer: () => cert.peer,
    authorized: false,
    tlsError: EXPIRED,
    tables: () => ({ slaves: enrolled(), revoked: [{ certSerial: cert.serial, reason: 'admin' }] }),
    refusal: 'revoked',
  },
  {
    name: 'an expired certificate of ours that was superseded',
    peer: () => cert.peer,
    authorized: false,
    tlsError: EXPIRED,
    tables: () => ({ slaves: enrolled(), revoked: [{ certSerial: cert.serial, reason: 'superseded' }] }),
    refusal: 'superseded',
  },
  {
    name: 'an expired certificate of ours, enrolled and enabled (TLS says expired)',
    peer: () => cert.peer,
    authorized: false,
    tlsError: EXPIRED,
    tables: enrolledTables,
    refusal: 'expired',
  },
  {
    name: 'a certificate signed by our CA but never enrolled',
    peer: () => cert.peer,
    tables: () => ({ slaves: [{ certSerial: other.serial, keyFingerprint: other.key }] }),
    refusal: 'unknown-certificate',
  },
  {
    name: "a row for the serial whose key is another certificate's",
    peer: () => cert.peer,
    tables: () => enrolledTables({ keyFingerprint: other.key }),
    refusal: 'unknown-certificate',
  },
  {
    name: 'a row for the serial with no key recorded',
    peer: () => cert.peer,
    tables: () => enrolledTables({ keyFingerprint: null }),
    refusal: 'unknown-certificate',
  },
  {
    name: 'a host disabled by the admin',
    peer: () => cert.peer,
    tables: () => enrolledTables({ enabled: false }),
    refusal: 'disabled',
  },
  {
    name: 'a disabled host whose row has also expired (disabled is checked first)',
    peer: () => cert.peer,
    tables: () => enrolledTables({ enabled: false, expiresAt: NOW }),
    refusal: 'disabled',
  },
  {
    name: 'a row that expires exactly now',
    peer: () => cert.peer,
    tables: () => enrolledTables({ expiresAt: NOW }),
    refusal: 'expired',
  },
  {
    name: 'a row that expired, while the certificate is still valid',
    peer: () => cert.peer,
    tables: () => enrolledTables({ expiresAt: new Date(NOW.getTime() - 1) }),
    refusal: 'expired',
  },
  {
    name: "the certificate's own notAfter reached, while the row is still valid",
    peer: () => cert.peer,
    tables: () => enrolledTables({ expiresAt: new Date(cert.validTo.getTime() + DAY) }),
    now: () => cert.validTo,
    refusal: 'expired',
  },
];

function enrolledTables(patch: Partial<SlaveServer> = {}): Tables {
  return { slaves: enrolled(patch) };
}

function check(c: Omit<Case, 'refusal' | 'name'>): Promise<CertificateVerdict> {
  return checkSlaveCertificate(
    fakeStore(c.tables()),
    c.peer(),
    c.authorized ?? true,
    c.tlsError,
    c.now?.() ?? NOW,
  );
}

describe('checkSlaveCertificate refuses', () => {
  it.each(refusals)('$name: $refusal', async (c) => {
    const verdict = await check(c);
    expect(verdict).toEqual(
      c.detail === undefined
        ? { ok: false, refusal: c.refusal }
        : { ok: false, refusal: c.refusal, detail: c.detail },
    );
  });
});

describe('checkSlaveCertificate accepts', () => {
  it('an enrolled, enabled, unexpired certificate as the host its row names, not its CN', async () => {
    // The certificate says CN=laptop; the row says ws1. The row wins.
    expect(cert.peer.subject.CN).toBe('laptop');
    const verdict = await check({ peer: () => cert.peer, tables: enrolledTables });
    expect(verdict).toEqual({
      ok: true,
      hostId: 'ws1',
      serial: cert.serial,
      keyFingerprint: cert.key,
      pending: false,
    });
  });

  it("a host's renewed, pending certificate, marked pending (its first link confirms it)", async () => {
    const verdict = await check({ peer: () => cert.peer, tables: () => ({ slaves: renewing() }) });
    expect(verdict).toEqual({
      ok: true,
      hostId: 'ws1',
      serial: cert.serial,
      keyFingerprint: cert.key,
      pending: true,
    });
  });

  it('the current certificate while a renewed one is pending, not marked pending', async () => {
    const verdict = await check({
      peer: () => other.peer,
      tables: () => ({ slaves: renewing() }),
      now: () => new Date(Math.min(NOW.getTime(), other.validTo.getTime() - 1)),
    });
    expect(verdict).toMatchObject({ ok: true, serial: other.serial, pending: false });
  });

  it('by the normalised serial (Node spells it in upper case, without the leading 00)', async () => {
    expect(cert.peer.serialNumber).toBe('A1B2C3D4E5F60718293A4B5C6D7E8F90');
    expect(cert.serial).toBe('00a1b2c3d4e5f60718293a4b5c6d7e8f90');
    const verdict = await check({ peer: () => cert.peer, tables: () => enrolledTables({ hostId: 'ws2' }) });
    expect(verdict).toMatchObject({ ok: true, hostId: 'ws2', serial: cert.serial });
  });

  it('a row that expires one millisecond from now', async () => {
    const verdict = await check({
      peer: () => cert.peer,
      tables: () => enrolledTables({ expiresAt: new Date(NOW.getTime() + 1) }),
    });
    expect(verdict.ok).toBe(true);
  });

  it("one millisecond before the certificate's own notAfter", async () => {
    const verdict = await check({
      peer: () => cert.peer,
      tables: () => enrolledTables({ expiresAt: new Date(cert.validTo.getTime() + DAY) }),
      now: () => new Date(cert.validTo.getTime() - 1),
    });
    expect(verdict.ok).toBe(true);
  });

  it('a host whose other (older) serial is revoked with another key', async () => {
    const verdict = await check({
      peer: () => cert.peer,
      tables: () => ({
        slaves: enrolled(),
        revoked: [{ certSerial: other.serial, reason: 'superseded', keyFingerprint: other.key }],
      }),
    });
    expect(verdict).toMatchObject({ ok: true, hostId: 'ws1' });
  });
});

describe('refusal statuses and texts', () => {
  it('give every refusal its own HTTP status', async () => {
    expect(REFUSAL_STATUS).toEqual({
      'no-certificate': 401,
      'unknown-certificate': 403,
      superseded: 409,
      revoked: 410,
      disabled: 423,
      expired: 495,
    });
  });

  it('explain every refusal in words, sent as the status text and the body', async () => {
    expect(REFUSAL_TEXT).toEqual({
      'no-certificate': 'a client certificate is required',
      'unknown-certificate': 'certificate not issued by this master or not enrolled',
      superseded: 'certificate superseded by a newer one of this host (re-pairing or renewal)',
      revoked: 'credentials revoked',
      disabled: 'host disabled by the admin',
      expired: 'certificate expired',
    });
  });
});
