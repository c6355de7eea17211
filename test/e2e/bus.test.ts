import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUS_WIRE_VERSION, presenceBucket } from '../../src/bus/busWire.js';
import { connectAgent } from '../helpers/agents.js';
import { dropTestBucket } from '../helpers/busMasters.js';
import { runCli } from '../helpers/cli.js';
import {
  type CliProcess,
  FAST_HEARTBEAT,
  pairSlave,
  startSlave,
  waitForSlaveStatus,
} from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { textOf } from '../helpers/mcpClient.js';
import { testNatsUrl, uniquePrefix } from '../helpers/nats.js';
import { dropSchemas, newSchemaName, postgresAvailable, storeUrlFor } from '../helpers/postgres.js';
import { readEvents } from '../helpers/procs.js';
import { waitFor } from '../helpers/wait.js';

const url = await testNatsUrl();
const pg = await postgresAvailable('e2e: several masters on a NATS bus');
const schema = newSchemaName('diane_e2e_bus');

afterAll(async () => {
  await cleanupProcesses();
  if (pg) await dropSchemas([schema]);
});

/**
 * Two masters on one bus and one PostgreSQL store, real processes: the slave `ws` links to master
 * b, an agent of master a uses its tools. A master routes another's host only while the shared
 * store vouches for it (enabled, the serial the holder announces), so the masters of a bus must
 * share their store. The rules behind each step are in test/unit/bus.test.ts and
 * test/unit/busStalePresence.test.ts.
 */
describe.skipIf(!url || !pg)('several masters on a NATS bus', () => {
  const prefix = uniquePrefix();
  let a: DaemonHandle;
  let b: DaemonHandle;
  let slave: CliProcess;
  let events: string;
  const busArgs = (id: string) => [
    '--bus',
    url!,
    '--bus-prefix',
    prefix,
    '--master-id',
    id,
    '--store',
    storeUrlFor(schema),
    ...FAST_HEARTBEAT,
  ];

  beforeAll(async () => {
    a = await startDaemon({ home: makeHome('bus-a'), args: busArgs('master-a') });
    // The owner's token is in the shared store: b's agent-token must be the same.
    const homeB = makeHome('bus-b');
    copyFileSync(join(a.home, 'agent-token'), join(homeB, 'agent-token'));
    chmodSync(join(homeB, 'agent-token'), 0o600);
    b = await startDaemon({ home: homeB, args: busArgs('master-b') });
    const slaveHome = makeHome('bus-ws');
    events = join(slaveHome, 'events.log');
    writeServersConfig(slaveHome, {
      mcpServers: { echo: echoServerEntry({ events, name: 'ws-echo', env: { FIXTURE_CATALOG: '1' } }) },
    });
    await pairSlave(b, slaveHome, 'ws');
    slave = startSlave(slaveHome);
    await waitForSlaveStatus(b, 'ws', 'connected');
    // Two daemons, a pairing and a slave: slow on a loaded machine.
  }, 180_000);

  afterAll(async () => {
    await slave?.stop().catch(() => undefined);
    await Promise.all([a?.stop().catch(() => undefined), b?.stop().catch(() => undefined)]);
    await dropTestBucket(url!, prefix);
  });

  it('shows which master holds the link, and the bus in `diane info`', async () => {
    const list = JSON.parse((await runCli(b.home, ['slave', 'list', '--json'])).stdout).slaves;
    expect(list).toEqual([
      expect.objectContaining({ host_id: 'ws', status: 'connected', master: 'master-b' }),
    ]);
    expect((await runCli(b.home, ['slave', 'list'])).stdout).toMatch(/ws\s+connected\s+master-b/);
    await waitFor(async () => JSON.parse((await runCli(a.home, ['info', '--json'])).stdout).bus?.connected, {
      what: 'master a on the bus',
    });
    const info = JSON.parse((await runCli(a.home, ['info', '--json'])).stdout);
    expect(info.bus).toMatchObject({ master: 'master-a', prefix, servers: [url] });
  });

  it("serves the host to the other master's agents: calls, progress, questions to the agent, cancellation", async () => {
    const agent = await connectAgent(a.mcpUrl, { name: 'alice', root: '/work/alice' });
    await waitFor(async () => (await agent.listTools()).tools.some((t) => t.name === 'ws_echo_echo'), {
      what: 'ws tools on master a',
    });
    expect(textOf(await agent.callTool({ name: 'ws_echo_echo', arguments: { text: 'across' } }))).toContain(
      'across',
    );
    const progress: number[] = [];
    const slept = await agent.callTool(
      { name: 'ws_echo_slow', arguments: { ms: 300, steps: 3 } },
      { onprogress: (p) => progress.push(p.progress) },
    );
    expect(textOf(slept)).toContain('slept');
    expect(progress).toEqual([1, 2, 3]);
    // roots/list from the slave's server reaches alice on master a, through b.
    expect(textOf(await agent.callTool({ name: 'ws_echo_roots', arguments: {} }))).toBe('file:///work/alice');

    const slowCalls = () => readEvents(events).filter((l) => l.startsWith('call slow')).length;
    const before = slowCalls();
    const abort = new AbortController();
    const call = agent.callTool(
      { name: 'ws_echo_slow', arguments: { ms: 30_000, steps: 60 } },
      { signal: abort.signal },
    );
    await waitFor(() => slowCalls() > before, { what: 'the slow call on the slave' });
    abort.abort();
    await expect(call).rejects.toThrow();
    await waitFor(() => readEvents(events).some((l) => l.startsWith('cancelled slow')), {
      what: 'cancellation on the slave',
    });
  });

  it("tells the other master's agents of a tool change within a second", async () => {
    let changes = 0;
    const agent = await connectAgent(a.mcpUrl, { name: 'bob' });
    agent.setNotificationHandler('notifications/tools/list_changed', () => {
      changes++;
    });
    await waitFor(async () => (await agent.listTools()).tools.some((t) => t.name === 'ws_echo_echo'), {
      what: 'ws tools on master a',
    });
    const at = Date.now();
    await agent.callTool({ name: 'ws_echo_add_tool', arguments: { name: 'fresh' } });
    await waitFor(() => changes > 0, { what: 'list_changed on master a', timeoutMs: 2_000, intervalMs: 20 });
    expect(Date.now() - at).toBeLessThan(1_500);
    expect(textOf(await agent.callTool({ name: 'ws_echo_fresh', arguments: {} }))).toContain('dynamic');
  });

  it('takes the host away from the other master when its holder stops', async () => {
    const agent = await connectAgent(a.mcpUrl, { name: 'carol' });
    await b.stop();
    await waitFor(async () => !(await agent.listTools()).tools.some((t) => t.name.startsWith('ws_')), {
      what: 'ws gone from master a',
      timeoutMs: 3_000,
    });
    const result = await agent
      .callTool({ name: 'ws_echo_echo', arguments: { text: 'anyone?' } })
      .catch((e: Error) => e);
    expect(result instanceof Error ? result.message : textOf(result)).toMatch(/not available|Unknown tool/);
  });

  it('routes nothing for a presence entry of a revoked host, even one written by hand', async () => {
    const agent = await connectAgent(a.mcpUrl, { name: 'dave' });
    const [row] = JSON.parse((await runCli(a.home, ['slave', 'list', '--json'])).stdout).slaves;
    const serial = (row as { cert_serial: string }).cert_serial;
    // b is stopped: its entry is written again by hand, with ws's own serial.
    const claim = async () => {
      const nc = await connect({ servers: [url!] });
      try {
        const kv = await new Kvm(nc).open(presenceBucket(prefix));
        const entry = {
          v: BUS_WIRE_VERSION,
          master: 'master-b',
          since: new Date().toISOString(),
          revision: 7,
          serial,
        };
        await kv.put('ws', JSON.stringify(entry));
      } finally {
        await nc.close();
      }
    };
    const holderOnA = async () =>
      JSON.parse((await runCli(a.home, ['slave', 'list', '--json'])).stdout).slaves[0] as {
        status: string;
        master?: string;
      };
    // The control: while the store vouches for ws, a believes the claim.
    await claim();
    await waitFor(async () => (await holderOnA()).master === 'master-b', { what: 'the claim taken on a' });
    const revoked = await runCli(a.home, ['slave', 'revoke', 'ws', '--yes']);
    expect(revoked.code, revoked.stderr).toBe(0);
    await claim();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await holderOnA()).toMatchObject({ status: 'disconnected', enabled: false });
    expect((await holderOnA()).master).toBeUndefined();
    expect((await agent.listTools()).tools.filter((t) => t.name.startsWith('ws_'))).toEqual([]);
    const result = await agent
      .callTool({ name: 'ws_echo_echo', arguments: { text: 'anyone?' } })
      .catch((e: Error) => e);
    expect(result instanceof Error ? result.message : textOf(result)).toMatch(/Unknown tool/);
  });
});
