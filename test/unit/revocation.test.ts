import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkSlaveCertificate } from '../../src/cluster/certificateCheck.js';
import { RevocationError, RevocationService } from '../../src/cluster/revocation.js';
import { CloseCode } from '../../src/cluster/webSocketTransport.js';
import { openStore, type SqliteMasterStore as Store } from '../../src/store/index.js';
import { type FixtureCert, fixtureCert } from '../helpers/certFixtures.js';

const DAY = 24 * 60 * 60 * 1000;

const root = mkdtempSync(join(tmpdir(), 'diane-revocation-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Host = FixtureCert;

/** Certificates of ws1, ws2 and ws3: each test enrolls the ones it needs in a new store. */
const issued = new Map<string, Host>(['ws1', 'ws2', 'ws3'].map((hostId) => [hostId, fixtureCert(hostId)]));

let store: Store;
let removed: Array<[string, number, string]>;
let logs: Array<{ level: number; msg: string; host?: string; hosts?: string[]; reason?: string }>;
let service: RevocationService;

beforeEach(async () => {
  store = openStore(join(mkdtempSync(join(root, 'case-')), 'diane.db'));
  removed = [];
  logs = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  // The registry edge: it holds live links; a host with none is simply offline.
  const registry = {
    removeHost: async (hostId: string, code: number, reason: string) => {
      removed.push([hostId, code, reason]);
    },
  };
  service = new RevocationService(store, registry, logger);
});

afterEach(() => store.close());

async function enroll(hostId: string): Promise<Host> {
  const host = issued.get(hostId)!;
  await store.slaveServers.upsertEnrollment({
    hostId,
    certSerial: host.serial,
    issuedAt: new Date(),
    expiresAt: new Date(Date.now() + 300 * DAY),
    keyFingerprint: host.key,
  });
  return host;
}

async function refusal(promise: Promise<unknown>): Promise<RevocationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RevocationError);
  return err as RevocationError;
}

function connect(host: Host) {
  return checkSlaveCertificate(store, host.peer, true, undefined, new Date());
}

describe('RevocationService.revoke', () => {
  it('revokes an enrolled host: list entry with key and reason, disabled, link closed with 4403', async () => {
    const ws1 = await enroll('ws1');
    await enroll('ws2');
    await expect(service.revoke('ws1', 'laptop stolen')).resolves.toEqual({
      host_id: 'ws1',
      cert_serial: ws1.serial,
    });
    expect(await store.revokedCredentials.list()).toMatchObject([
      { hostId: 'ws1', certSerial: ws1.serial, reason: 'laptop stolen', keyFingerprint: ws1.key },
    ]);
    expect((await store.slaveServers.getByHostId('ws1'))!.enabled).toBe(false);
    expect((await store.slaveServers.getByHostId('ws2'))!.enabled).toBe(true);
    expect(removed).toEqual([['ws1', CloseCode.revoked, 'credentials revoked']]);
    expect(logs.map((l) => [l.level, l.msg, l.host, l.reason])).toEqual([
      [40, 'slave revoked', 'ws1', 'laptop stolen'],
    ]);
  });

  const refusals: Array<{
    name: string;
    arrange: () => Promise<void>;
    host: string;
    status: number;
    message: string;
  }> = [
    {
      name: 'an unknown host',
      arrange: async () => void (await enroll('ws1')),
      host: 'ws9',
      status: 404,
      message: 'no paired host named ws9',
    },
    {
      name: 'a host revoked before',
      arrange: async () => {
        await enroll('ws1');
        await service.revoke('ws1', 'first');
      },
      host: 'ws1',
      status: 409,
      message: 'ws1 is already revoked',
    },
  ];

  it.each(refusals)(
    'refuses $name with $status and writes nothing',
    async ({ arrange, host, status, message }) => {
      await arrange();
      const before = await store.revokedCredentials.list();
      removed = [];
      logs = [];
      const err = await refusal(service.revoke(host, 'again'));
      expect({ status: err.status, message: err.message, code: err.code, exitCode: err.exitCode }).toEqual({
        status,
        message,
        code: 'revocation',
        exitCode: 1,
      });
      expect(await store.revokedCredentials.list()).toEqual(before);
      expect(removed).toEqual([]);
      expect(logs).toEqual([]);
    },
  );

  it('revokes a host the admin had only disabled', async () => {
    const ws1 = await enroll('ws1');
    await store.slaveServers.setEnabled('ws1', false);
    await expect(service.revoke('ws1', 'gone')).resolves.toEqual({ host_id: 'ws1', cert_serial: ws1.serial });
    expect(await store.revokedCredentials.getBySerial(ws1.serial)).toMatchObject({ reason: 'gone' });
  });

  it('disables again a host re-enabled after its revocation, keeping the first record', async () => {
    const ws1 = await enroll('ws1');
    await service.revoke('ws1', 'first');
    await store.slaveServers.setEnabled('ws1', true);
    await expect(service.revoke('ws1', 'second')).resolves.toEqual({
      host_id: 'ws1',
      cert_serial: ws1.serial,
    });
    expect((await store.slaveServers.getByHostId('ws1'))!.enabled).toBe(false);
    expect(await store.revokedCredentials.list()).toMatchObject([
      { certSerial: ws1.serial, reason: 'first' },
    ]);
  });

  it('refuses an offline revoked host at its next connect, by serial', async () => {
    const ws1 = await enroll('ws1');
    expect(await connect(ws1)).toMatchObject({ ok: true, hostId: 'ws1' });
    await service.revoke('ws1', 'offline');
    expect(await connect(ws1)).toEqual({ ok: false, refusal: 'revoked' });
  });
});

describe('RevocationService.revokeAll', () => {
  it('revokes every enabled host and skips the ones already revoked or disabled', async () => {
    const ws1 = await enroll('ws1');
    const ws2 = await enroll('ws2');
    const ws3 = await enroll('ws3');
    await service.revoke('ws2', 'earlier');
    await store.slaveServers.setEnabled('ws3', false);
    removed = [];
    logs = [];

    const result = await service.revokeAll('incident');
    expect(result).toEqual([{ host_id: 'ws1', cert_serial: ws1.serial }]);
    expect(await store.revokedCredentials.list()).toMatchObject([
      { hostId: 'ws2', certSerial: ws2.serial, reason: 'earlier' },
      { hostId: 'ws1', certSerial: ws1.serial, reason: 'incident', keyFingerprint: ws1.key },
    ]);
    expect(await store.revokedCredentials.getBySerial(ws3.serial)).toBeUndefined();
    expect((await store.slaveServers.list()).map((r) => [r.hostId, r.enabled])).toEqual([
      ['ws1', false],
      ['ws2', false],
      ['ws3', false],
    ]);
    expect(removed).toEqual([['ws1', CloseCode.revoked, 'credentials revoked']]);
    expect(logs.map((l) => [l.level, l.msg, l.hosts, l.reason])).toEqual([
      [40, 'all slaves revoked', ['ws1'], 'incident'],
    ]);
    expect(await connect(ws1)).toEqual({ ok: false, refusal: 'revoked' });
  });

  it('revokes several hosts at once and closes each link', async () => {
    await enroll('ws1');
    await enroll('ws2');
    const result = await service.revokeAll('incident');
    expect(result.map((r) => r.host_id).sort()).toEqual(['ws1', 'ws2']);
    expect(removed.map(([host]) => host).sort()).toEqual(['ws1', 'ws2']);
    expect(await store.revokedCredentials.list()).toHaveLength(2);
  });

  it('does nothing, and logs nothing, when no host is enabled', async () => {
    await enroll('ws1');
    await service.revoke('ws1', 'earlier');
    removed = [];
    logs = [];
    await expect(service.revokeAll('incident')).resolves.toEqual([]);
    expect(await store.revokedCredentials.list()).toHaveLength(1);
    expect(removed).toEqual([]);
    expect(logs).toEqual([]);
  });
});
