import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type SqliteMasterStore } from '../../src/store/index.js';

const dirs: string[] = [];
const stores: SqliteMasterStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()?.close();
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe('background writes while another process holds the lock', () => {
  it('skip at once instead of freezing for the busy timeout, and write once the lock is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diane-busy-'));
    dirs.push(dir);
    const path = join(dir, 'diane.db');
    const store = openStore(path, { busyTimeoutMs: 5000 });
    stores.push(store);
    await store.slaveServers.upsertEnrollment({
      hostId: 'ws1',
      certSerial: 'aa',
      issuedAt: new Date(0),
      expiresAt: new Date(Date.now() + 86_400_000),
      keyFingerprint: 'sha256:00',
    });
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const started = Date.now();
    const wrote = await store.tryWrite((tx) => tx.slaveServers.updateLastSeen('ws1', new Date(1000)));
    // A busy-timeout wait would take 5 s; skipping is immediate. (Bounded loosely: this pins the
    // behaviour "did not wait for the lock", not a speed.)
    expect(Date.now() - started).toBeLessThan(2500);
    expect(wrote).toEqual({ written: false });
    other.exec('ROLLBACK');
    other.close();
    expect(await store.tryWrite((tx) => tx.slaveServers.updateLastSeen('ws1', new Date(2000)))).toEqual({
      written: true,
      value: true,
    });
    expect((await store.slaveServers.getByHostId('ws1'))?.lastSeen?.getTime()).toBe(2000);
    // The normal busy timeout is back for everything else.
    expect(store.db.pragma('busy_timeout', { simple: true })).toBe(5000);
  });

  it('passes on errors that are not about the lock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diane-busy-'));
    dirs.push(dir);
    const store = openStore(join(dir, 'diane.db'));
    stores.push(store);
    await expect(
      store.tryWrite(async () => store.db.exec('INSERT INTO no_such_table VALUES (1)')),
    ).rejects.toThrow(/no such table/);
  });
});
