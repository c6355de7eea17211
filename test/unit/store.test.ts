import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import {
  DIANE_APPLICATION_ID,
  latestSchemaVersion,
  migrations,
  type NewPairingRequest,
  openStore,
  type SqliteMasterStore as Store,
  StoreError,
} from '../../src/store/index.js';

let dir: string;
let dbPath: string;
const opened: Store[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'diane-store-'));
  dbPath = join(dir, 'diane.db');
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(opts?: Parameters<typeof openStore>[1]): Store {
  const store = openStore(dbPath, opts);
  opened.push(store);
  return store;
}

function storeErrorFrom(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('expected a StoreError, nothing was thrown');
}

type Column = [name: string, type: string, notNull: number, defaultValue: string | null, primaryKey: number];

function columns(store: Store, table: string): Column[] {
  const rows = store.db.pragma(`table_info(${table})`) as Array<{
    name: string;
    type: string;
    notnull: number;
    dflt_value: string | null;
    pk: number;
  }>;
  return rows.map((c) => [c.name, c.type, c.notnull, c.dflt_value, c.pk]);
}

describe('openStore', () => {
  it('creates the seed schema plus the columns of later migrations, in WAL mode', async () => {
    const store = open();
    expect(columns(store, 'slave_servers')).toEqual([
      ['id', 'TEXT', 0, null, 1],
      ['host_id', 'TEXT', 1, null, 0],
      ['cert_serial', 'TEXT', 1, null, 0],
      ['issued_at', 'DATETIME', 1, null, 0],
      ['expires_at', 'DATETIME', 1, null, 0],
      ['last_seen', 'DATETIME', 0, null, 0],
      ['enabled', 'INTEGER', 1, '1', 0],
      ['created_at', 'DATETIME', 1, 'CURRENT_TIMESTAMP', 0],
      ['updated_at', 'DATETIME', 1, 'CURRENT_TIMESTAMP', 0],
      ['key_fingerprint', 'TEXT', 0, null, 0],
      ['pending_cert_serial', 'TEXT', 0, null, 0],
      ['pending_key_fingerprint', 'TEXT', 0, null, 0],
      ['pending_issued_at', 'DATETIME', 0, null, 0],
      ['pending_expires_at', 'DATETIME', 0, null, 0],
      ['last_renewed_at', 'DATETIME', 0, null, 0],
      ['renewal_error', 'TEXT', 0, null, 0],
      ['renewal_error_at', 'DATETIME', 0, null, 0],
      ['ca_fingerprint', 'TEXT', 0, null, 0],
      ['pending_ca_fingerprint', 'TEXT', 0, null, 0],
    ]);
    expect(columns(store, 'revoked_slave_credentials')).toEqual([
      ['id', 'TEXT', 0, null, 1],
      ['host_id', 'TEXT', 1, null, 0],
      ['cert_serial', 'TEXT', 1, null, 0],
      ['revoked_at', 'DATETIME', 1, 'CURRENT_TIMESTAMP', 0],
      ['reason', 'TEXT', 0, null, 0],
      ['key_fingerprint', 'TEXT', 0, null, 0],
    ]);
    expect(columns(store, 'pairing_requests')).toEqual([
      ['id', 'TEXT', 0, null, 1],
      ['host_id', 'TEXT', 1, null, 0],
      ['pairing_code', 'TEXT', 1, null, 0],
      ['csr', 'TEXT', 1, null, 0],
      ['requested_at', 'DATETIME', 1, 'CURRENT_TIMESTAMP', 0],
      ['expires_at', 'DATETIME', 1, null, 0],
      ['status', 'TEXT', 1, "'pending'", 0],
      ['request_id_hash', 'TEXT', 0, null, 0],
      ['source_address', 'TEXT', 0, null, 0],
      ['key_fingerprint', 'TEXT', 0, null, 0],
      ['re_pair', 'INTEGER', 1, '0', 0],
      ['client_cert', 'TEXT', 0, null, 0],
      ['cert_serial', 'TEXT', 0, null, 0],
      ['cert_expires_at', 'DATETIME', 0, null, 0],
      ['decided_at', 'DATETIME', 0, null, 0],
    ]);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(store.schemaVersion).toBe(latestSchemaVersion);
    expect(store.db.pragma('user_version', { simple: true })).toBe(latestSchemaVersion);
  });

  it('numbers its migrations 1, 2, 3...', async () => {
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
    expect(latestSchemaVersion).toBe(migrations.length);
  });

  it('reopens an up-to-date database without changing it', async () => {
    const first = open();
    await first.slaveServers.create(slave('ws1'));
    first.close();
    const second = open();
    expect(second.schemaVersion).toBe(latestSchemaVersion);
    expect((await second.slaveServers.list()).map((s) => s.hostId)).toEqual(['ws1']);
  });

  it('upgrades a database from an older schema version', async () => {
    const old = new Database(dbPath);
    old.exec(migrations[0]!.sql);
    old.pragma('user_version = 1');
    old
      .prepare("INSERT INTO revoked_slave_credentials (id, host_id, cert_serial) VALUES ('r1', 'ws1', 's1')")
      .run();
    old.close();
    const store = open();
    expect(store.schemaVersion).toBe(latestSchemaVersion);
    expect(await store.revokedCredentials.isRevoked('s1')).toBe(true);
  });

  it('opens an up-to-date database while another process is writing to it', async () => {
    await open().close();
    const other = new Database(dbPath);
    other.exec('BEGIN IMMEDIATE');
    try {
      expect(open({ busyTimeoutMs: 100 }).schemaVersion).toBe(latestSchemaVersion);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });

  it("refuses another program's SQLite file and leaves its bytes alone", async () => {
    const other = new Database(dbPath);
    other.exec("CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup')");
    other.close();
    const before = readFileSync(dbPath);
    const err = storeErrorFrom(() => open());
    expect(err.code).toBe('foreign');
    expect(err.message).toMatch(/another program/);
    expect(readFileSync(dbPath).equals(before)).toBe(true);

    const tagged = join(dir, 'tagged.db');
    const app = new Database(tagged);
    app.pragma('application_id = 1234');
    app.pragma('user_version = 1');
    app.exec('CREATE TABLE t (x)');
    app.close();
    expect(storeErrorFrom(() => openStore(tagged)).code).toBe('foreign');
  });

  it("marks a new database as Diane's", async () => {
    const store = open();
    expect(store.db.pragma('application_id', { simple: true })).toBe(DIANE_APPLICATION_ID);
  });

  it('refuses a database from a newer Diane and leaves its bytes alone', async () => {
    const foreign = new Database(dbPath);
    foreign.exec('CREATE TABLE future (x INTEGER)');
    foreign.pragma(`user_version = ${latestSchemaVersion + 5}`);
    foreign.close();
    const before = readFileSync(dbPath);

    const err = storeErrorFrom(() => open());
    expect(err.code).toBe('newer-schema');
    expect(err.exitCode).toBe(ExitCode.store);
    expect(err.message).toBe(
      `${dbPath} was written by a newer version of Diane (schema v${latestSchemaVersion + 5}; this build knows ` +
        `up to v${latestSchemaVersion}). Upgrade Diane, or point DIANE_HOME elsewhere.`,
    );
    expect(readFileSync(dbPath).equals(before)).toBe(true);
  });

  it.each([
    ['random bytes', () => randomBytes(8192)],
    ['a text file', () => Buffer.from('this is not a database, it is a shopping list\n'.repeat(20))],
  ])('refuses %s as corrupt and leaves it alone', (_, content) => {
    const bytes = content();
    writeFileSync(dbPath, bytes);
    const err = storeErrorFrom(() => open());
    expect(err.code).toBe('corrupt');
    expect(err.exitCode).toBe(ExitCode.store);
    expect(err.message).toMatch(
      new RegExp(`^${escapeRegExp(dbPath)} is not a valid Diane database \\(.+\\)\\. It was left untouched`),
    );
    expect(readFileSync(dbPath).equals(bytes)).toBe(true);
  });

  it('reports a database locked by another process', async () => {
    const other = new Database(dbPath);
    other.exec('BEGIN EXCLUSIVE');
    try {
      const started = Date.now();
      const err = storeErrorFrom(() => open({ busyTimeoutMs: 100 }));
      expect(err.code).toBe('locked');
      expect(err.message).toMatch(new RegExp(`^${escapeRegExp(dbPath)} is locked by another process \\(`));
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(open().schemaVersion).toBe(latestSchemaVersion);
  });

  it('reports a directory that does not exist as unreadable', async () => {
    const err = storeErrorFrom(() => openStore(join(dir, 'missing', 'diane.db')));
    expect(err.code).toBe('unreadable');
  });

  it('rolls a failed transaction back', async () => {
    const store = open();
    await expect(
      store.transaction(async (tx) => {
        await tx.slaveServers.create(slave('ws1'));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.slaveServers.list()).toEqual([]);
    expect(await store.transaction(async (tx) => (await tx.slaveServers.create(slave('ws2'))).hostId)).toBe(
      'ws2',
    );
  });
});

const T0 = new Date('2025-03-01T10:00:00.000Z');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

function slave(hostId: string, serial = `serial-${hostId}`) {
  return { hostId, certSerial: serial, issuedAt: T0, expiresAt: new Date('2026-03-01T10:00:00.000Z') };
}

describe('slaveServers', () => {
  it('creates, reads, updates and deletes', async () => {
    let clock = T0;
    const repo = open({ now: () => clock }).slaveServers;
    const created = await repo.create(slave('workstation'));
    expect(created).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      hostId: 'workstation',
      certSerial: 'serial-workstation',
      issuedAt: T0,
      expiresAt: new Date('2026-03-01T10:00:00.000Z'),
      lastSeen: null,
      enabled: true,
      createdAt: T0,
      updatedAt: T0,
      keyFingerprint: null,
      caFingerprint: null,
      pending: null,
      lastRenewedAt: null,
      renewalError: null,
      renewalErrorAt: null,
    });
    await expect(repo.create(slave('workstation'))).rejects.toThrow(/UNIQUE/);
    await repo.create(slave('laptop'));
    expect((await repo.list()).map((s) => s.hostId)).toEqual(['laptop', 'workstation']);

    expect(await repo.updateLastSeen('workstation', minutes(3))).toBe(true);
    clock = minutes(5);
    expect(await repo.setEnabled('workstation', false)).toBe(true);
    let current = (await repo.getByHostId('workstation'))!;
    expect(current.lastSeen).toEqual(minutes(3));
    expect(current.enabled).toBe(false);
    expect(current.updatedAt).toEqual(minutes(5));

    clock = minutes(7);
    const renewed = { certSerial: 'serial-2', issuedAt: minutes(7), expiresAt: minutes(60 * 24 * 365) };
    expect(await repo.updateCertificate('workstation', renewed)).toBe(true);
    current = (await repo.getByHostId('workstation'))!;
    expect(current).toMatchObject({ ...renewed, updatedAt: minutes(7), id: created.id, createdAt: T0 });

    expect(await repo.updateLastSeen('nobody', T0)).toBe(false);
    expect(await repo.setEnabled('nobody', true)).toBe(false);
    expect(await repo.updateCertificate('nobody', renewed)).toBe(false);
    expect(await repo.delete('workstation')).toBe(true);
    expect(await repo.delete('workstation')).toBe(false);
    expect(await repo.getByHostId('workstation')).toBeUndefined();
  });

  it('stores timestamps as ISO-8601 UTC text', async () => {
    const store = open({ now: () => T0 });
    await store.slaveServers.create(slave('ws1'));
    const row = store.db.prepare('SELECT issued_at, created_at FROM slave_servers').get();
    expect(row).toEqual({ issued_at: '2025-03-01T10:00:00.000Z', created_at: '2025-03-01T10:00:00.000Z' });
  });
});

describe('revokedCredentials', () => {
  it('revokes once per serial and answers isRevoked', async () => {
    let clock = T0;
    const repo = open({ now: () => clock }).revokedCredentials;
    expect(await repo.isRevoked('s1')).toBe(false);
    const first = await repo.revoke({ hostId: 'ws1', certSerial: 's1', reason: 'Compromised' });
    expect(first).toEqual({
      id: expect.any(String),
      hostId: 'ws1',
      certSerial: 's1',
      revokedAt: T0,
      reason: 'Compromised',
      keyFingerprint: null,
    });
    clock = minutes(1);
    expect(await repo.revoke({ hostId: 'ws1', certSerial: 's1', reason: 'again' })).toEqual(first);
    await repo.revoke({ hostId: 'ws2', certSerial: 's2' });
    expect(await repo.isRevoked('s1')).toBe(true);
    expect(await repo.isRevoked('s3')).toBe(false);
    expect((await repo.list()).map((r) => [r.certSerial, r.reason])).toEqual([
      ['s1', 'Compromised'],
      ['s2', null],
    ]);
  });
});

describe('pairingRequests', () => {
  const request = (hostId: string, expiresAt: Date, pairingCode = '123-456') => ({
    hostId,
    pairingCode,
    csr: `-----BEGIN CERTIFICATE REQUEST-----\n${hostId}\n-----END CERTIFICATE REQUEST-----\n`,
    expiresAt,
  });

  it('creates and finds pending requests', async () => {
    const repo = open({ now: () => T0 }).pairingRequests;
    const created = await repo.create(request('ws1', minutes(10)));
    expect(created).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      hostId: 'ws1',
      pairingCode: '123-456',
      csr: expect.stringContaining('ws1'),
      requestedAt: T0,
      expiresAt: minutes(10),
      status: 'pending',
      requestIdHash: null,
      sourceAddress: null,
      keyFingerprint: null,
      rePair: false,
      clientCert: null,
      certSerial: null,
      certExpiresAt: null,
      decidedAt: null,
    });
    expect(await repo.get(created.id)).toEqual(created);
    expect(await repo.get('nope')).toBeUndefined();
    expect(await repo.findPending('ws1', '123-456')).toEqual(created);
    expect(await repo.findPending('ws1', '999-999')).toBeUndefined();
    expect(await repo.findPending('ws2', '123-456')).toBeUndefined();
  });

  it('lets only the first of two approvals win', async () => {
    const repo = open().pairingRequests;
    const { id } = await repo.create(request('ws1', minutes(10)));
    expect(await repo.updateStatus(id, 'pending', 'approved')).toBe(true);
    expect(await repo.updateStatus(id, 'pending', 'approved')).toBe(false);
    expect(await repo.updateStatus(id, 'pending', 'denied')).toBe(false);
    expect((await repo.get(id))?.status).toBe('approved');
    expect(await repo.findPending('ws1', '123-456')).toBeUndefined();
    expect(await repo.updateStatus('missing', 'pending', 'approved')).toBe(false);
  });

  it('lets only one of two connections win the compare-and-set', async () => {
    const a = open();
    const b = open();
    const { id } = await a.pairingRequests.create(request('ws1', minutes(10)));
    expect(await b.pairingRequests.updateStatus(id, 'pending', 'denied')).toBe(true);
    expect(await a.pairingRequests.updateStatus(id, 'pending', 'approved')).toBe(false);
    expect((await a.pairingRequests.get(id))?.status).toBe('denied');
  });

  it('lists, expires and deletes by time', async () => {
    const repo = open({ now: () => T0 }).pairingRequests;
    const soon = await repo.create(request('ws1', minutes(5), '111-111'));
    const later = await repo.create(request('ws2', minutes(20), '222-222'));
    const approved = await repo.create(request('ws3', minutes(5), '333-333'));
    await repo.updateStatus(approved.id, 'pending', 'approved');

    expect((await repo.listPending(minutes(1))).map((r) => r.id)).toEqual([soon.id, later.id]);
    expect((await repo.listPending(minutes(5))).map((r) => r.id)).toEqual([later.id]);

    const expired = await repo.markExpired(minutes(5));
    expect(expired.map((r) => [r.id, r.status])).toEqual([[soon.id, 'expired']]);
    expect(await repo.markExpired(minutes(5))).toEqual([]);
    expect((await repo.get(soon.id))?.status).toBe('expired');
    expect((await repo.get(approved.id))?.status).toBe('approved');

    expect(await repo.deleteExpired(minutes(5))).toBe(2);
    expect(await repo.get(soon.id)).toBeUndefined();
    expect(await repo.get(approved.id)).toBeUndefined();
    expect((await repo.get(later.id))?.status).toBe('pending');
    expect(await repo.deleteExpired(minutes(5))).toBe(0);
  });
});

describe('schema v3', () => {
  it('upgrades a v2 database and keeps its rows, with the new columns empty', async () => {
    const old = new Database(dbPath);
    old.exec(migrations[0]!.sql);
    old.exec(migrations[1]!.sql);
    old.pragma('user_version = 2');
    old
      .prepare(
        `INSERT INTO slave_servers (id, host_id, cert_serial, issued_at, expires_at)
         VALUES ('s1', 'ws1', '0a01', '2025-03-01T10:00:00.000Z', '2026-03-01T10:00:00.000Z')`,
      )
      .run();
    old
      .prepare(
        `INSERT INTO pairing_requests (id, host_id, pairing_code, csr, expires_at)
         VALUES ('p1', 'ws2', '111-222', 'csr', '2025-03-01T10:10:00.000Z')`,
      )
      .run();
    old.close();
    const store = open();
    expect(store.schemaVersion).toBe(latestSchemaVersion);
    expect(await store.slaveServers.getByCertSerial('0a01')).toMatchObject({
      hostId: 'ws1',
      keyFingerprint: null,
    });
    expect(await store.pairingRequests.get('p1')).toMatchObject({
      hostId: 'ws2',
      rePair: false,
      requestIdHash: null,
    });
  });

  it('refuses two slaves holding the same serial', async () => {
    const repo = open().slaveServers;
    await repo.create(slave('ws1', 'same'));
    await expect(repo.create(slave('ws2', 'same'))).rejects.toThrow(/UNIQUE/);
  });
});

describe('slaveServers enrollment', () => {
  const enrollment = (hostId: string, certSerial: string, keyFingerprint: string) => ({
    hostId,
    certSerial,
    issuedAt: T0,
    expiresAt: minutes(60),
    keyFingerprint,
  });

  it('creates a row on first enrollment and replaces the certificate and key on the next', async () => {
    let clock = T0;
    const repo = open({ now: () => clock }).slaveServers;
    const first = await repo.upsertEnrollment(enrollment('ws1', 'aa01', 'sha256:k1'));
    expect(first).toMatchObject({
      hostId: 'ws1',
      certSerial: 'aa01',
      keyFingerprint: 'sha256:k1',
      enabled: true,
    });
    await repo.updateLastSeen('ws1', minutes(2));
    await repo.setEnabled('ws1', false);

    clock = minutes(5);
    const second = await repo.upsertEnrollment({
      ...enrollment('ws1', 'bb02', 'sha256:k2'),
      issuedAt: minutes(5),
    });
    expect(second).toEqual({
      ...first,
      certSerial: 'bb02',
      keyFingerprint: 'sha256:k2',
      issuedAt: minutes(5),
      lastSeen: minutes(2),
      enabled: true,
      updatedAt: minutes(5),
    });
    expect(await repo.list()).toHaveLength(1);
    expect((await repo.getByCertSerial('bb02'))?.hostId).toBe('ws1');
    expect(await repo.getByCertSerial('aa01')).toBeUndefined();
    expect((await repo.getByKeyFingerprint('sha256:k2'))?.hostId).toBe('ws1');
    expect(await repo.getByKeyFingerprint('sha256:k1')).toBeUndefined();
  });
});

describe('revokedCredentials by key and by host', () => {
  it('records key fingerprints and revokes a host at once', async () => {
    const repo = open({ now: () => T0 }).revokedCredentials;
    await repo.revoke({
      hostId: 'ws1',
      certSerial: 'aa01',
      reason: 'superseded',
      keyFingerprint: 'sha256:k1',
    });
    const revoked = await repo.revokeHost(
      'ws1',
      ['aa01', { certSerial: 'bb02', keyFingerprint: 'sha256:k2' }],
      'lost',
    );
    expect(revoked.map((r) => [r.certSerial, r.reason, r.keyFingerprint])).toEqual([
      ['aa01', 'superseded', 'sha256:k1'],
      ['bb02', 'lost', 'sha256:k2'],
    ]);
    expect(await repo.isKeyRevoked('sha256:k1')).toBe(true);
    expect(await repo.isKeyRevoked('sha256:k2')).toBe(true);
    expect(await repo.isKeyRevoked('sha256:k3')).toBe(false);
    expect((await repo.getBySerial('bb02'))?.reason).toBe('lost');
    expect(await repo.getBySerial('cc03')).toBeUndefined();
    expect((await repo.listForHost('ws1')).map((r) => r.certSerial)).toEqual(['aa01', 'bb02']);
    expect(await repo.listForHost('ws2')).toEqual([]);
  });
});

describe('pairingRequests for the pairing service', () => {
  const request = (hostId: string, code: string, extra: Partial<NewPairingRequest> = {}) => ({
    hostId,
    pairingCode: code,
    csr: 'csr',
    expiresAt: minutes(10),
    ...extra,
  });

  it('finds by request id hash, lists a host newest first, counts pending ones', async () => {
    const repo = open({ now: () => T0 }).pairingRequests;
    const a = await repo.create(
      request('ws1', '111-111', {
        requestIdHash: 'h1',
        sourceAddress: '10.0.0.1',
        keyFingerprint: 'sha256:k1',
      }),
    );
    const b = await repo.create(
      request('ws1', '222-222', { requestedAt: minutes(1), sourceAddress: '10.0.0.2', rePair: true }),
    );
    await repo.create(request('ws2', '333-333', { sourceAddress: '10.0.0.1', expiresAt: minutes(3) }));
    expect(await repo.getByRequestIdHash('h1')).toEqual(a);
    expect(await repo.getByRequestIdHash('h2')).toBeUndefined();
    expect(b).toMatchObject({ requestedAt: minutes(1), rePair: true, sourceAddress: '10.0.0.2' });
    expect((await repo.listForHost('ws1')).map((r) => r.pairingCode)).toEqual(['222-222', '111-111']);
    expect(await repo.pendingCodes()).toEqual(new Set(['111-111', '222-222', '333-333']));
    expect((await repo.listPending(minutes(0))).map((r) => r.pairingCode)).toEqual([
      '111-111',
      '333-333',
      '222-222',
    ]);
    // The ws2 request has run out by minute 3, so it is no longer listed.
    expect((await repo.listPending(minutes(3))).map((r) => r.pairingCode)).toEqual(['111-111', '222-222']);
    expect(await repo.hasPendingWithKey('sha256:k1', minutes(0))).toBe(true);
    expect(await repo.hasPendingWithKey('sha256:k1', minutes(10))).toBe(false);
    expect(await repo.hasPendingWithKey('sha256:k9', minutes(0))).toBe(false);
  });

  it('records approval, denial and expiry as compare-and-set transitions', async () => {
    const repo = open({ now: () => T0 }).pairingRequests;
    const a = await repo.create(request('ws1', '111-111'));
    const b = await repo.create(request('ws2', '222-222'));
    const c = await repo.create(request('ws3', '333-333'));
    const approval = {
      clientCert: 'CERT',
      certSerial: 'aa01',
      certExpiresAt: minutes(60),
      decidedAt: minutes(2),
      rePair: true,
    };
    expect(await repo.recordApproval(a.id, approval)).toBe(true);
    expect(await repo.recordApproval(a.id, approval)).toBe(false);
    expect(await repo.recordDenial(a.id, minutes(3))).toBe(false);
    expect(await repo.get(a.id)).toMatchObject({ status: 'approved', ...approval });

    expect(await repo.recordDenial(b.id, minutes(3))).toBe(true);
    expect(await repo.recordApproval(b.id, approval)).toBe(false);
    expect(await repo.get(b.id)).toMatchObject({ status: 'denied', decidedAt: minutes(3), clientCert: null });

    expect(await repo.expireOne(c.id, minutes(9))).toBeUndefined();
    expect(await repo.expireOne(c.id, minutes(10))).toMatchObject({
      status: 'expired',
      decidedAt: minutes(10),
    });
    expect(await repo.expireOne(c.id, minutes(10))).toBeUndefined();
    expect(await repo.pendingCodes()).toEqual(new Set());
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
