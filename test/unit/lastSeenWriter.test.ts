import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LastSeenWriter } from '../../src/cluster/lastSeenWriter.js';
import { openStore, SlaveServersRepo, type SqliteMasterStore } from '../../src/store/index.js';

const dirs: string[] = [];
const stores: SqliteMasterStore[] = [];
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  while (stores.length) await stores.pop()?.close();
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const HOSTS = ['ws1', 'ws2', 'ws3'];

async function storeWithHosts(): Promise<{ store: SqliteMasterStore; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'diane-lastseen-'));
  dirs.push(dir);
  const path = join(dir, 'diane.db');
  const store = openStore(path);
  stores.push(store);
  for (const [i, hostId] of HOSTS.entries()) {
    await store.slaveServers.upsertEnrollment({
      hostId,
      certSerial: `0${i}`,
      issuedAt: new Date(0),
      expiresAt: new Date(Date.now() + 86_400_000),
      keyFingerprint: `sha256:0${i}`,
      caFingerprint: 'sha256:ca',
    });
  }
  return { store, path };
}

const lastSeenOf = async (store: SqliteMasterStore, hostId: string) =>
  (await store.slaveServers.getByHostId(hostId))?.lastSeen?.getTime();

describe('LastSeenWriter', () => {
  it('writes nothing per heartbeat, then every host heard from in one transaction per interval', async () => {
    vi.useFakeTimers();
    const { store } = await storeWithHosts();
    // The write goes through the transaction's own repositories: spy on the class.
    const batches = vi.spyOn(SlaveServersRepo.prototype, 'updateLastSeenMany');
    const single = vi.spyOn(SlaveServersRepo.prototype, 'updateLastSeen');
    const writer = new LastSeenWriter(store, pino({ level: 'silent' }), { flushIntervalMs: 1000 });
    for (let beat = 1; beat <= 5; beat++) {
      for (const hostId of HOSTS) writer.seen(hostId, new Date(beat * 100));
    }
    expect(batches).not.toHaveBeenCalled();
    expect(writer.pending).toBe(3);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.waitFor(() => expect(writer.pending).toBe(0));
    expect(batches).toHaveBeenCalledTimes(1);
    // One batch: the single-host update runs only inside it, once per host.
    expect(single).toHaveBeenCalledTimes(HOSTS.length);
    for (const hostId of HOSTS) expect(await lastSeenOf(store, hostId)).toBe(500);
    expect(writer.pending).toBe(0);
    // Nothing heard: no timer, no write.
    await vi.advanceTimersByTimeAsync(5000);
    expect(batches).toHaveBeenCalledTimes(1);
    await writer.close();
  });

  it('keeps what another process kept it from writing, and writes it in the next round', async () => {
    const { store, path } = await storeWithHosts();
    const writer = new LastSeenWriter(store, pino({ level: 'silent' }), { flushIntervalMs: 60_000 });
    writer.seen('ws1', new Date(1000));
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    expect(await writer.flush()).toBe(false);
    expect(writer.pending).toBe(1);
    other.exec('ROLLBACK');
    other.close();
    writer.seen('ws2', new Date(2000));
    expect(await writer.flush()).toBe(true);
    expect([await lastSeenOf(store, 'ws1'), await lastSeenOf(store, 'ws2')]).toEqual([1000, 2000]);
    await writer.close();
  });

  it('writes what is left when closed', async () => {
    const { store } = await storeWithHosts();
    const writer = new LastSeenWriter(store, pino({ level: 'silent' }), { flushIntervalMs: 60_000 });
    writer.seen('ws3', new Date(3000));
    await writer.close();
    expect(await lastSeenOf(store, 'ws3')).toBe(3000);
  });
});
