import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  type SqliteAuditStore as AuditStore,
  openSlaveAuditStore,
  openStore,
  SLAVE_AUDIT_APPLICATION_ID,
  type SqliteMasterStore as Store,
  StoreError,
} from '../../src/store/index.js';

let dir: string;
const opened: AuditStore[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'diane-audit-repo-'));
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(opts?: Parameters<typeof openStore>[1]): Store {
  const store = openStore(join(dir, 'diane.db'), opts);
  opened.push(store);
  return store;
}

function openSlave(opts?: Parameters<typeof openStore>[1]): AuditStore {
  const store = openSlaveAuditStore(join(dir, 'slave-audit.db'), opts);
  opened.push(store);
  return store;
}

const T0 = new Date('2025-03-01T10:00:00.000Z');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    at: T0,
    agent: 'claude',
    kind: 'tools/call',
    exposedName: 'ws1_fs_read',
    host: 'ws1',
    server: 'fs',
    originalName: 'read',
    durationMs: 12.5,
    outcome: 'ok',
    error: null,
    bytesIn: 10,
    bytesOut: 2000,
    arguments: null,
    callId: 'c1',
    ...overrides,
  };
}

describe('auditEvents (master)', () => {
  it('inserts a batch in one go, returns ids, and reads rows back as written', async () => {
    const repo = open().auditEvents;
    const written = await repo.insertMany([
      record(),
      record({ at: minutes(1), outcome: 'tool_error', error: 'boom', arguments: '{"path":"/x"}' }),
    ]);
    expect(written.map((r) => r.id)).toEqual([1, 2]);
    expect(await repo.query()).toEqual(written);
    expect((await repo.query())[1]).toEqual({
      ...record(),
      id: 2,
      at: minutes(1),
      outcome: 'tool_error',
      error: 'boom',
      arguments: '{"path":"/x"}',
    });
    expect(await repo.maxId()).toBe(2);
    expect(await repo.count()).toBe(2);
    expect(await repo.insertMany([])).toEqual([]);
  });

  it('stores the time as ISO-8601 UTC with milliseconds', async () => {
    const store = open();
    await store.auditEvents.insertMany([record({ at: new Date('2025-03-01T10:00:00.123Z') })]);
    expect(store.db.prepare('SELECT at FROM audit_events').pluck().get()).toBe('2025-03-01T10:00:00.123Z');
  });

  it('writes all rows of a batch or none', async () => {
    const repo = open().auditEvents;
    await expect(repo.insertMany([record(), record({ kind: null as unknown as string })])).rejects.toThrow(
      /NOT NULL/,
    );
    expect(await repo.count()).toBe(0);
  });

  it('filters by agent, host, outcome, kind, time window and id, in id order', async () => {
    const repo = open().auditEvents;
    await repo.insertMany([
      record({ at: minutes(0), agent: 'a', host: 'ws1', outcome: 'ok' }),
      record({ at: minutes(1), agent: 'b', host: 'ws1', outcome: 'refused_scope' }),
      record({ at: minutes(2), agent: 'a', host: null, outcome: 'ok', kind: 'prompts/get' }),
      record({ at: minutes(3), agent: 'a', host: 'ws2', outcome: 'timeout' }),
      record({ at: minutes(4), agent: null, host: 'ws2', outcome: 'ok', kind: 'sampling/createMessage' }),
    ]);
    const ids = async (q: Parameters<typeof repo.query>[0]) => (await repo.query(q)).map((r) => r.id);
    expect(await ids({})).toEqual([1, 2, 3, 4, 5]);
    expect(await ids({ agent: 'a' })).toEqual([1, 3, 4]);
    expect(await ids({ host: 'ws2' })).toEqual([4, 5]);
    expect(await ids({ outcome: 'ok' })).toEqual([1, 3, 5]);
    expect(await ids({ kind: 'prompts/get' })).toEqual([3]);
    expect(await ids({ since: minutes(1), until: minutes(3) })).toEqual([2, 3]);
    expect(await ids({ afterId: 3 })).toEqual([4, 5]);
    expect(await ids({ agent: 'a', outcome: 'ok', since: minutes(1) })).toEqual([3]);
    expect(await ids({ limit: 2 })).toEqual([1, 2]);
    expect(await ids({ limit: 2, newest: true })).toEqual([4, 5]);
    expect(await ids({ agent: 'a', limit: 2, newest: true })).toEqual([3, 4]);
    expect(await ids({ afterId: 1, limit: 2 })).toEqual([2, 3]);
    expect(await ids({ agent: 'nobody' })).toEqual([]);
  });

  it('uses an index for each filter', async () => {
    const store = open();
    const plan = (where: string) =>
      (
        store.db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM audit_events WHERE ${where}`).all() as Array<{
          detail: string;
        }>
      )
        .map((r) => r.detail)
        .join(' | ');
    expect(plan("agent = 'a' ORDER BY id DESC")).toMatch(/USING INDEX audit_events_agent/);
    expect(plan("host = 'a'")).toMatch(/USING INDEX audit_events_host/);
    expect(plan("outcome = 'ok'")).toMatch(/USING INDEX audit_events_outcome/);
    expect(plan("at < '2025'")).toMatch(/USING INDEX audit_events_at/);
  });

  it('trims by age and by row count, in chunks, and never reuses an id', async () => {
    let clock = minutes(60);
    const repo = open({ now: () => clock }).auditEvents;
    await repo.insertMany(Array.from({ length: 10 }, (_, i) => record({ at: minutes(i) })));
    // Older than 55 minutes at minute 60: minutes 0-4.
    expect(await repo.trim(55 * 60_000, 1000)).toBe(5);
    expect((await repo.query()).map((r) => r.id)).toEqual([6, 7, 8, 9, 10]);
    // Keep the newest 3.
    expect(await repo.trim(3_600_000, 3)).toBe(2);
    expect((await repo.query()).map((r) => r.id)).toEqual([8, 9, 10]);
    expect(await repo.trim(3_600_000, 3)).toBe(0);
    // Chunks: at most `chunk` rows per call.
    clock = minutes(1000);
    expect(await repo.trim(60_000, 1000, 2)).toBe(2);
    expect(await repo.trim(60_000, 1000, 2)).toBe(1);
    expect(await repo.trim(60_000, 1000, 2)).toBe(0);
    expect(await repo.count()).toBe(0);
    expect((await repo.insertMany([record()]))[0]!.id).toBe(11);
  });

  it('counts age and row trims together against one chunk', async () => {
    const repo = open({ now: () => minutes(100) }).auditEvents;
    await repo.insertMany(Array.from({ length: 10 }, (_, i) => record({ at: minutes(i) })));
    // At minute 100 with 99 minutes of retention only id 1 is too old; then ids 2-5 are past the
    // newest 5. A chunk of 3 takes id 1 and two of those, the next call the other two.
    expect(await repo.trim(99 * 60_000, 5, 3)).toBe(3);
    expect(await repo.trim(99 * 60_000, 5, 3)).toBe(2);
    expect((await repo.query()).map((r) => r.id)).toEqual([6, 7, 8, 9, 10]);
  });
});

describe('the slave audit file', () => {
  it('has its own schema: master_agent instead of agent, no host, its own application id', async () => {
    const store = openSlave();
    expect(store.schemaVersion).toBe(1);
    expect(store.db.pragma('application_id', { simple: true })).toBe(SLAVE_AUDIT_APPLICATION_ID);
    const columns = (store.db.pragma('table_info(audit_events)') as Array<{ name: string }>).map(
      (c) => c.name,
    );
    expect(columns).toContain('master_agent');
    expect(columns).not.toContain('agent');
    expect(columns).not.toContain('host');
    const tables = store.db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all();
    expect(tables).toEqual(['audit_events', 'sqlite_sequence']);
  });

  it('reads and writes through the same repository, the agent column mapped', async () => {
    const store = openSlave();
    const [row] = await store.auditEvents.insertMany([record({ agent: 'told-by-master', host: 'ignored' })]);
    expect(row).toMatchObject({ id: 1, agent: 'told-by-master', host: null });
    expect(store.db.prepare('SELECT master_agent FROM audit_events').pluck().get()).toBe('told-by-master');
    expect(await store.auditEvents.query({ agent: 'told-by-master' })).toEqual([row]);
    expect(await store.auditEvents.query({ host: 'ws1' })).toEqual([]);
    expect(await store.auditEvents.trim(0, 0)).toBe(1);
  });

  it('and the master database refuse to be opened as one another', async () => {
    openStore(join(dir, 'diane.db')).close();
    openSlaveAuditStore(join(dir, 'slave-audit.db')).close();
    const asSlave = () => openSlaveAuditStore(join(dir, 'diane.db'));
    const asMaster = () => openStore(join(dir, 'slave-audit.db'));
    expect(asSlave).toThrow(StoreError);
    expect(asMaster).toThrow(StoreError);
    // diane.db is at v5, past the slave list's v1: refused before the application id is read.
    expect(() => asSlave()).toThrow(/newer version/);
    expect(() => asMaster()).toThrow(/another program/);
  });

  it('opens read-only: reads what the writer wrote, writes nothing, creates nothing', async () => {
    const path = join(dir, 'slave-audit.db');
    const writer = openSlave();
    await writer.auditEvents.insertMany([record()]);
    const reader = openSlaveAuditStore(path, { readOnly: true });
    opened.push(reader);
    expect((await reader.auditEvents.query()).map((r) => r.id)).toEqual([1]);
    await writer.auditEvents.insertMany([record()]);
    expect(await reader.auditEvents.maxId()).toBe(2);
    await expect(reader.auditEvents.insertMany([record()])).rejects.toThrow(/readonly/i);

    const missing = join(dir, 'missing.db');
    expect(() => openSlaveAuditStore(missing, { readOnly: true })).toThrow(StoreError);
    expect(() => readFileSync(missing)).toThrow(/ENOENT/);
  });

  it('refuses a read-only open of a file with an older schema', async () => {
    const path = join(dir, 'slave-audit.db');
    const old = new Database(path);
    old.pragma(`application_id = ${SLAVE_AUDIT_APPLICATION_ID}`);
    old.close();
    let err: unknown;
    try {
      openSlaveAuditStore(path, { readOnly: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('older-schema');
    expect((err as StoreError).message).toMatch(/has schema v0, older than this build's v1/);
  });
});
