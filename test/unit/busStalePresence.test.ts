import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BUS_WIRE_VERSION, presenceBucket } from '../../src/bus/busWire.js';
import { MasterBus } from '../../src/bus/masterBus.js';
import { SlaveRegistry } from '../../src/cluster/slaveRegistry.js';
import { createLogger } from '../../src/log.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import { type MasterStore, openStore } from '../../src/store/index.js';
import {
  dropTestBucket,
  FAST_BUS,
  FakeLinkedSlave,
  startTestMaster,
  type TestMaster,
} from '../helpers/busMasters.js';
import { tool } from '../helpers/fakeUpstream.js';
import { testNatsUrl, uniquePrefix } from '../helpers/nats.js';
import { waitFor } from '../helpers/wait.js';

const url = await testNatsUrl();
const logger = createLogger(process.env.DIANE_TEST_LOG ?? 'fatal');
/** Short, so that "the next read of the store" comes within the test's patience. */
const STORE_REFRESH_MS = 300;
/** Long enough that entries written by hand (renewed by no one) outlive the test. */
const PRESENCE_TTL_MS = 10_000;

/**
 * Master a with the real SlaveRegistry over its store, on a real NATS server; master b (a test
 * master) holds the link of ws1. What a believes of a host comes from the store: presence entries
 * that b keeps renewing after a revocation, or that anyone wrote by hand, route nothing.
 */
describe.skipIf(!url)('a presence entry the store does not vouch for', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diane-stale-presence-'));
  let prefix = '';
  let store: MasterStore | undefined;
  let busA: MasterBus | undefined;
  let b: TestMaster | undefined;

  afterEach(async () => {
    await busA?.close().catch(() => {});
    await b?.bus.close().catch(() => {});
    await store?.close();
    if (prefix) await dropTestBucket(url!, prefix);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function masterA(): Promise<{ router: Router; registry: SlaveRegistry }> {
    const router = new Router(DEFAULT_ROUTER_SETTINGS, logger);
    const registry = new SlaveRegistry(
      store!,
      router,
      { maxInFlight: 4, maxQueued: 4, connectTimeoutMs: 1_000 },
      'test',
      logger,
      { masterId: 'master-a' },
    );
    await registry.syncFromStore();
    busA = new MasterBus({
      masterId: 'master-a',
      settings: {
        ...FAST_BUS,
        servers: [url!],
        prefix,
        storeRefreshMs: STORE_REFRESH_MS,
        presenceTtlMs: PRESENCE_TTL_MS,
      },
      router,
      registry,
      logger,
    });
    await busA.ready();
    return { router, registry };
  }

  /** Puts a presence entry into the bucket as a master would, without being one. */
  async function putByHand(hostId: string, serial: string, master = 'master-c'): Promise<void> {
    const nc = await connect({ servers: [url!] });
    try {
      const kv = await new Kvm(nc).open(presenceBucket(prefix));
      const entry = { v: BUS_WIRE_VERSION, master, since: new Date().toISOString(), revision: 1, serial };
      await kv.put(hostId, JSON.stringify(entry));
    } finally {
      await nc.close();
    }
  }

  it('stops routing and listing a host revoked in the store while its holder still announces it', async () => {
    prefix = uniquePrefix();
    store = openStore(join(dir, 'revoked.db'));
    const enrolled = { issuedAt: new Date(), expiresAt: new Date(Date.now() + 86_400_000) };
    await store.slaveServers.create({ hostId: 'ws1', certSerial: 'serial-1', ...enrolled });
    const { router, registry } = await masterA();
    b = await startTestMaster('master-b', url!, prefix, { presenceTtlMs: PRESENCE_TTL_MS });
    const slave = new FakeLinkedSlave('ws1');
    slave.catalogNow = { ...slave.catalogNow, tools: [tool('echo')] };
    b.registry.link(slave);

    // The control: while the store vouches for ws1, a lists it and its calls cross to b.
    await waitFor(() => router.toolTable().byName.has('ws1_echo'), { what: 'ws1 on master a' });
    slave.answer = async () => ({ content: [{ type: 'text', text: 'ok' }] });
    expect(await router.callTool('ws1_echo', {}, new AbortController().signal)).toEqual({
      content: [{ type: 'text', text: 'ok' }],
    });
    expect(slave.sent).toHaveLength(1);
    expect((await registry.health())[0]).toMatchObject({ status: 'connected', master: 'master-b' });

    // Revoked through the store only: no link event reaches a, and b keeps its link and entry.
    await store.transaction(async (tx) => {
      await tx.revokedCredentials.revoke({ hostId: 'ws1', certSerial: 'serial-1', reason: 'test' });
      await tx.slaveServers.setEnabled('ws1', false);
    });
    await waitFor(() => !router.toolTable().byName.has('ws1_echo'), {
      what: 'ws1 gone from master a after its next read of the store',
      timeoutMs: 3_000,
    });
    expect(router.get('ws1')).toBeUndefined();
    await expect(router.callTool('ws1_echo', {}, new AbortController().signal)).rejects.toThrow(
      /Unknown tool/,
    );
    // b renews (and re-announces, with a new revision) for longer than a's refresh cycles.
    slave.setCatalog({ tools: [tool('echo'), tool('more')] });
    await sleep(STORE_REFRESH_MS * 3);
    expect(router.get('ws1')).toBeUndefined();
    expect(router.toolTable().exposed).toEqual([]);
    expect(slave.sent).toHaveLength(1);
    const [health] = await registry.health();
    expect(health).toMatchObject({ host_id: 'ws1', status: 'disconnected', enabled: false });
    expect(health!.master).toBeUndefined();
  });

  it('routes nothing for entries written by hand for a revoked, a re-paired and an unknown host', async () => {
    prefix = uniquePrefix();
    store = openStore(join(dir, 'by-hand.db'));
    const enrolled = { issuedAt: new Date(), expiresAt: new Date(Date.now() + 86_400_000) };
    await store.slaveServers.create({ hostId: 'gone', certSerial: 'serial-gone', ...enrolled });
    await store.transaction(async (tx) => {
      await tx.revokedCredentials.revoke({ hostId: 'gone', certSerial: 'serial-gone' });
      await tx.slaveServers.setEnabled('gone', false);
    });
    await store.slaveServers.create({ hostId: 'moved', certSerial: 'serial-now', ...enrolled });
    const { router, registry } = await masterA();
    // Claimed for a master no one runs: a running master would take an entry in its own name
    // that it holds no link for as its own leftover from before a restart, and delete it.
    await putByHand('gone', 'serial-gone');
    await putByHand('moved', 'serial-before-the-re-pair');
    await putByHand('ghost', 'serial-x');
    // Seen by a's presence board (so the test is not passing for want of a watch)...
    await waitFor(() => busA!.holders().size === 3, { what: 'three entries on master a' });
    // ...and through several reads of the store, none is routed.
    await sleep(STORE_REFRESH_MS * 3);
    for (const hostId of ['gone', 'ghost']) expect(router.get(hostId)).toBeUndefined();
    // The re-paired host stays routed as this master's offline upstream, not the stale claim.
    expect(router.get('moved')).toBe(registry.get('moved'));
    expect(router.get('moved')?.catalog().tools).toEqual([]);
    expect(router.toolTable().exposed).toEqual([]);
    await expect(router.callTool('gone_echo', {}, new AbortController().signal)).rejects.toThrow(
      /Unknown tool/,
    );
    expect((await registry.health()).map((h) => [h.host_id, h.status])).toEqual([
      ['gone', 'disconnected'],
      ['moved', 'disconnected'],
    ]);
  });
});
