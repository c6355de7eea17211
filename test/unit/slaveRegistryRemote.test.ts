import { describe, expect, it } from 'vitest';
import { type RemoteHost, SlaveRegistry } from '../../src/cluster/slaveRegistry.js';
import { SlaveUpstream } from '../../src/cluster/slaveUpstream.js';
import { createLogger } from '../../src/log.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import type { MasterStore } from '../../src/store/index.js';
import { FakeUpstream, tool } from '../helpers/fakeUpstream.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('fatal');
const DAY = 24 * 60 * 60 * 1000;

/** A host whose link another master holds, as the registry sees it. */
class FakeRemote extends FakeUpstream implements RemoteHost {
  holder?: { master: string; since: Date; serial: string } = {
    master: 'master-b',
    since: new Date('2026-01-01T00:00:00Z'),
    serial: `serial-${this.name}`,
  };
  get connected(): boolean {
    return this.state === 'connected';
  }
}

interface FakeRow {
  hostId: string;
  enabled: boolean;
  certSerial: string;
}

/** Just the store reads the registry makes for these cases: the hosts, paired and enabled. */
type FakeStore = MasterStore & { rows: FakeRow[]; reads: number; gate?: Promise<void> };

function storeOf(hostIds: string[]): FakeStore {
  const rows = hostIds.map((hostId) => ({
    hostId,
    enabled: true,
    certSerial: `serial-${hostId}`,
    expiresAt: new Date(Date.now() + DAY),
    issuedAt: new Date(),
    lastSeen: null,
    lastRenewedAt: null,
    pending: null,
    renewalError: null,
    renewalErrorAt: null,
    caFingerprint: null,
  }));
  const store: { rows: FakeRow[]; reads: number; gate?: Promise<void>; slaveServers: unknown } = {
    rows,
    reads: 0,
    slaveServers: {
      list: async () => {
        store.reads++;
        const read = store.rows.map((row) => ({ ...row }));
        await store.gate;
        return read;
      },
    },
  };
  return store as unknown as FakeStore;
}

function pairedRow(hostId: string, extra: Partial<FakeRow> = {}): FakeRow {
  return {
    ...(storeOf([hostId]).rows[0] as FakeRow),
    ...extra,
  };
}

async function registryWith(hostIds: string[]) {
  const router = new Router(DEFAULT_ROUTER_SETTINGS, logger);
  const store = storeOf(hostIds);
  const registry = new SlaveRegistry(
    store,
    router,
    { maxInFlight: 4, maxQueued: 4, connectTimeoutMs: 1_000 },
    'test',
    logger,
    { masterId: 'master-a' },
  );
  await registry.syncFromStore();
  return { router, registry, store };
}

describe('SlaveRegistry with links held by other masters', () => {
  it('routes the remote upstream while the host has no local link, and the offline local one after', async () => {
    const { router, registry } = await registryWith(['ws1']);
    expect(router.get('ws1')).toBeInstanceOf(SlaveUpstream);
    const remote = new FakeRemote('ws1', 'ws1');
    remote.catalogNow = { ...remote.catalogNow, tools: [tool('echo')] };
    registry.setRemote('ws1', remote);
    expect(router.get('ws1')).toBe(remote);
    expect(router.toolTable().byName.has('ws1_echo')).toBe(true);
    const [health] = await registry.health();
    expect(health).toMatchObject({
      host_id: 'ws1',
      status: 'connected',
      master: 'master-b',
      tool_count: 1,
      connected_at: '2026-01-01T00:00:00.000Z',
    });
    registry.setRemote('ws1', undefined);
    expect(router.get('ws1')).toBe(registry.get('ws1'));
    const [after] = await registry.health();
    expect(after).toMatchObject({ status: 'disconnected' });
    expect(after!.master).toBeUndefined();
    // The offline host still answers with the usual error, not "unknown tool".
    const result = await router.callTool('ws1_echo', {}, new AbortController().signal);
    expect(result).toEqual({ content: [{ type: 'text', text: 'Host ws1 is not available' }], isError: true });
    expect(registry.linked()).toEqual([]);
  });

  it('does not route an offline remote over the local upstream', async () => {
    const { router, registry } = await registryWith(['ws1']);
    const remote = new FakeRemote('ws1', 'ws1');
    remote.state = 'offline';
    registry.setRemote('ws1', remote);
    expect(router.get('ws1')).toBe(registry.get('ws1'));
  });

  it('leaves a configured server of the same name alone', async () => {
    const { router, registry } = await registryWith([]);
    const configured = new FakeUpstream('ws2');
    router.add(configured);
    registry.setRemote('ws2', new FakeRemote('ws2', 'ws2'));
    expect(router.get('ws2')).toBe(configured);
  });

  it('routes a remote host paired since the last read once the store, read again at once, vouches for it', async () => {
    const { router, registry, store } = await registryWith([]);
    const remote = new FakeRemote('ws3', 'ws3');
    registry.setRemote('ws3', remote);
    // A claim on the bus alone routes nothing; it makes the registry read the store.
    expect(router.get('ws3')).toBeUndefined();
    store.rows.push(pairedRow('ws3'));
    await waitFor(() => router.get('ws3') === remote, {
      what: 'ws3 routed after the read',
      timeoutMs: 3_000,
    });
    await registry.removeHost('ws3', 4403, 'revoked');
    expect(router.get('ws3')).toBeUndefined();
    // The presence entry is still there (another master renews it): removed stays removed.
    registry.setRemote('ws3', remote);
    expect(router.get('ws3')).toBeUndefined();
  });

  it('never routes, lists or reports as connected a remote host the store says is disabled or revoked', async () => {
    const { router, registry, store } = await registryWith(['ws1']);
    const remote = new FakeRemote('ws1', 'ws1');
    remote.catalogNow = { ...remote.catalogNow, tools: [tool('echo')] };
    registry.setRemote('ws1', remote);
    expect(router.get('ws1')).toBe(remote);

    // Disabled in the store by another master, and its link event lost: the next read decides.
    store.rows[0]!.enabled = false;
    await registry.syncFromStore();
    expect(router.get('ws1')).toBeUndefined();
    expect(router.toolTable().byName.has('ws1_echo')).toBe(false);
    await expect(router.callTool('ws1_echo', {}, new AbortController().signal)).rejects.toThrow(
      /Unknown tool/,
    );
    expect(remote.sent).toEqual([]);
    const [health] = await registry.health();
    expect(health).toMatchObject({ host_id: 'ws1', status: 'disconnected', enabled: false });
    expect(health!.master).toBeUndefined();
    // Presence changes (a renewal, a new revision) do not bring it back.
    registry.setRemote('ws1', remote);
    expect(router.get('ws1')).toBeUndefined();

    // Paired again (a new serial): the old link's entry is still not vouched for, the new one is.
    store.rows[0] = pairedRow('ws1', { certSerial: 'serial-new' });
    await registry.syncFromStore();
    expect(router.get('ws1')).toBe(registry.get('ws1'));
    remote.holder = { ...remote.holder!, serial: 'serial-new' };
    registry.setRemote('ws1', remote);
    expect(router.get('ws1')).toBe(remote);
  });

  it('reads the store at most once a second for claims it cannot vouch for', async () => {
    const { router, registry, store } = await registryWith([]);
    const readsBefore = store.reads;
    for (let i = 0; i < 50; i++) registry.setRemote('ghost', new FakeRemote('ghost', 'ghost'));
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    expect(store.reads - readsBefore).toBeGreaterThanOrEqual(1);
    expect(store.reads - readsBefore).toBeLessThanOrEqual(2);
    expect(router.get('ghost')).toBeUndefined();
    await registry.closeAll();
  });

  it('does not let a read from before a revocation make the host routable again', async () => {
    const { router, registry, store } = await registryWith(['ws1']);
    const remote = new FakeRemote('ws1', 'ws1');
    let release!: () => void;
    store.gate = new Promise((resolve) => {
      release = resolve;
    });
    // The read sees ws1 enabled; the revocation commits and removes the host before it returns.
    const sync = registry.syncFromStore();
    await new Promise((resolve) => setTimeout(resolve, 10));
    store.rows[0]!.enabled = false;
    await registry.removeHost('ws1', 4403, 'revoked');
    release();
    await sync;
    registry.setRemote('ws1', remote);
    expect(router.get('ws1')).toBeUndefined();
    store.gate = undefined;
    await registry.syncFromStore();
    expect(router.get('ws1')).toBeUndefined();
    await registry.closeAll();
  });
});
