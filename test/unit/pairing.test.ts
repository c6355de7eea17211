import {
  createHash,
  createPrivateKey,
  createPublicKey,
  X509Certificate as NodeX509Certificate,
  webcrypto,
} from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newPairingCode } from '../../src/pairing/codes.js';
import {
  DEFAULT_PAIRING_SETTINGS,
  isJoinTokenShaped,
  joinTokensEqual,
  loadOrCreateJoinToken,
  normalizePairingCode,
  PairingError,
  type PairingErrorCode,
  type PairingEvent,
  PairingService,
  type PairingSettings,
  redactJoinToken,
  sourcePrefix,
} from '../../src/pairing/index.js';
import {
  type CertificateAuthority,
  loadOrCreateCa,
  makeCsr,
  SlaveCas,
  serialOf,
  x509,
} from '../../src/pki/index.js';
import { openStore, type SqliteMasterStore as Store } from '../../src/store/index.js';

const MINUTE = 60_000;
const TTL = 10 * MINUTE;

let root: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'diane-pairing-'));
  ca = await loadOrCreateCa({
    certPath: join(root, 'slave-ca-cert.pem'),
    keyPath: join(root, 'slave-ca-key.pem'),
    keyBits: 2048,
  });
});

afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
});

let dir: string;
let dbPath: string;
let clock: Date;
const opened: Store[] = [];
const services: PairingService[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(root, 'case-'));
  dbPath = join(dir, 'diane.db');
  clock = new Date();
});

afterEach(async () => {
  for (const service of services.splice(0)) service.stop();
  for (const store of opened.splice(0)) await store.close();
});

function advance(ms: number): void {
  clock = new Date(clock.getTime() + ms);
}

interface Setup {
  store: Store;
  service: PairingService;
  events: PairingEvent[];
}

function setup(
  options: {
    settings?: Partial<PairingSettings>;
    isNameTaken?: (hostId: string) => string | undefined;
    sweepIntervalMs?: number;
    joinToken?: string;
  } = {},
): Setup {
  const store = openStore(dbPath, { now: () => clock });
  opened.push(store);
  const service = new PairingService({
    store,
    ca: new SlaveCas({ current: ca }),
    settings: { ...DEFAULT_PAIRING_SETTINGS, ttlMs: TTL, ...options.settings },
    now: () => clock,
    ...(options.isNameTaken ? { isNameTaken: options.isNameTaken } : {}),
    ...(options.sweepIntervalMs ? { sweepIntervalMs: options.sweepIntervalMs } : {}),
    ...(options.joinToken ? { joinToken: options.joinToken } : {}),
  });
  services.push(service);
  const events: PairingEvent[] = [];
  service.subscribe((event) => events.push(event));
  return { store, service, events };
}

async function submit(service: PairingService, hostId: string, sourceAddress = '192.0.2.10') {
  const { csrPem, keyPem } = await makeCsr(hostId);
  const result = await service.submit({ hostId, csrPem, sourceAddress });
  return { ...result, csrPem, keyPem };
}

async function rejection(promise: Promise<unknown>): Promise<PairingError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PairingError);
  return err as PairingError;
}

async function thrown(fn: () => unknown): Promise<PairingError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PairingError);
    return err as PairingError;
  }
  throw new Error('expected a PairingError, nothing was thrown');
}

function expectError(
  err: PairingError,
  status: number,
  code: PairingErrorCode,
  message?: string | RegExp,
): void {
  expect({ status: err.status, code: err.code }).toEqual({ status, code });
  if (typeof message === 'string') expect(err.message).toBe(message);
  else if (message) expect(err.message).toMatch(message);
}

/** A code of the right shape that is not `code`. */
function otherCode(code: string): string {
  return code === '000-000' ? '000-001' : '000-000';
}

function keyOf(keyPem: string) {
  return createPublicKey(createPrivateKey(keyPem));
}

/** A CSR for `hostId` made with an existing P-256 key, as a slave reusing its key would send. */
async function csrWithKey(hostId: string, keyPem: string): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const privateKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' }),
    algorithm,
    false,
    ['sign'],
  );
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    keyOf(keyPem).export({ type: 'spki', format: 'der' }),
    algorithm,
    true,
    ['verify'],
  );
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: new x509.Name([{ CN: [hostId] }]),
    keys: { privateKey, publicKey },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return csr.toString('pem');
}

describe('normalizePairingCode', () => {
  it('accepts six digits with or without the dash', async () => {
    expect(normalizePairingCode('123456')).toBe('123-456');
    expect(normalizePairingCode('123-456')).toBe('123-456');
    expect(normalizePairingCode(' 007-042\n')).toBe('007-042');
  });

  it.each([
    '',
    '12345',
    '1234567',
    '12-3456',
    '123 456',
    '123--456',
    'abc-def',
    '１２３４５６',
    '٣٢١-٤٥٦',
    '+23-456',
  ])('refuses %j', (input) => {
    expect(normalizePairingCode(input)).toBeUndefined();
  });

  it('draws NNN-NNN codes and retries the ones already taken', async () => {
    const offered: string[] = [];
    const code = newPairingCode((candidate) => {
      offered.push(candidate);
      return offered.length <= 5;
    });
    expect(offered).toHaveLength(6);
    expect(code).toBe(offered[5]);
    for (const candidate of offered) expect(candidate).toMatch(/^[0-9]{3}-[0-9]{3}$/);
  });
});

describe('settings', () => {
  it('defaults to 10 minutes, 30 days (slaves renew over the link), caps of 3, 10 and 100, and no join token', async () => {
    expect(DEFAULT_PAIRING_SETTINGS).toEqual({
      ttlMs: 10 * MINUTE,
      certValidityMs: 30 * 24 * 60 * MINUTE,
      maxPendingPerHostFromPrefix: 3,
      maxPendingPerPrefix: 10,
      maxPendingTotal: 100,
      requireJoinToken: false,
    });
  });
});

describe('PairingService: submit and approve', () => {
  it('pairs a host: pending list, approval, certificate for the CSR key, enrollment row', async () => {
    const { store, service } = setup();
    const requestedAt = clock;
    const sub = await submit(service, 'workstation', '198.51.100.7');
    expect(sub.requestId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(sub.requestId, 'base64url')).toHaveLength(16);
    expect(sub.pairingCode).toMatch(/^[0-9]{3}-[0-9]{3}$/);
    expect(sub.expiresAt).toEqual(new Date(requestedAt.getTime() + TTL));
    const fingerprint = `sha256:${createHash('sha256')
      .update(keyOf(sub.keyPem).export({ type: 'spki', format: 'der' }))
      .digest('hex')}`;
    expect(sub.keyFingerprint).toBe(fingerprint);

    expect(await service.listPending()).toEqual([
      {
        hostId: 'workstation',
        pairingCode: sub.pairingCode,
        sourceAddress: '198.51.100.7',
        keyFingerprint: fingerprint,
        requestedAt,
        expiresAt: sub.expiresAt,
        rePair: false,
      },
    ]);
    expect(await service.status(sub.requestId)).toEqual({
      status: 'pending',
      hostId: 'workstation',
      expiresAt: sub.expiresAt,
    });

    advance(MINUTE);
    // The admin may type the code without its dash.
    const approved = await service.approve('workstation', sub.pairingCode.replace('-', ''));
    expect(approved.hostId).toBe('workstation');
    expect(approved.rePair).toBe(false);
    expect(await service.listPending()).toEqual([]);

    const status = await service.status(sub.requestId);
    if (status.status !== 'approved') throw new Error(`expected approved, got ${status.status}`);
    expect(status.caCert).toBe(ca.certPem);
    expect(status.certExpiresAt).toEqual(approved.certExpiresAt);
    const cert = new NodeX509Certificate(status.clientCert);
    expect(cert.subject).toBe('CN=workstation');
    expect(cert.publicKey.equals(keyOf(sub.keyPem))).toBe(true);
    expect(cert.verify(new NodeX509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(serialOf(cert)).toBe(approved.certSerial);
    expect(new Date(cert.validTo).getTime()).toBe(Math.floor(approved.certExpiresAt.getTime() / 1000) * 1000);
    expect(approved.certExpiresAt.getTime() - clock.getTime()).toBeGreaterThan(29 * 24 * 60 * MINUTE);
    expect(approved.certExpiresAt.getTime() - clock.getTime()).toBeLessThanOrEqual(30 * 24 * 60 * MINUTE);

    expect(await store.slaveServers.list()).toEqual([
      expect.objectContaining({
        hostId: 'workstation',
        certSerial: approved.certSerial,
        keyFingerprint: fingerprint,
        issuedAt: clock,
        expiresAt: approved.certExpiresAt,
        enabled: true,
      }),
    ]);
    expect((await store.slaveServers.getByCertSerial(approved.certSerial))?.hostId).toBe('workstation');
    expect(await store.revokedCredentials.list()).toEqual([]);
  });

  it('lets a second approval fail with "already approved" and change nothing', async () => {
    const { store, service } = setup();
    const sub = await submit(service, 'ws1');
    const first = await service.approve('ws1', sub.pairingCode);
    const slaveBefore = await store.slaveServers.getByHostId('ws1');
    const statusBefore = await service.status(sub.requestId);

    advance(MINUTE);
    const err = await rejection(service.approve('ws1', sub.pairingCode));
    expectError(err, 409, 'PAIRING_ALREADY_APPROVED', /already approved/);
    expect(await store.slaveServers.getByHostId('ws1')).toEqual(slaveBefore);
    expect((await store.slaveServers.getByHostId('ws1'))?.certSerial).toBe(first.certSerial);
    expect(await service.status(sub.requestId)).toEqual(statusBefore);
    expect(await store.revokedCredentials.list()).toEqual([]);

    expectError(await thrown(() => service.deny('ws1', sub.pairingCode)), 409, 'PAIRING_ALREADY_APPROVED');
  });

  it('records only one of two concurrent approvals: the loser stores nothing', async () => {
    const { store, service, events } = setup();
    const sub = await submit(service, 'ws1');
    // Both pass the first check, then both sign; only one compare-and-set can win.
    const results = await Promise.allSettled([
      service.approve('ws1', sub.pairingCode),
      service.approve('ws1', sub.pairingCode),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(PairingError);
    expect(((lost[0] as PromiseRejectedResult).reason as PairingError).message).toMatch(/already approved/);

    const winner = (won[0] as PromiseFulfilledResult<{ certSerial: string }>).value;
    expect((await store.slaveServers.list()).map((s) => s.certSerial)).toEqual([winner.certSerial]);
    expect(await store.revokedCredentials.list()).toEqual([]);
    const status = await service.status(sub.requestId);
    expect(status.status === 'approved' && serialOf(new NodeX509Certificate(status.clientCert))).toBe(
      winner.certSerial,
    );
    expect(events.filter((e) => e.type === 'approved')).toHaveLength(1);
  });

  it('drops the certificate of an approval that a denial overtook while it was signing', async () => {
    const { store, service } = setup();
    const sub = await submit(service, 'ws1');
    const approving = service.approve('ws1', sub.pairingCode);
    expect(await service.deny('ws1', sub.pairingCode)).toEqual({ hostId: 'ws1' });
    expectError(await rejection(approving), 409, 'PAIRING_ALREADY_DENIED', /already denied/);
    expect(await service.status(sub.requestId)).toEqual({ status: 'denied', hostId: 'ws1' });
    expect(await store.slaveServers.list()).toEqual([]);
    const row = (await store.pairingRequests.listForHost('ws1'))[0];
    expect(row).toMatchObject({ status: 'denied', clientCert: null, certSerial: null });
  });

  it('refuses to approve a denied request', async () => {
    const { store, service } = setup();
    const sub = await submit(service, 'ws1');
    await service.deny('ws1', sub.pairingCode);
    expectError(
      await rejection(service.approve('ws1', sub.pairingCode)),
      409,
      'PAIRING_ALREADY_DENIED',
      `The pairing request for ws1 with code ${sub.pairingCode} was already denied`,
    );
    expectError(await thrown(() => service.deny('ws1', sub.pairingCode)), 409, 'PAIRING_ALREADY_DENIED');
    expect(await service.status(sub.requestId)).toEqual({ status: 'denied', hostId: 'ws1' });
    expect(await store.slaveServers.list()).toEqual([]);
    expect(await service.listPending()).toEqual([]);
  });

  it('refuses an expired request with "Pairing request expired" (scenario 5)', async () => {
    const { store, service, events } = setup();
    const sub = await submit(service, 'ws1');
    advance(TTL - 1);
    expect((await service.status(sub.requestId)).status).toBe('pending');
    advance(1);
    // Before any sweep: the status already says expired, and approving expires it for good.
    expect(await service.status(sub.requestId)).toEqual({ status: 'expired', hostId: 'ws1' });
    expect(await service.listPending()).toEqual([]);
    const err = await rejection(service.approve('ws1', sub.pairingCode));
    expectError(err, 410, 'PAIRING_EXPIRED', 'Pairing request expired');
    expect((await store.pairingRequests.listForHost('ws1'))[0]?.status).toBe('expired');
    expect(events.map((e) => e.type)).toEqual(['new', 'expired']);

    expectError(await rejection(service.approve('ws1', sub.pairingCode)), 410, 'PAIRING_EXPIRED');
    expectError(await thrown(() => service.deny('ws1', sub.pairingCode)), 410, 'PAIRING_EXPIRED');
    expect(events.map((e) => e.type)).toEqual(['new', 'expired']);
    expect(await store.slaveServers.list()).toEqual([]);
  });

  it('refuses a wrong code and changes nothing', async () => {
    const { store, service } = setup();
    const sub = await submit(service, 'ws1');
    const before = await service.listPending();
    const wrong = otherCode(sub.pairingCode);
    expectError(
      await rejection(service.approve('ws1', wrong)),
      404,
      'PAIRING_NO_PENDING_REQUEST',
      `No pending pairing request for ws1 with code ${wrong}`,
    );
    expectError(await thrown(() => service.deny('ws1', wrong)), 404, 'PAIRING_NO_PENDING_REQUEST');
    expectError(await rejection(service.approve('ws1', '12-34')), 400, 'PAIRING_INVALID_CODE');
    expectError(
      await rejection(service.approve('nobody', sub.pairingCode)),
      404,
      'PAIRING_NO_PENDING_REQUEST',
    );
    expect(await service.listPending()).toEqual(before);
    expect((await service.status(sub.requestId)).status).toBe('pending');
    expect(await store.slaveServers.list()).toEqual([]);
  });

  it("treats another host's code as no pending request", async () => {
    const { service } = setup();
    const one = await submit(service, 'ws1');
    const two = await submit(service, 'ws2');
    expect(one.pairingCode).not.toBe(two.pairingCode);
    expectError(
      await rejection(service.approve('ws1', two.pairingCode)),
      404,
      'PAIRING_NO_PENDING_REQUEST',
      `No pending pairing request for ws1 with code ${two.pairingCode}`,
    );
    expectError(await thrown(() => service.deny('ws2', one.pairingCode)), 404, 'PAIRING_NO_PENDING_REQUEST');
    expect((await service.listPending()).map((p) => p.hostId)).toEqual(['ws1', 'ws2']);
  });

  it('refuses a replayed submission of the same CSR (409), before and after approval', async () => {
    const { service } = setup();
    const sub = await submit(service, 'ws1');
    const replay = () => service.submit({ hostId: 'ws1', csrPem: sub.csrPem, sourceAddress: '203.0.113.9' });
    expectError(await rejection(replay()), 409, 'PAIRING_KEY_PENDING');
    expect(await service.listPending()).toHaveLength(1);
    await service.approve('ws1', sub.pairingCode);
    expectError(await rejection(replay()), 409, 'PAIRING_KEY_ENROLLED');
    expect(await service.listPending()).toEqual([]);
  });

  it('keeps two pending requests of one host apart: approval takes the matching one', async () => {
    const { store, service } = setup();
    const first = await submit(service, 'ws1');
    advance(1000);
    const second = await submit(service, 'ws1');
    expect((await service.listPending()).map((p) => [p.hostId, p.pairingCode, p.keyFingerprint])).toEqual([
      ['ws1', first.pairingCode, first.keyFingerprint],
      ['ws1', second.pairingCode, second.keyFingerprint],
    ]);
    await service.approve('ws1', second.pairingCode);
    expect((await service.status(second.requestId)).status).toBe('approved');
    expect((await service.status(first.requestId)).status).toBe('pending');
    expect((await store.slaveServers.getByHostId('ws1'))?.keyFingerprint).toBe(second.keyFingerprint);
    // The host is enrolled now, so the one still waiting would replace its certificate.
    expect(await service.listPending()).toEqual([
      expect.objectContaining({ pairingCode: first.pairingCode, rePair: true }),
    ]);
  });

  it('makes pairing codes unique among pending requests', async () => {
    const { service } = setup();
    const codes = [];
    for (let i = 0; i < 12; i++) codes.push((await submit(service, `h${i}`, `10.0.${i}.1`)).pairingCode);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe('PairingService: re-pairing and revoked keys', () => {
  it('re-pairs an enrolled host: shown as such, and the old serial is revoked as superseded', async () => {
    const { store, service } = setup();
    const old = await submit(service, 'ws1');
    const oldCert = await service.approve('ws1', old.pairingCode);
    const enrolledAt = (await store.slaveServers.getByHostId('ws1'))!;

    advance(MINUTE);
    const fresh = await submit(service, 'ws1');
    expect(await service.listPending()).toEqual([expect.objectContaining({ hostId: 'ws1', rePair: true })]);
    const approved = await service.approve('ws1', fresh.pairingCode);
    expect(approved.rePair).toBe(true);
    expect(approved.certSerial).not.toBe(oldCert.certSerial);

    expect(await store.revokedCredentials.list()).toEqual([
      expect.objectContaining({
        hostId: 'ws1',
        certSerial: oldCert.certSerial,
        reason: 'superseded',
        keyFingerprint: old.keyFingerprint,
      }),
    ]);
    expect(await store.slaveServers.list()).toEqual([
      {
        ...enrolledAt,
        certSerial: approved.certSerial,
        keyFingerprint: fresh.keyFingerprint,
        issuedAt: clock,
        expiresAt: approved.certExpiresAt,
        updatedAt: clock,
      },
    ]);
    expect(await store.slaveServers.getByCertSerial(oldCert.certSerial)).toBeUndefined();
    // The old key cannot come back.
    const reuse = service.submit({ hostId: 'ws1', csrPem: old.csrPem, sourceAddress: 'x' });
    expectError(await rejection(reuse), 409, 'PAIRING_KEY_REVOKED');
  });

  it('pairs a host again with a new key after an admin revoke, and refuses the revoked key', async () => {
    const { store, service } = setup();
    const old = await submit(service, 'ws1');
    const oldCert = await service.approve('ws1', old.pairingCode);
    // What the admin's revoke does (cluster/revocation): revoke the serials, disable the host.
    await store.transaction(async (tx) => {
      await tx.revokedCredentials.revokeHost(
        'ws1',
        [{ certSerial: oldCert.certSerial, keyFingerprint: old.keyFingerprint }],
        'Compromised',
      );
      await tx.slaveServers.setEnabled('ws1', false);
    });

    const again = service.submit({ hostId: 'ws1', csrPem: old.csrPem, sourceAddress: 'x' });
    expectError(await rejection(again), 409, 'PAIRING_KEY_REVOKED', /revoked/);
    // Nor is the same key under another host id a way around it.
    const elsewhere = service.submit({
      hostId: 'ws2',
      csrPem: await csrWithKey('ws2', old.keyPem),
      sourceAddress: 'x',
    });
    expectError(await rejection(elsewhere), 409, 'PAIRING_KEY_REVOKED');

    const fresh = await submit(service, 'ws1');
    expect(await service.listPending()).toEqual([expect.objectContaining({ rePair: true })]);
    const approved = await service.approve('ws1', fresh.pairingCode);
    expect(approved.rePair).toBe(true);
    expect(await store.slaveServers.getByHostId('ws1')).toMatchObject({
      enabled: true,
      certSerial: approved.certSerial,
      keyFingerprint: fresh.keyFingerprint,
    });
    // The admin's record of the old serial stays as it was.
    expect((await store.revokedCredentials.list()).map((r) => [r.certSerial, r.reason])).toEqual([
      [oldCert.certSerial, 'Compromised'],
    ]);
  });
});

describe('PairingService: host ids and CSRs', () => {
  it.each(['master', 'local', 'localhost', 'admin', 'all'])(
    'refuses the reserved host id %s',
    async (hostId) => {
      const { service } = setup();
      expectError(await rejection(submit(service, hostId)), 400, 'PAIRING_RESERVED_HOST_ID');
      expect(await service.listPending()).toEqual([]);
    },
  );

  it.each(['Work', 'a_b', 'a.b', '-ab', 'ab-', 'x'.repeat(33), '', 'ws 1'])(
    'refuses the invalid host id %j',
    async (hostId) => {
      const { service } = setup();
      const { csrPem } = await makeCsr('valid');
      const err = await rejection(service.submit({ hostId, csrPem, sourceAddress: 'x' }));
      expectError(err, 400, 'PAIRING_INVALID_HOST_ID', /is not a valid host id/);
    },
  );

  it('refuses a host id taken by a configured server, at submit and at approval', async () => {
    const taken = new Set(['github']);
    const { service } = setup({
      isNameTaken: (hostId) => (taken.has(hostId) ? 'an MCP server on the master has that name' : undefined),
    });
    expectError(
      await rejection(submit(service, 'github')),
      409,
      'PAIRING_HOST_ID_TAKEN',
      'The host id "github" cannot be used: an MCP server on the master has that name',
    );
    const sub = await submit(service, 'files');
    taken.add('files');
    expectError(await rejection(service.approve('files', sub.pairingCode)), 409, 'PAIRING_HOST_ID_TAKEN');
    expect((await service.status(sub.requestId)).status).toBe('pending');
  });

  it("refuses a CSR made for another host id, with pki's reason", async () => {
    const { service } = setup();
    const { csrPem } = await makeCsr('laptop');
    const err = await rejection(service.submit({ hostId: 'workstation', csrPem, sourceAddress: 'x' }));
    expectError(
      err,
      400,
      'PAIRING_CSR_REJECTED',
      'Certificate signing request rejected: its subject is "CN=laptop" but this host pairs as "workstation"; ' +
        'it must be exactly "CN=workstation"',
    );
    const junk = await rejection(service.submit({ hostId: 'ws1', csrPem: 'hello', sourceAddress: 'x' }));
    expectError(junk, 400, 'PAIRING_CSR_REJECTED', /^Certificate signing request rejected: /);
    expect(await service.listPending()).toEqual([]);
  });
});

describe('sourcePrefix', () => {
  it.each([
    ['192.0.2.77', '192.0.2.0/24'],
    ['::ffff:192.0.2.77', '192.0.2.0/24'],
    ['::FFFF:192.0.2.1', '192.0.2.0/24'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:0:2::9', '2001:db8:0:2::/64'],
    ['2001:0db8:0000:0002:aaaa::1', '2001:db8:0:2::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['unknown', 'unknown'],
  ])('%s is in %s', (address, prefix) => {
    expect(sourcePrefix(address)).toBe(prefix);
  });
});

describe('PairingService: caps', () => {
  it('a host id cannot be blocked from elsewhere: 3 requests from 3 networks leave room for a 4th', async () => {
    const { service } = setup();
    for (let i = 0; i < 3; i++) await submit(service, 'ws1', `203.0.${113 + i}.9`);
    // The attack of the issue: before, the real slave got 429 for the whole TTL.
    const real = await submit(service, 'ws1', '198.51.100.7');
    expect((await service.status(real.requestId)).status).toBe('pending');
    expect((await service.listPending()).filter((p) => p.hostId === 'ws1')).toHaveLength(4);
  });

  it("from one network, a 4th request for the same host displaces that network's oldest one", async () => {
    const { service, events } = setup();
    const subs = [];
    for (let i = 0; i < 3; i++) {
      subs.push(await submit(service, 'ws1', `10.0.0.${i}`));
      advance(1000);
    }
    const other = await submit(service, 'ws1', '10.9.0.1');
    const newest = await submit(service, 'ws1', '10.0.0.200');
    expect((await service.status(subs[0]!.requestId)).status).toBe('expired');
    expect(events.filter((e) => e.type === 'expired').map((e) => e.pairingCode)).toEqual([
      subs[0]!.pairingCode,
    ]);
    for (const sub of [subs[1]!, subs[2]!, other, newest]) {
      expect((await service.status(sub.requestId)).status).toBe('pending');
    }
    expectError(await thrown(() => service.deny('ws1', subs[0]!.pairingCode)), 410, 'PAIRING_EXPIRED');
  });

  it('allows 10 pending requests per /24 (IPv4-mapped included), then 429; other networks are not affected', async () => {
    const { service } = setup();
    for (let i = 0; i < 10; i++) {
      await submit(service, `host-${i}`, i % 2 ? `198.51.100.${i}` : `::ffff:198.51.100.${100 + i}`);
    }
    const err = await rejection(submit(service, 'host-10', '198.51.100.250'));
    expectError(err, 429, 'PAIRING_TOO_MANY_FROM_SOURCE', /from 198\.51\.100\.0\/24 \(at most 10\)/);
    await submit(service, 'host-10', '198.51.101.1');
    // Expired requests no longer count.
    advance(TTL);
    await submit(service, 'host-11', '198.51.100.1');
  });

  it('counts IPv6 sources per /64', async () => {
    const { service } = setup({ settings: { maxPendingPerPrefix: 2 } });
    await submit(service, 'a', '2001:db8:0:1::1');
    await submit(service, 'b', '2001:db8:0:1:ffff::2');
    const err = await rejection(submit(service, 'c', '2001:db8:0:1:1234:5678:9abc:def0'));
    expectError(err, 429, 'PAIRING_TOO_MANY_FROM_SOURCE', /2001:db8:0:1::\/64/);
    await submit(service, 'c', '2001:db8:0:2::1');
  });

  it('a full list takes a newcomer by displacing the oldest request of the busiest network', async () => {
    // 10 networks x 10 requests fill the list of 100; a small cap keeps the test quick.
    const { service, events } = setup({ settings: { maxPendingTotal: 6, maxPendingPerPrefix: 3 } });
    const flood = [];
    for (let i = 0; i < 3; i++) {
      for (const net of [1, 2]) {
        flood.push({ net, sub: await submit(service, `junk-${net}-${i}`, `10.${net}.0.${i}`) });
        advance(1000);
      }
    }
    const real = await submit(service, 'real', '192.0.2.10');
    expect((await service.status(real.requestId)).status).toBe('pending');
    // Both networks hold 3; the one whose oldest request is older gives it up.
    expect((await service.status(flood[0]!.sub.requestId)).status).toBe('expired');
    expect(events.at(-2)).toMatchObject({ type: 'expired', hostId: 'junk-1-0' });
    expect(await service.listPending()).toHaveLength(6);

    // The attacker refills: each refill costs the attacker's own requests, never the real one.
    for (let i = 0; i < 20; i++) {
      await submit(service, `refill-${i}`, `10.${1 + (i % 2)}.0.${100 + i}`);
      advance(1000);
    }
    expect((await service.status(real.requestId)).status).toBe('pending');
    expect(await service.listPending()).toHaveLength(6);
  });

  it('keeps counting by prefix after a master restart', async () => {
    const first = setup({ settings: { maxPendingPerPrefix: 2 } });
    await submit(first.service, 'a', '10.0.0.1');
    await submit(first.service, 'b', '10.0.0.2');
    first.service.stop();
    await first.store.close();
    const second = setup({ settings: { maxPendingPerPrefix: 2 } });
    const err = await rejection(submit(second.service, 'c', '10.0.0.3'));
    expectError(err, 429, 'PAIRING_TOO_MANY_FROM_SOURCE');
  });
});

describe('PairingService: join token', () => {
  const TOKEN = 'k'.repeat(43);

  async function submitWith(service: PairingService, joinToken: string | undefined) {
    const { csrPem } = await makeCsr('ws1');
    return service.submit({
      hostId: 'ws1',
      csrPem,
      sourceAddress: '192.0.2.1',
      ...(joinToken === undefined ? {} : { joinToken }),
    });
  }

  it('when required, refuses a request without the token or with a wrong one, and creates nothing', async () => {
    const { service, events } = setup({ settings: { requireJoinToken: true }, joinToken: TOKEN });
    expectError(
      await rejection(submitWith(service, undefined)),
      401,
      'PAIRING_JOIN_TOKEN_REQUIRED',
      /requires a join token/,
    );
    expectError(await rejection(submitWith(service, '')), 401, 'PAIRING_JOIN_TOKEN_REQUIRED');
    for (const wrong of ['k'.repeat(42), `${'k'.repeat(42)}j`, 'x', 'k'.repeat(1000)]) {
      const err = await rejection(submitWith(service, wrong));
      expectError(err, 401, 'PAIRING_JOIN_TOKEN_INVALID', /join token is wrong/);
      expect(err.message).not.toContain(wrong);
    }
    expect(await service.listPending()).toEqual([]);
    expect(events).toEqual([]);
    await submitWith(service, TOKEN);
    expect(await service.listPending()).toHaveLength(1);
  });

  it('checks the token before the CSR', async () => {
    const { service } = setup({ settings: { requireJoinToken: true }, joinToken: TOKEN });
    const err = await rejection(service.submit({ hostId: 'ws1', csrPem: 'junk', sourceAddress: 'x' }));
    expect(err.code).toBe('PAIRING_JOIN_TOKEN_REQUIRED');
  });

  it('when not required, a token is not needed', async () => {
    const { service } = setup();
    await submitWith(service, undefined);
  });

  it('refuses to start requiring a token it was not given', async () => {
    expect(() => setup({ settings: { requireJoinToken: true } })).toThrow(/no join token/);
  });
});

describe('join token file', () => {
  it('is created once, 0600, and kept', async () => {
    const first = loadOrCreateJoinToken(join(dir, 'join-token'));
    expect(isJoinTokenShaped(first)).toBe(true);
    expect(Buffer.from(first, 'base64url')).toHaveLength(32);
    expect(statSync(join(dir, 'join-token')).mode & 0o777).toBe(0o600);
    expect(loadOrCreateJoinToken(join(dir, 'join-token'))).toBe(first);
  });

  it('refuses a file that does not hold a token', async () => {
    writeFileSync(join(dir, 'join-token'), 'short\n', { mode: 0o600 });
    expect(() => loadOrCreateJoinToken(join(dir, 'join-token'))).toThrow(/does not hold a valid join token/);
  });

  it('compares tokens whatever their lengths, and redacts them from printed commands', async () => {
    expect(joinTokensEqual('a'.repeat(43), 'a'.repeat(43))).toBe(true);
    expect(joinTokensEqual('a', 'a'.repeat(43))).toBe(false);
    expect(redactJoinToken('diane slave pair --master=x --join-token=abc123 --y')).toBe(
      'diane slave pair --master=x --join-token=<see `diane info`> --y',
    );
  });
});

describe('PairingService: persistence, request ids and events', () => {
  it('keeps requests and their status across a master restart', async () => {
    const first = setup();
    const approvedSub = await submit(first.service, 'ws1');
    const pendingSub = await submit(first.service, 'ws2');
    await first.service.approve('ws1', approvedSub.pairingCode);
    const approvedStatus = await first.service.status(approvedSub.requestId);
    const pendingList = await first.service.listPending();
    first.service.stop();
    await first.store.close();

    advance(MINUTE);
    const second = setup();
    expect(await second.service.status(approvedSub.requestId)).toEqual(approvedStatus);
    expect(await second.service.status(pendingSub.requestId)).toMatchObject({
      status: 'pending',
      hostId: 'ws2',
    });
    expect(await second.service.listPending()).toEqual(pendingList);
    await second.service.approve('ws2', pendingSub.pairingCode);
    expect((await second.service.status(pendingSub.requestId)).status).toBe('approved');
    expectError(
      await rejection(second.service.approve('ws1', approvedSub.pairingCode)),
      409,
      'PAIRING_ALREADY_APPROVED',
    );
  });

  it('stores only the hash of the request id, and only the id itself opens the status', async () => {
    const { store, service } = setup();
    const sub = await submit(service, 'ws1');
    const rows = store.db.prepare('SELECT * FROM pairing_requests').all() as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    const hash = createHash('sha256').update(sub.requestId).digest('hex');
    expect(row.request_id_hash).toBe(hash);
    expect(JSON.stringify(row)).not.toContain(sub.requestId);
    expect(row.id).not.toBe(sub.requestId);

    expectError(
      await thrown(() => service.status(hash)),
      404,
      'PAIRING_UNKNOWN_REQUEST',
      'Unknown pairing request',
    );
    expectError(await thrown(() => service.status(String(row.id))), 404, 'PAIRING_UNKNOWN_REQUEST');
    expectError(await thrown(() => service.status('')), 404, 'PAIRING_UNKNOWN_REQUEST');
    expectError(await thrown(() => service.status('A'.repeat(22))), 404, 'PAIRING_UNKNOWN_REQUEST');
    expect((await service.status(sub.requestId)).status).toBe('pending');
  });

  it('emits new, approved, denied and expired, without the request id', async () => {
    const { service, events } = setup();
    service.subscribe(() => {
      throw new Error('a broken subscriber');
    });
    const late: PairingEvent[] = [];
    const unsubscribe = service.subscribe((event) => late.push(event));

    const a = await submit(service, 'ws1');
    const t1 = clock;
    advance(1000);
    const b = await submit(service, 'ws2');
    advance(1000);
    const c = await submit(service, 'ws3');
    advance(1000);
    await service.approve('ws1', a.pairingCode);
    const approvedAt = clock;
    advance(1000);
    unsubscribe();
    await service.deny('ws2', b.pairingCode);
    const deniedAt = clock;
    advance(TTL);
    await service.sweep();

    expect(events).toEqual([
      {
        type: 'new',
        hostId: 'ws1',
        pairingCode: a.pairingCode,
        keyFingerprint: a.keyFingerprint,
        at: t1.toISOString(),
      },
      expect.objectContaining({ type: 'new', hostId: 'ws2', pairingCode: b.pairingCode }),
      expect.objectContaining({ type: 'new', hostId: 'ws3', pairingCode: c.pairingCode }),
      {
        type: 'approved',
        hostId: 'ws1',
        pairingCode: a.pairingCode,
        keyFingerprint: a.keyFingerprint,
        at: approvedAt.toISOString(),
      },
      {
        type: 'denied',
        hostId: 'ws2',
        pairingCode: b.pairingCode,
        keyFingerprint: b.keyFingerprint,
        at: deniedAt.toISOString(),
      },
      {
        type: 'expired',
        hostId: 'ws3',
        pairingCode: c.pairingCode,
        keyFingerprint: c.keyFingerprint,
        at: clock.toISOString(),
      },
    ]);
    expect(late.map((e) => e.type)).toEqual(['new', 'new', 'new', 'approved']);
    const text = JSON.stringify(events);
    for (const sub of [a, b, c]) {
      expect(text).not.toContain(sub.requestId);
      expect(text).not.toContain(createHash('sha256').update(sub.requestId).digest('hex'));
    }
  });
});

describe('PairingService: sweeping', () => {
  it('expires pending requests, then forgets every request one TTL after it expired', async () => {
    const { store, service, events } = setup();
    const pending = await submit(service, 'ws1');
    const approved = await submit(service, 'ws2');
    await service.approve('ws2', approved.pairingCode);

    advance(TTL);
    await service.sweep();
    expect(events.filter((e) => e.type === 'expired').map((e) => e.hostId)).toEqual(['ws1']);
    expect(await service.status(pending.requestId)).toEqual({ status: 'expired', hostId: 'ws1' });
    expect((await service.status(approved.requestId)).status).toBe('approved');
    await service.sweep();
    expect(events.filter((e) => e.type === 'expired')).toHaveLength(1);

    advance(TTL - 1);
    await service.sweep();
    expect(await store.pairingRequests.listForHost('ws1')).toHaveLength(1);
    advance(1);
    await service.sweep();
    expectError(await thrown(() => service.status(pending.requestId)), 404, 'PAIRING_UNKNOWN_REQUEST');
    expectError(await thrown(() => service.status(approved.requestId)), 404, 'PAIRING_UNKNOWN_REQUEST');
    // Forgetting the request leaves the enrollment alone.
    expect((await store.slaveServers.getByHostId('ws2'))?.enabled).toBe(true);
  });

  it('keeps finished requests at least ten minutes however short the TTL is', async () => {
    const { service } = setup({ settings: { ttlMs: MINUTE } });
    const pending = await submit(service, 'ws1');
    advance(MINUTE);
    await service.sweep();
    advance(10 * MINUTE - 1);
    await service.sweep();
    expectError(await thrown(() => service.approve('ws1', pending.pairingCode)), 410, 'PAIRING_EXPIRED');
    advance(1);
    await service.sweep();
    expectError(await thrown(() => service.status(pending.requestId)), 404, 'PAIRING_UNKNOWN_REQUEST');
  });

  it('sweeps on a timer between start() and stop()', async () => {
    const { service, events } = setup({ sweepIntervalMs: 10 });
    await submit(service, 'ws1');
    service.start();
    service.start();
    advance(TTL);
    await waitFor(() => events.some((e) => e.type === 'expired'));
    service.stop();
    await submit(service, 'ws2');
    advance(TTL);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(events.filter((e) => e.type === 'expired').map((e) => e.hostId)).toEqual(['ws1']);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
