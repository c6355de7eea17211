import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RenewalRefusedError, RenewalService } from '../../src/cluster/renewal.js';
import type { RenewalRefusal } from '../../src/cluster/renewalWire.js';
import {
  type CertificateAuthority,
  loadOrCreateCa,
  makeCsr,
  SlaveCas,
  serialOf,
  validateCsr,
  x509,
} from '../../src/pki/index.js';
import { openStore, type SqliteMasterStore as Store } from '../../src/store/index.js';

const DAY = 24 * 60 * 60 * 1000;
const VALIDITY = 30 * DAY;
const LINK_SERIAL = '00aa01';
const OLD_KEY = 'sha256:old-key';

let root: string;
let ca: CertificateAuthority;
/** Made once: key generation is the slow part, and each case only needs a fresh key. */
let csrWs1: { csrPem: string; key: string };
let csrWs1b: { csrPem: string; key: string };
let csrOther: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'diane-renewal-'));
  ca = await loadOrCreateCa({
    certPath: join(root, 'ca-cert.pem'),
    keyPath: join(root, 'ca-key.pem'),
    keyBits: 2048,
  });
  const a = await makeCsr('ws1');
  const b = await makeCsr('ws1');
  csrWs1 = { csrPem: a.csrPem, key: (await validateCsr(a.csrPem, 'ws1')).keyFingerprint };
  csrWs1b = { csrPem: b.csrPem, key: (await validateCsr(b.csrPem, 'ws1')).keyFingerprint };
  csrOther = (await makeCsr('other')).csrPem;
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

let store: Store;
let clock: Date;
let service: RenewalService;
/** What the service logged: every refusal and renewal is an operator's record. */
let logs: Array<Record<string, unknown>>;

beforeEach(async () => {
  const dir = mkdtempSync(join(root, 'case-'));
  clock = new Date('2026-06-01T12:00:00.000Z');
  store = openStore(join(dir, 'diane.db'), { now: () => clock });
  logs = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  service = new RenewalService({
    store,
    ca: new SlaveCas({ current: ca }),
    settings: { certValidityMs: VALIDITY },
    now: () => clock,
    logger,
  });
});

afterEach(() => store.close());

/** ws1 paired with LINK_SERIAL, expiring in 10 days, unless a case changes it. */
async function enroll(
  patch: { certSerial?: string; expiresAt?: Date; keyFingerprint?: string } = {},
): Promise<void> {
  await store.slaveServers.upsertEnrollment({
    hostId: 'ws1',
    certSerial: patch.certSerial ?? LINK_SERIAL,
    issuedAt: new Date(clock.getTime() - 20 * DAY),
    expiresAt: patch.expiresAt ?? new Date(clock.getTime() + 10 * DAY),
    keyFingerprint: patch.keyFingerprint ?? OLD_KEY,
    caFingerprint: ca.fingerprint,
  });
}

interface RefusalCase {
  name: string;
  setup: () => void | Promise<void>;
  csr?: () => string;
  reason: RenewalRefusal;
}

const refusals: RefusalCase[] = [
  { name: 'a host that is not paired', setup: () => {}, reason: 'unknown-host' },
  {
    name: "a link whose serial is on the revocation list (the host's row still enabled)",
    setup: async () => {
      await enroll();
      await store.revokedCredentials.revoke({ hostId: 'ws1', certSerial: LINK_SERIAL, reason: 'admin' });
    },
    reason: 'revoked',
  },
  {
    name: 'a revoked host (serial revoked and host disabled, as `slave revoke` does)',
    setup: async () => {
      await enroll();
      await store.revokedCredentials.revoke({ hostId: 'ws1', certSerial: LINK_SERIAL, reason: 'admin' });
      await store.slaveServers.setEnabled('ws1', false);
    },
    reason: 'revoked',
  },
  {
    name: 'a disabled host',
    setup: async () => {
      await enroll();
      await store.slaveServers.setEnabled('ws1', false);
    },
    reason: 'disabled',
  },
  {
    name: "a link opened with a serial that is not the host's current one",
    setup: () => enroll({ certSerial: '00bb02' }),
    reason: 'not-current',
  },
  {
    name: 'a certificate whose recorded expiry is now',
    setup: () => enroll({ expiresAt: new Date(clock.getTime()) }),
    reason: 'expired',
  },
  {
    name: 'a certificate that expired a day ago',
    setup: () => enroll({ expiresAt: new Date(clock.getTime() - DAY) }),
    reason: 'expired',
  },
  {
    name: 'a CSR for another host id (never trusted: the link names the host)',
    setup: () => enroll(),
    csr: () => csrOther,
    reason: 'csr-rejected',
  },
  { name: 'a CSR that is not one', setup: () => enroll(), csr: () => 'not a csr', reason: 'csr-rejected' },
  {
    name: "the host's current key again",
    setup: () => enroll({ keyFingerprint: csrWs1.key }),
    reason: 'key-reused',
  },
  {
    name: 'a key that was revoked before',
    setup: async () => {
      await enroll();
      await store.revokedCredentials.revoke({
        hostId: 'ws9',
        certSerial: '00cc03',
        reason: 'admin',
        keyFingerprint: csrWs1.key,
      });
    },
    reason: 'key-reused',
  },
  {
    name: "another host's current key",
    setup: async () => {
      await enroll();
      await store.slaveServers.upsertEnrollment({
        hostId: 'ws2',
        certSerial: '00dd04',
        issuedAt: clock,
        expiresAt: new Date(clock.getTime() + DAY),
        keyFingerprint: csrWs1.key,
      });
    },
    reason: 'key-reused',
  },
  {
    name: 'a key waiting in a pending pairing request',
    setup: async () => {
      await enroll();
      await store.pairingRequests.create({
        hostId: 'ws3',
        pairingCode: '123456',
        csr: csrWs1.csrPem,
        expiresAt: new Date(clock.getTime() + 60_000),
        requestedAt: clock,
        keyFingerprint: csrWs1.key,
      });
    },
    reason: 'key-reused',
  },
];

describe('RenewalService refuses', () => {
  it.each(refusals)('$name: $reason', async (c) => {
    await c.setup();
    const before = await store.slaveServers.getByHostId('ws1');
    const error = await service
      .renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: c.csr?.() ?? csrWs1.csrPem })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(error).toBeInstanceOf(RenewalRefusedError);
    expect((error as Error).name).toBe('RenewalRefusedError');
    expect((error as RenewalRefusedError).reason).toBe(c.reason);
    const after = await store.slaveServers.getByHostId('ws1');
    // Nothing is issued, the row keeps its certificate, and the refusal is on record.
    expect(after?.pending ?? null).toBeNull();
    expect(after?.certSerial).toBe(before?.certSerial);
    expect(logs).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'refused a renewal',
        host: 'ws1',
        reason: c.reason,
        why: (error as Error).message,
      }),
    ]);
    expect((error as Error).message.length).toBeGreaterThan(10);
    if (after) {
      expect(after.renewalError).toMatch(new RegExp(`^${c.reason}: .+`));
      expect(after.renewalErrorAt).toEqual(clock);
    }
  });

  it('when the host is disabled while the certificate is being signed (checked again under the lock)', async () => {
    await enroll();
    const renewing = service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    await store.slaveServers.setEnabled('ws1', false);
    await expect(renewing).rejects.toMatchObject({ reason: 'disabled' });
    expect((await store.slaveServers.getByHostId('ws1'))?.pending).toBeNull();
  });

  it('when the key became known while the certificate was being signed', async () => {
    await enroll();
    const renewing = service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    await store.revokedCredentials.revoke({
      hostId: 'ws9',
      certSerial: '00ee05',
      reason: 'admin',
      keyFingerprint: csrWs1.key,
    });
    await expect(renewing).rejects.toMatchObject({ reason: 'key-reused' });
    expect((await store.slaveServers.getByHostId('ws1'))?.pending).toBeNull();
  });
});

describe('RenewalService bookkeeping', () => {
  it('judges expiry by the real clock when given none', async () => {
    await store.slaveServers.upsertEnrollment({
      hostId: 'ws1',
      certSerial: LINK_SERIAL,
      issuedAt: new Date(Date.now() - 2 * DAY),
      expiresAt: new Date(Date.now() - 1000),
      keyFingerprint: OLD_KEY,
    });
    const realClock = new RenewalService({
      store,
      ca: new SlaveCas({ current: ca }),
      settings: { certValidityMs: VALIDITY },
    });
    await expect(
      realClock.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem }),
    ).rejects.toMatchObject({ reason: 'expired' });
  });

  it('a refusal it cannot record is still a refusal, and says so in the log', async () => {
    const broken = {
      slaveServers: {
        getByHostId: async () => undefined,
        setRenewalError: async () => {
          throw new Error('disk I/O error');
        },
      },
      revokedCredentials: { getBySerial: async () => undefined },
      tryWrite: async (fn: (tx: unknown) => Promise<unknown>) => ({ written: true, value: await fn(broken) }),
    };
    const refusing = new RenewalService({
      store: broken as never,
      ca: new SlaveCas({ current: ca }),
      settings: { certValidityMs: VALIDITY },
      now: () => clock,
      logger: pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) }),
    });
    await expect(
      refusing.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem }),
    ).rejects.toMatchObject({ reason: 'unknown-host', message: 'ws1 is not a paired host' });
    expect(logs.map((l) => l.msg)).toEqual(['refused a renewal', 'could not record the renewal refusal']);
    expect(logs[1]).toMatchObject({ level: 40, host: 'ws1', err: 'disk I/O error' });
  });
});

describe('RenewalService renews', () => {
  it("from the fixed template for the link's host, recorded as pending next to the current one", async () => {
    await enroll({ expiresAt: new Date(clock.getTime() + 1) });
    await store.slaveServers.setRenewalError('ws1', 'expired: earlier', clock);
    const result = await service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    const cert = new x509.X509Certificate(result.client_cert);
    expect(cert.subject).toBe('CN=ws1');
    expect(cert.issuer).toBe(ca.cert.subject);
    expect(result.issued_at).toBe(clock.toISOString());
    expect(Date.parse(result.expires_at)).toBe(cert.notAfter.getTime());
    expect(cert.notAfter.getTime() - clock.getTime()).toBeLessThanOrEqual(VALIDITY);
    expect(cert.notAfter.getTime() - clock.getTime()).toBeGreaterThan(VALIDITY - 1000);
    const row = (await store.slaveServers.getByHostId('ws1'))!;
    expect(row.certSerial).toBe(LINK_SERIAL);
    expect(row.keyFingerprint).toBe(OLD_KEY);
    expect(row.pending).toEqual({
      certSerial: serialOf(cert),
      keyFingerprint: csrWs1.key,
      caFingerprint: ca.fingerprint,
      issuedAt: clock,
      expiresAt: cert.notAfter,
    });
    expect(row.renewalError).toBeNull();
    expect(row.lastRenewedAt).toBeNull();
    expect(logs).toEqual([
      expect.objectContaining({
        level: 30,
        msg: 'renewed the certificate of a slave; pending until its first link with it',
        host: 'ws1',
        serial: serialOf(cert),
        expiresAt: cert.notAfter.toISOString(),
      }),
    ]);
    // Both are found by serial until the pending one is confirmed.
    expect((await store.slaveServers.getByCertSerial(serialOf(cert)))?.hostId).toBe('ws1');
    expect((await store.slaveServers.getByCertSerial(LINK_SERIAL))?.hostId).toBe('ws1');
  });

  it('again when an earlier answer was lost: the earlier pending certificate is revoked', async () => {
    await enroll();
    const first = await service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    const firstSerial = serialOf(new x509.X509Certificate(first.client_cert));
    const second = await service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1b.csrPem });
    const secondSerial = serialOf(new x509.X509Certificate(second.client_cert));
    expect((await store.slaveServers.getByHostId('ws1'))?.pending?.certSerial).toBe(secondSerial);
    expect(await store.revokedCredentials.getBySerial(firstSerial)).toMatchObject({
      hostId: 'ws1',
      reason: 'renewal-abandoned',
      keyFingerprint: csrWs1.key,
    });
    expect(await store.revokedCredentials.getBySerial(LINK_SERIAL)).toBeUndefined();
  });
});

describe('RenewalService.confirm', () => {
  async function renewed(): Promise<string> {
    await enroll();
    const result = await service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    return serialOf(new x509.X509Certificate(result.client_cert));
  }

  it('makes the pending certificate current and revokes the previous serial as renewed', async () => {
    const serial = await renewed();
    const pending = (await store.slaveServers.getByHostId('ws1'))!.pending!;
    clock = new Date(clock.getTime() + 5000);
    expect(await service.confirm('ws1', serial)).toBe(true);
    const row = (await store.slaveServers.getByHostId('ws1'))!;
    expect(row).toMatchObject({
      certSerial: serial,
      keyFingerprint: csrWs1.key,
      issuedAt: pending.issuedAt,
      expiresAt: pending.expiresAt,
      pending: null,
      lastRenewedAt: clock,
    });
    expect(await store.revokedCredentials.getBySerial(LINK_SERIAL)).toMatchObject({
      hostId: 'ws1',
      reason: 'renewed',
      keyFingerprint: OLD_KEY,
    });
    expect(await store.slaveServers.getByCertSerial(LINK_SERIAL)).toBeUndefined();
    expect(logs.at(-1)).toEqual(
      expect.objectContaining({
        level: 30,
        msg: 'renewed certificate in use; the previous one is revoked',
        host: 'ws1',
        serial,
      }),
    );
    // A second link with the same certificate has nothing left to confirm.
    expect(await service.confirm('ws1', serial)).toBe(false);
    expect((await store.slaveServers.getByHostId('ws1'))?.certSerial).toBe(serial);
  });

  it('refuses a serial that is not the pending one, changing nothing', async () => {
    await renewed();
    expect(await service.confirm('ws1', LINK_SERIAL)).toBe(false);
    expect(await service.confirm('ws1', '00ffff')).toBe(false);
    expect(await service.confirm('nobody', '00ffff')).toBe(false);
    expect((await store.slaveServers.getByHostId('ws1'))?.certSerial).toBe(LINK_SERIAL);
    expect(await store.revokedCredentials.list()).toEqual([]);
    expect(
      logs.filter(
        (l) => l.msg !== 'renewed the certificate of a slave; pending until its first link with it',
      ),
    ).toEqual([]);
  });

  it('refuses for a host disabled after the renewal', async () => {
    const serial = await renewed();
    await store.slaveServers.setEnabled('ws1', false);
    expect(await service.confirm('ws1', serial)).toBe(false);
    expect((await store.slaveServers.getByHostId('ws1'))?.certSerial).toBe(LINK_SERIAL);
    expect(await store.revokedCredentials.list()).toEqual([]);
  });

  it('is undone by a re-pair: the pending certificate is dropped with the old one', async () => {
    const serial = await renewed();
    await enroll({ certSerial: '00abcd', keyFingerprint: 'sha256:repaired' });
    expect((await store.slaveServers.getByHostId('ws1'))?.pending).toBeNull();
    expect(await store.slaveServers.getByCertSerial(serial)).toBeUndefined();
    expect(await service.confirm('ws1', serial)).toBe(false);
  });
});

describe('RenewalService.abandonPending', () => {
  it('a link with the previous certificate revokes the unused pending one: never two ways in', async () => {
    await enroll();
    const result = await service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    const serial = serialOf(new x509.X509Certificate(result.client_cert));
    expect(await service.abandonPending('ws1', LINK_SERIAL)).toBe(true);
    const row = (await store.slaveServers.getByHostId('ws1'))!;
    expect(row).toMatchObject({ certSerial: LINK_SERIAL, pending: null });
    expect(await store.revokedCredentials.getBySerial(serial)).toMatchObject({ reason: 'renewal-abandoned' });
    expect(await store.revokedCredentials.getBySerial(LINK_SERIAL)).toBeUndefined();
    expect(await service.confirm('ws1', serial)).toBe(false);
    expect(logs.at(-1)).toMatchObject({
      level: 40,
      host: 'ws1',
      serial,
      msg: 'the previous certificate came back before the renewed one was used; the renewed one is revoked',
    });
  });

  it('changes nothing without a pending certificate, or for a serial that is not the current one', async () => {
    await enroll();
    expect(await service.abandonPending('ws1', LINK_SERIAL)).toBe(false);
    await service.renew({ hostId: 'ws1', linkSerial: LINK_SERIAL, csrPem: csrWs1.csrPem });
    const logged = logs.length;
    expect(await service.abandonPending('ws1', '00ffff')).toBe(false);
    expect(await service.abandonPending('nobody', LINK_SERIAL)).toBe(false);
    // Nothing was abandoned, so nothing is said.
    expect(logs).toHaveLength(logged);
    expect((await store.slaveServers.getByHostId('ws1'))?.pending).not.toBeNull();
    expect(await store.revokedCredentials.list()).toEqual([]);
  });
});
