import { describe, expect, it } from 'vitest';
import { type RemoteHost, SlaveRegistry } from '../../src/cluster/slaveRegistry.js';
import { SlaveUpstream } from '../../src/cluster/slaveUpstream.js';
import { createLogger } from '../../src/log.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import type { MasterStore } from '../../src/store/index.js';
import { FakeUpstream, tool } from '../helpers/fakeUpstream.js';

const logger = createLogger('fatal');
const DAY = 24 * 60 * 60 * 1000;

/** A host whose link another master holds, as the registry sees it. */
class FakeRemote extends FakeUpstream implements RemoteHost {
  holder?: { master: string; since: Date } = { master: 'master-b', since: new Date('2026-01-01T00:00:00Z') };
  get connected(): boolean {
    return this.state === 'connected';
  }
}

/** Just the store reads the registry makes for these cases: ws1, paired and enabled. */
function storeOf(hostIds: string[]): MasterStore {
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
  return { slaveServers: { list: async () => rows } } as unknown as MasterStore;
}

async function registryWith(hostIds: string[]) {
  const router = new Router(DEFAULT_ROUTER_SETTINGS, logger);
  const registry = new SlaveRegistry(
    storeOf(hostIds),
    router,
    { maxInFlight: 4, maxQueued: 4, connectTimeoutMs: 1_000 },
    'test',
    logger,
    { masterId: 'master-a' },
  );
  await registry.syncFromStore();
  return { router, registry };
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

  it('routes a remote host that this master has not read from the store yet, and removes it with the host', async () => {
    const { router, registry } = await registryWith([]);
    const remote = new FakeRemote('ws3', 'ws3');
    registry.setRemote('ws3', remote);
    expect(router.get('ws3')).toBe(remote);
    await registry.removeHost('ws3', 4403, 'revoked');
    expect(router.get('ws3')).toBeUndefined();
  });
});
