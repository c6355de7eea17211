import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { hashRequestId, newRequestId, pairingCodesEqual } from '../../src/pairing/codes.js';
import {
  DEFAULT_PAIRING_SETTINGS,
  PairingError,
  type PairingErrorCode,
  type PairingEvent,
  PairingService,
  type PairingSettings,
} from '../../src/pairing/index.js';
import { type CertificateAuthority, loadOrCreateCa, makeCsr, SlaveCas } from '../../src/pki/index.js';
import { openStore, PairingRequestsRepo, type SqliteMasterStore as Store } from '../../src/store/index.js';

/*
 * The rules of the pairing service that test/unit/pairing.test.ts leaves unpinned: what is logged,
 * the guards around the store (request ids, lost races, a failing sweep), exact refusal texts,
 * and the choice between requests sharing a code. Codes are random; `drawn` feeds the six-digit
 * draws a test needs to control (the unit edge here is node:crypto's randomInt).
 */
const drawn: number[] = [];
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    randomInt: (min: number, max: number) => drawn.shift() ?? actual.randomInt(min, max),
  };
});

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const TTL = 10 * MINUTE;

let root: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'diane-pairing-rules-'));
  ca = await loadOrCreateCa({
    certPath: join(root, 'ca-cert.pem'),
    keyPath: join(root, 'ca-key.pem'),
    keyBits: 2048,
  });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

let clock: Date;
let store: Store;
let service: PairingService;
let logs: LogLine[];
let events: PairingEvent[];

function makeService(
  deps: { now?: boolean; settings?: Partial<PairingSettings>; joinToken?: string } = {},
): PairingService {
  const logger = pino(
    { level: 'debug', base: undefined, timestamp: false },
    {
      write: (line: string) => logs.push(JSON.parse(line)),
    },
  );
  const made = new PairingService({
    store,
    ca: new SlaveCas({ current: ca }),
    settings: { ...DEFAULT_PAIRING_SETTINGS, ttlMs: TTL, ...deps.settings },
    ...(deps.now === false ? {} : { now: () => clock }),
    ...(deps.joinToken === undefined ? {} : { joinToken: deps.joinToken }),
    logger,
  });
  made.subscribe((event) => events.push(event));
  return made;
}

beforeEach(async () => {
  clock = new Date('2026-06-01T12:00:00.000Z');
  store = openStore(join(mkdtempSync(join(root, 'case-')), 'diane.db'), { now: () => clock });
  logs = [];
  events = [];
  drawn.length = 0;
  service = makeService();
});

afterEach(async () => {
  service.stop();
  await store.close();
  vi.restoreAllMocks();
});

async function submit(hostId: string, sourceAddress = '192.0.2.10') {
  const { csrPem } = await makeCsr(hostId);
  return service.submit({ hostId, csrPem, sourceAddress });
}

function expectError(err: unknown, status: number, code: PairingErrorCode, message: string): void {
  expect(err).toBeInstanceOf(PairingError);
  const e = err as PairingError;
  expect({ status: e.status, code: e.code, message: e.message }).toEqual({ status, code, message });
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
}

async function thrown(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

describe('pairing codes and request ids', () => {
  it.each([
    ['123-456', '123-456', true],
    ['123-456', '123-457', false],
    ['123-456', '123-4567', false],
    ['', '123-456', false],
    ['', '', true],
  ])('pairingCodesEqual(%j, %j) is %s, without throwing on unequal lengths', (a, b, equal) => {
    expect(pairingCodesEqual(a, b)).toBe(equal);
  });

  it('hashes a request id as SHA-256 hex of its UTF-8 bytes', async () => {
    expect(hashRequestId('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashRequestId('é')).toBe(
      createHash('sha256')
        .update(Buffer.from([0xc3, 0xa9]))
        .digest('hex'),
    );
  });

  it('makes request ids of 128 random bits, base64url', async () => {
    const ids = new Set(Array.from({ length: 50 }, () => newRequestId()));
    expect(ids.size).toBe(50);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe('PairingService: what it logs', () => {
  it('logs submit, approve, deny and expiry with the host, code, source and key', async () => {
    const sub = await submit('ws1');
    const approved = await service.approve('ws1', sub.pairingCode);
    const other = await submit('ws2');
    await service.deny('ws2', other.pairingCode);
    const late = await submit('ws3');
    clock = new Date(clock.getTime() + TTL);
    await service.sweep();
    expect(logs.map(({ level, msg, ...fields }) => ({ level, msg, ...fields }))).toEqual([
      {
        level: 30,
        msg: 'pairing request pending',
        host: 'ws1',
        code: sub.pairingCode,
        source: '192.0.2.10',
        key: sub.keyFingerprint,
      },
      {
        level: 30,
        msg: 'pairing request approved',
        host: 'ws1',
        serial: approved.certSerial,
        rePair: false,
        key: sub.keyFingerprint,
      },
      expect.objectContaining({ msg: 'pairing request pending', host: 'ws2' }),
      { level: 30, msg: 'pairing request denied', host: 'ws2', code: other.pairingCode },
      expect.objectContaining({ msg: 'pairing request pending', host: 'ws3' }),
      { level: 30, msg: 'pairing request expired', host: 'ws3', code: late.pairingCode },
    ]);
  });

  it('keeps sweeping after a failed sweep, and says so', async () => {
    // The service writes through the transaction's repositories: the prototype is where to fail.
    vi.spyOn(PairingRequestsRepo.prototype, 'markExpired').mockRejectedValueOnce(
      new Error('SQLITE_BUSY: database is locked'),
    );
    service.start();
    await vi.waitFor(() =>
      expect(logs).toMatchObject([
        { level: 40, msg: 'pairing sweep failed', err: { message: 'SQLITE_BUSY: database is locked' } },
      ]),
    );
    await expect(service.sweep()).resolves.not.toThrow();
  });
});

describe('PairingService: submit', () => {
  it('cuts the source address to 200 characters', async () => {
    await submit('ws1', `2001:db8::${'a'.repeat(300)}`);
    expect((await service.listPending())[0]!.sourceAddress).toBe(`2001:db8::${'a'.repeat(190)}`);
  });

  it('draws another code when the first one is pending for another request', async () => {
    drawn.push(111_111, 111_111, 222_222);
    expect((await submit('ws1')).pairingCode).toBe('111-111');
    expect((await submit('ws2')).pairingCode).toBe('222-222');
  });

  it('records whether the host was enrolled when it asked', async () => {
    const first = await submit('ws1');
    await service.approve('ws1', first.pairingCode);
    await submit('ws1');
    await submit('ws2');
    const rePair = async (hostId: string) =>
      (await store.pairingRequests.listForHost(hostId)).map((r) => [r.status, r.rePair]).sort();
    expect(await rePair('ws1')).toEqual([
      ['approved', false],
      ['pending', true],
    ]);
    expect(await rePair('ws2')).toEqual([['pending', false]]);
  });

  it('uses the real clock when none is given', async () => {
    service = makeService({ now: false });
    const before = Date.now();
    const sub = await submit('ws1');
    expect(sub.expiresAt.getTime()).toBeGreaterThanOrEqual(before + TTL);
    expect(sub.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + TTL);
  });

  it('refuses a key that is pending or enrolled, in these words', async () => {
    const { csrPem } = await makeCsr('ws1');
    await service.submit({ hostId: 'ws1', csrPem, sourceAddress: 'a' });
    expectError(
      await failure(service.submit({ hostId: 'ws1', csrPem, sourceAddress: 'a' })),
      409,
      'PAIRING_KEY_PENDING',
      'A pairing request with this public key is already pending; wait for it to be decided',
    );
    await service.approve('ws1', (await service.listPending())[0]!.pairingCode);
    expectError(
      await failure(service.submit({ hostId: 'ws1', csrPem, sourceAddress: 'a' })),
      409,
      'PAIRING_KEY_ENROLLED',
      'This public key is already enrolled; the slave must make a new key to pair again',
    );
  });
});

describe('PairingService: status', () => {
  it('looks up only ids of 1 to 64 characters, and answers 404 for the rest', async () => {
    const lookup = vi.spyOn(store.pairingRequests, 'getByRequestIdHash');
    for (const id of ['', 'x'.repeat(65)]) {
      expectError(
        await thrown(() => service.status(id)),
        404,
        'PAIRING_UNKNOWN_REQUEST',
        'Unknown pairing request',
      );
    }
    expect(lookup).not.toHaveBeenCalled();
    for (const id of ['x', 'x'.repeat(64)]) {
      expectError(
        await thrown(() => service.status(id)),
        404,
        'PAIRING_UNKNOWN_REQUEST',
        'Unknown pairing request',
      );
    }
    expect(lookup.mock.calls).toEqual([[hashRequestId('x')], [hashRequestId('x'.repeat(64))]]);
  });

  it.each([
    ['client_cert', 'no certificate'],
    ['cert_expires_at', 'no expiry'],
  ])('refuses to show an approved request whose %s is missing (%s)', async (column) => {
    const sub = await submit('ws1');
    await service.approve('ws1', sub.pairingCode);
    store.db.prepare(`UPDATE pairing_requests SET ${column} = NULL`).run();
    const id = (await store.pairingRequests.listForHost('ws1'))[0]!.id;
    await expect(service.status(sub.requestId)).rejects.toThrow(
      new Error(`Pairing request ${id} is approved but holds no certificate`),
    );
  });
});

describe('PairingService: listPending', () => {
  it("shows 'unknown' for a request stored without source or key", async () => {
    await store.pairingRequests.create({
      hostId: 'ws1',
      pairingCode: '123-456',
      csr: 'x',
      expiresAt: new Date(clock.getTime() + TTL),
    });
    expect(await service.listPending()).toMatchObject([
      { hostId: 'ws1', sourceAddress: 'unknown', keyFingerprint: 'unknown', rePair: false },
    ]);
  });

  it('asks the store once per host, however many requests it has', async () => {
    await submit('ws1', 'a');
    await submit('ws1', 'b');
    await submit('ws2', 'c');
    const enrolled = vi.spyOn(store.slaveServers, 'getByHostId');
    expect(await service.listPending()).toHaveLength(3);
    expect(enrolled.mock.calls.map(([host]) => host).sort()).toEqual(['ws1', 'ws2']);
  });

  it("reports 'unknown' as the key of an expiring request stored without one", async () => {
    await store.pairingRequests.create({ hostId: 'ws1', pairingCode: '123-456', csr: 'x', expiresAt: clock });
    await service.sweep();
    expect(events).toMatchObject([{ type: 'expired', hostId: 'ws1', keyFingerprint: 'unknown' }]);
  });
});

describe('PairingService: approve and deny, around the store', () => {
  it('signs for the configured validity, from the approval time', async () => {
    service = makeService({ settings: { certValidityMs: 2 * DAY } });
    const sub = await submit('ws1');
    const approved = await service.approve('ws1', sub.pairingCode);
    // Certificate times have whole seconds.
    expect(Math.abs(approved.certExpiresAt.getTime() - (clock.getTime() + 2 * DAY))).toBeLessThan(1000);
  });

  it('says what a malformed code was, cut to 32 characters', async () => {
    expectError(
      await thrown(() => service.deny('ws1', `${'9'.repeat(40)}`)),
      400,
      'PAIRING_INVALID_CODE',
      `"${'9'.repeat(32)}" is not a pairing code: expected six digits, as 123-456`,
    );
  });

  it('approves the pending request when a decided one of the host had the same code', async () => {
    drawn.push(111_111, 111_111);
    const first = await submit('ws1', 'a');
    await service.deny('ws1', first.pairingCode);
    // The clock went back (NTP), so the decided request sorts first in the host's list.
    clock = new Date(clock.getTime() - MINUTE);
    const second = await submit('ws1', 'b');
    expect((await store.pairingRequests.listForHost('ws1')).map((r) => r.status)).toEqual([
      'denied',
      'pending',
    ]);
    expect(second.pairingCode).toBe(first.pairingCode);
    await service.approve('ws1', '111-111');
    expect((await service.status(second.requestId)).status).toBe('approved');
    expect((await service.status(first.requestId)).status).toBe('denied');
  });

  it('refuses a request marked expired even if the clock went back before its end', async () => {
    const sub = await submit('ws1');
    const later = clock;
    clock = new Date(later.getTime() + TTL);
    await service.sweep();
    clock = later;
    expectError(
      await failure(service.approve('ws1', sub.pairingCode)),
      410,
      'PAIRING_EXPIRED',
      'Pairing request expired',
    );
    expect(await store.slaveServers.list()).toEqual([]);
  });

  it('refuses a request that was deleted while its certificate was being signed', async () => {
    const sub = await submit('ws1');
    const approving = service.approve('ws1', sub.pairingCode);
    store.db.prepare('DELETE FROM pairing_requests').run();
    expectError(
      await failure(approving),
      404,
      'PAIRING_NO_PENDING_REQUEST',
      `No pending pairing request for ws1 with code ${sub.pairingCode}`,
    );
    expect(await store.slaveServers.list()).toEqual([]);
  });

  it('refuses a key that was revoked while its certificate was being signed', async () => {
    const sub = await submit('ws1');
    const approving = service.approve('ws1', sub.pairingCode);
    await store.revokedCredentials.revoke({
      hostId: 'ws9',
      certSerial: '01',
      keyFingerprint: sub.keyFingerprint,
    });
    expectError(
      await failure(approving),
      409,
      'PAIRING_KEY_REVOKED',
      'This public key was revoked; the slave must make a new key to pair again',
    );
    expect(await store.slaveServers.list()).toEqual([]);
    expect((await service.status(sub.requestId)).status).toBe('pending');
  });

  it('refuses an approval whose request went away while its certificate was made, and records nothing', async () => {
    const request = await submit('ws1');
    const issuing = SlaveCas.prototype.issuing;
    // Between the lookup and the decision's transaction: the request is forgotten (another
    // master's sweep, say), so the transaction finds nothing to decide.
    vi.spyOn(SlaveCas.prototype, 'issuing').mockImplementationOnce(function (this: SlaveCas) {
      void store.pairingRequests.deleteExpired(new Date('2100-01-01T00:00:00Z'));
      return issuing.call(this);
    });
    expectError(
      await failure(service.approve('ws1', request.pairingCode)),
      404,
      'PAIRING_NO_PENDING_REQUEST',
      `No pending pairing request for ws1 with code ${request.pairingCode}`,
    );
    expect(await store.slaveServers.list()).toEqual([]);
    expect(events.filter((e) => e.type === 'approved')).toEqual([]);
  });

  it('records nothing if the approval cannot be written', async () => {
    const first = await submit('ws1');
    await service.approve('ws1', first.pairingCode);
    const before = await store.slaveServers.list();
    const again = await submit('ws1');
    vi.spyOn(PairingRequestsRepo.prototype, 'recordApproval').mockResolvedValueOnce(false);
    expectError(
      await failure(service.approve('ws1', again.pairingCode)),
      404,
      'PAIRING_NO_PENDING_REQUEST',
      `No pending pairing request for ws1 with code ${again.pairingCode}`,
    );
    expect(await store.slaveServers.list()).toEqual(before);
    expect(await store.revokedCredentials.list()).toEqual([]);
    expect(events.filter((e) => e.type === 'approved')).toHaveLength(1);
  });

  it('reports nothing if the denial cannot be written', async () => {
    const sub = await submit('ws1');
    vi.spyOn(PairingRequestsRepo.prototype, 'recordDenial').mockResolvedValueOnce(false);
    expectError(
      await thrown(() => service.deny('ws1', sub.pairingCode)),
      404,
      'PAIRING_NO_PENDING_REQUEST',
      `No pending pairing request for ws1 with code ${sub.pairingCode}`,
    );
    expect(events.map((e) => e.type)).toEqual(['new']);
  });

  it('refuses a request past its time that another process expired first, without reporting it', async () => {
    const sub = await submit('ws1');
    clock = new Date(clock.getTime() + TTL);
    vi.spyOn(PairingRequestsRepo.prototype, 'expireOne').mockResolvedValueOnce(undefined);
    expectError(
      await thrown(() => service.deny('ws1', sub.pairingCode)),
      410,
      'PAIRING_EXPIRED',
      'Pairing request expired',
    );
    expect(events.map((e) => e.type)).toEqual(['new']);
  });
});

describe('PairingService caps: the rules a flood meets', () => {
  it.each(['maxPendingPerHostFromPrefix', 'maxPendingPerPrefix', 'maxPendingTotal'] as const)(
    'refuses a %s of 0 when it is built',
    (cap) => {
      expect(() => makeService({ settings: { [cap]: 0 } })).toThrow(
        `PairingService: ${cap} must be a whole number of at least 1`,
      );
      expect(() => makeService({ settings: { [cap]: 1.5 } })).toThrow(RangeError);
    },
  );

  it('says what to do when a network holds too many pending requests', async () => {
    service.stop();
    service = makeService({ settings: { maxPendingPerPrefix: 1 } });
    await submit('a', '198.51.100.1');
    const err = await submit('b', '198.51.100.2').then(
      () => undefined,
      (e: unknown) => e,
    );
    expectError(
      err,
      429,
      'PAIRING_TOO_MANY_FROM_SOURCE',
      'Too many pending pairing requests from 198.51.100.0/24 (at most 1); approve or deny them, or wait for them to expire',
    );
  });

  it('logs who displaced whom, and tells the displaced one it expired', async () => {
    service.stop();
    service = makeService({ settings: { maxPendingTotal: 1 } });
    const first = await submit('first', '10.0.0.1');
    await submit('second', '10.9.0.1');
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: 'pairing request displaced by a newer one (pending caps)',
        host: 'first',
        code: first.pairingCode,
        source: '10.0.0.1',
        byHost: 'second',
        bySource: '10.9.0.1',
      }),
    );
    expect(events.filter((e) => e.type === 'expired').map((e) => e.hostId)).toEqual(['first']);
  });

  it('a sweep while another process holds the lock skips, and the next one expires', async () => {
    const pending = await submit('ws1');
    clock = new Date(clock.getTime() + TTL + 1);
    const { default: Database } = await import('better-sqlite3');
    const other = new Database(store.db.name);
    other.exec('BEGIN IMMEDIATE');
    await expect(service.sweep()).resolves.not.toThrow();
    expect(events.filter((e) => e.type === 'expired')).toEqual([]);
    other.exec('ROLLBACK');
    other.close();
    await service.sweep();
    expect(events.filter((e) => e.type === 'expired').map((e) => e.pairingCode)).toEqual([
      pending.pairingCode,
    ]);
  });
});

describe('join token rotation', () => {
  const OLD = 'o'.repeat(43);
  const NEW = 'n'.repeat(43);

  const requiringToken = () => makeService({ settings: { requireJoinToken: true }, joinToken: OLD });

  async function submitWith(s: PairingService, hostId: string, joinToken: string) {
    const { csrPem } = await makeCsr(hostId);
    return s.submit({ hostId, csrPem, sourceAddress: '192.0.2.1', joinToken });
  }

  it('accepts only the new token afterwards, keeps pending requests, and says so in the log', async () => {
    const rotating = requiringToken();
    expect(rotating.currentJoinToken()).toBe(OLD);
    await submitWith(rotating, 'ws1', OLD);
    expect(rotating.rotateJoinToken(() => NEW)).toBe(NEW);
    expect(rotating.currentJoinToken()).toBe(NEW);
    await expect(submitWith(rotating, 'ws2', OLD)).rejects.toMatchObject({
      status: 401,
      code: 'PAIRING_JOIN_TOKEN_INVALID',
    });
    await submitWith(rotating, 'ws2', NEW);
    expect((await rotating.listPending()).map((r) => r.hostId).sort()).toEqual(['ws1', 'ws2']);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'pairing join token rotated: pair commands printed before no longer work',
      }),
    );
    rotating.stop();
  });

  it('refuses to rotate a token this master does not require, and writes none', () => {
    let written = false;
    let refusal: unknown;
    try {
      service.rotateJoinToken(() => {
        written = true;
        return NEW;
      });
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(PairingError);
    expect(refusal).toMatchObject({
      status: 409,
      code: 'PAIRING_JOIN_TOKEN_OFF',
      message: expect.stringMatching(/there is none to rotate \(start it with --pairing-token required\)/),
    });
    expect(written).toBe(false);
    expect(service.currentJoinToken()).toBeUndefined();
  });
});
