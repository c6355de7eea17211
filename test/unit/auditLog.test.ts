import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type AuditEvent,
  AuditLog,
  type AuditSettings,
  DEFAULT_AUDIT_SETTINGS,
  REDACTED,
} from '../../src/audit/index.js';
import type { Logger } from '../../src/log.js';
import {
  AuditRepo,
  openSlaveAuditStore,
  openStore,
  type SqliteMasterStore as Store,
  type StoredAuditEvent,
} from '../../src/store/index.js';
import { auditRecord } from '../helpers/auditRows.js';

let dir: string;
let dbPath: string;
const stores: Store[] = [];
const logs: AuditLog[] = [];
const others: Database.Database[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'diane-audit-log-'));
  dbPath = join(dir, 'diane.db');
});

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  for (const log of logs.splice(0)) await log.close();
  for (const other of others.splice(0)) other.close();
  for (const store of stores.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(now?: () => Date): Store {
  const store = openStore(dbPath, { busyTimeoutMs: 200, ...(now ? { now } : {}) });
  stores.push(store);
  return store;
}

interface Line {
  level: string;
  fields: Record<string, unknown>;
  message: string;
}

function captureLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) =>
    lines.push({ level, fields, message });
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger: logger as unknown as Logger, lines };
}

function makeLog(store: Store, settings: Partial<AuditSettings> = {}, logger?: Logger): AuditLog {
  const log = new AuditLog(
    store,
    { ...DEFAULT_AUDIT_SETTINGS, ...settings },
    logger ?? captureLogger().logger,
  );
  logs.push(log);
  return log;
}

function event(n: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    kind: 'tools/call',
    outcome: 'ok',
    agent: 'claude',
    exposedName: `tool_${n}`,
    durationMs: n,
    ...overrides,
  };
}

/** Holds the write lock from another connection, as another process would. */
function lockDatabase(): () => void {
  const other = new Database(dbPath);
  others.push(other);
  other.exec('BEGIN IMMEDIATE');
  return () => other.exec('ROLLBACK');
}

describe('AuditLog', () => {
  it('queues without writing, then writes a batch in one transaction on the timer', async () => {
    vi.useFakeTimers();
    const store = open();
    const insertMany = vi.spyOn(AuditRepo.prototype, 'insertMany');
    const log = makeLog(store, { flushIntervalMs: 250 });
    for (let i = 0; i < 3; i++) log.record(event(i));
    expect(await store.auditEvents.count()).toBe(0);
    expect(log.stats()).toEqual({ queued: 3, written: 0, dropped: 0 });
    await vi.advanceTimersByTimeAsync(249);
    expect(await store.auditEvents.count()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect((await store.auditEvents.query()).map((r) => r.exposedName)).toEqual([
      'tool_0',
      'tool_1',
      'tool_2',
    ]);
    expect(insertMany).toHaveBeenCalledTimes(1);
    expect(log.stats()).toEqual({ queued: 0, written: 3, dropped: 0 });
  });

  it('writes at once (next turn) when a batch is full, and drains a backlog in several transactions', async () => {
    vi.useFakeTimers();
    const store = open();
    const insertMany = vi.spyOn(AuditRepo.prototype, 'insertMany');
    const log = makeLog(store, { flushIntervalMs: 60_000, flushBatchSize: 100, maxRowsPerTransaction: 40 });
    for (let i = 0; i < 99; i++) log.record(event(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(await store.auditEvents.count()).toBe(0);
    log.record(event(99));
    // Nothing on the caller's path...
    expect(await store.auditEvents.count()).toBe(0);
    // ...then one transaction per turn, 40 rows each, until the queue is empty.
    const counts: number[] = [];
    for (let turn = 0; turn < 4; turn++) {
      await vi.advanceTimersToNextTimerAsync();
      counts.push(await store.auditEvents.count());
    }
    // Fake timers may run a write's follow-up turn within the same step; the rows still go in
    // batches of 40, never all at once.
    expect(counts[0]).toBeLessThan(100);
    expect(counts.at(-1)).toBe(100);
    expect(insertMany.mock.calls.map(([rows]) => rows.length)).toEqual([40, 40, 20]);
  });

  it('loses nothing when many tasks record at once', async () => {
    const store = open();
    const log = makeLog(store, { flushIntervalMs: 5, flushBatchSize: 500 });
    const tasks = Array.from({ length: 100 }, async (_, t) => {
      for (let i = 0; i < 100; i++) {
        log.record(event(t * 100 + i, { agent: `task-${t}` }));
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, Math.random() * 3));
      }
    });
    await Promise.all(tasks);
    await log.close();
    const rows = await store.auditEvents.query({ limit: 20_000 });
    expect(rows).toHaveLength(10_000);
    expect(new Set(rows.map((r) => r.durationMs)).size).toBe(10_000);
    expect(rows.map((r) => r.id)).toEqual(rows.map((_, i) => i + 1));
    expect(log.stats()).toEqual({ queued: 0, written: 10_000, dropped: 0 });
  });

  it('writes everything on close, and drops (counts) what is recorded after', async () => {
    const store = open();
    const log = makeLog(store, { flushIntervalMs: 60_000, maxRowsPerTransaction: 100 });
    for (let i = 0; i < 1234; i++) log.record(event(i));
    await log.close();
    expect(await store.auditEvents.count()).toBe(1234);
    log.record(event(0));
    await log.close();
    expect(await store.auditEvents.count()).toBe(1234);
    expect(log.stats()).toEqual({ queued: 0, written: 1234, dropped: 1 });
  });

  it('keeps the batch queued while another process holds the lock, and writes it on a later round', async () => {
    vi.useFakeTimers();
    const store = open();
    const log = makeLog(store, { flushIntervalMs: 100 });
    const release = lockDatabase();
    log.record(event(1));
    log.record(event(2));
    await vi.advanceTimersByTimeAsync(100);
    expect(log.stats().queued).toBe(2);
    expect(await log.flush()).toBe(false);
    await vi.advanceTimersByTimeAsync(300);
    expect(log.stats()).toEqual({ queued: 2, written: 0, dropped: 0 });
    release();
    await vi.advanceTimersByTimeAsync(100);
    expect(log.stats()).toEqual({ queued: 0, written: 2, dropped: 0 });
    expect((await store.auditEvents.query()).map((r) => r.exposedName)).toEqual(['tool_1', 'tool_2']);
  });

  it('drops the oldest past the queue bound, counts them, warns once, and records a dropped row', async () => {
    vi.useFakeTimers();
    const store = open();
    const { logger, lines } = captureLogger();
    const log = makeLog(store, { flushIntervalMs: 100, maxQueued: 10 }, logger);
    const release = lockDatabase();
    for (let i = 1; i <= 25; i++) log.record(event(i));
    await vi.advanceTimersByTimeAsync(500);
    expect(log.stats()).toEqual({ queued: 10, written: 0, dropped: 15 });
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/queue is full/);
    release();
    expect(await log.flush()).toBe(true);
    const rows = await store.auditEvents.query();
    expect(rows[0]).toMatchObject({
      id: 1,
      kind: 'audit/dropped',
      outcome: 'dropped',
      error: '15 audit events were dropped: more than 10 were waiting to be written',
    });
    // The newest ten survived, in order.
    expect(rows.slice(1).map((r) => r.exposedName)).toEqual(
      Array.from({ length: 10 }, (_, i) => `tool_${i + 16}`),
    );
    expect(log.stats()).toEqual({ queued: 0, written: 11, dropped: 15 });
    // The count starts again: no second dropped row without new drops.
    log.record(event(99));
    await log.flush();
    expect(await store.auditEvents.query({ kind: 'audit/dropped' })).toHaveLength(1);
  });

  it('never throws from record, whatever the event', async () => {
    const store = open();
    const log = makeLog(store);
    const hostile = {
      get password() {
        return 'x';
      },
      get boom() {
        throw new Error('getter');
      },
    };
    expect(() => log.record(event(1, { arguments: hostile }))).not.toThrow();
    expect(() => log.record(null as unknown as AuditEvent)).not.toThrow();
    expect(() =>
      log.record(event(2, { durationMs: Number.NaN, bytesIn: -5, bytesOut: 1.7, at: new Date('nope') })),
    ).not.toThrow();
    await log.flush();
    const rows = await store.auditEvents.query();
    expect(rows.map((r) => r.kind)).toEqual(['audit/dropped', 'tools/call']);
    expect(rows[0]!.error).toMatch(/^2 audit events were dropped/);
    expect(rows[1]).toMatchObject({ durationMs: null, bytesIn: null, bytesOut: 2 });
    expect(Number.isNaN(rows[1]!.at.getTime())).toBe(false);
  });

  it('stores arguments redacted, only when given, and cuts long texts', async () => {
    const store = open();
    const log = makeLog(store);
    log.record(event(1, { arguments: { path: '/etc', api_key: 'sk-123' } }));
    log.record(event(2, { error: 'e'.repeat(2000) }));
    await log.flush();
    const [withArgs, without] = await store.auditEvents.query();
    expect(JSON.parse(withArgs!.arguments!)).toEqual({ path: '/etc', api_key: REDACTED });
    expect(without!.arguments).toBeNull();
    expect(without!.error!.length).toBeLessThanOrEqual(501);
  });

  it('tells subscribers about each written row, with its id', async () => {
    const store = open();
    const log = makeLog(store);
    const seen: StoredAuditEvent[] = [];
    const seenByOther: number[] = [];
    const unsubscribe = log.subscribe((e) => seen.push(e));
    log.subscribe(() => {
      throw new Error('a broken listener');
    });
    log.subscribe((e) => seenByOther.push(e.id));
    log.record(event(1));
    log.record(event(2));
    expect(seen).toEqual([]);
    await log.flush();
    expect(seen.map((e) => [e.id, e.exposedName])).toEqual([
      [1, 'tool_1'],
      [2, 'tool_2'],
    ]);
    expect(seen).toEqual(await store.auditEvents.query());
    expect(seenByOther).toEqual([1, 2]);
    unsubscribe();
    log.record(event(3));
    await log.flush();
    expect(seen).toHaveLength(2);
    expect(seenByOther).toEqual([1, 2, 3]);
  });

  it('trims by age and by rows, at start and on its interval', async () => {
    vi.useFakeTimers();
    let clock = new Date('2025-03-01T00:00:00.000Z');
    const store = open(() => clock);
    const day = 86_400_000;
    await store.auditEvents.insertMany(
      Array.from({ length: 10 }, (_, i) =>
        auditRecord({ at: new Date(clock.getTime() - (10 - i) * day), exposedName: `old_${i}` }),
      ),
    );
    const { logger, lines } = captureLogger();
    const log = makeLog(
      store,
      { retentionMs: 5.5 * day, maxRows: 3, trimIntervalMs: 60_000, trimChunkRows: 2 },
      logger,
    );
    // By hand: 5 rows are older than 5.5 days, then 2 more past the newest 3.
    expect(await log.trim()).toBe(7);
    expect((await store.auditEvents.query()).map((r) => r.exposedName)).toEqual(['old_7', 'old_8', 'old_9']);

    // From start(), then on the interval: three days later one more row is too old.
    clock = new Date(clock.getTime() + 3 * day);
    log.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(await store.auditEvents.count()).toBe(2);
    expect(lines.some((l) => l.level === 'info' && l.fields.deleted === 1)).toBe(true);
    clock = new Date(clock.getTime() + day);
    await vi.advanceTimersByTimeAsync(60_000);
    expect((await store.auditEvents.query()).map((r) => r.exposedName)).toEqual(['old_9']);
  });

  it('writes the slave audit file the same way', async () => {
    const store = openSlaveAuditStore(join(dir, 'slave-audit.db'));
    const log = new AuditLog(store, DEFAULT_AUDIT_SETTINGS, captureLogger().logger);
    log.record(event(1, { agent: 'said-by-master', host: 'ignored' }));
    await log.close();
    expect(await store.auditEvents.query()).toMatchObject([{ id: 1, agent: 'said-by-master', host: null }]);
    await store.close();
  });
});
