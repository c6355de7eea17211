import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAgent, type TestAgent } from '../helpers/agents.js';
import { runCli } from '../helpers/cli.js';
import {
  type CliProcess,
  FAST_HEARTBEAT,
  masterUrl,
  pairSlave,
  pendingOf,
  requestPairing,
  startSlave,
  waitForSlaveStatus,
} from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { textOf } from '../helpers/mcpClient.js';
import { freePort } from '../helpers/ports.js';
import {
  type PrivateNats,
  type PrivatePostgres,
  privateNatsAvailable,
  privatePostgresAvailable,
  startPrivateNats,
  startPrivatePostgres,
} from '../helpers/privateServices.js';
import { readEvents } from '../helpers/procs.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The several-masters cluster as an operator runs it: three `diane serve` processes sharing one
 * CA (export/import), one PostgreSQL store and one NATS bus, four slaves spread over them. The
 * PostgreSQL and NATS servers are this test's own (test/helpers/privateServices.ts), because it
 * restarts them.
 */
const available = privatePostgresAvailable() && privateNatsAvailable();

afterAll(() => cleanupProcesses());

const PASSPHRASE = { DIANE_CA_PASSPHRASE: 'the operators of this cluster know it' };

interface Master {
  id: string;
  home: string;
  mcpPort: number;
  clusterPort: number;
  daemon: DaemonHandle;
}

describe.skipIf(!available)('three masters, PostgreSQL, NATS, four slaves', () => {
  let pg: PrivatePostgres;
  let nats: PrivateNats;
  const masters: Master[] = [];
  const slaves = new Map<string, { home: string; events: string; proc: CliProcess }>();
  const schema = `diane_e2e_${randomBytes(4).toString('hex')}`;
  let storeUrl: string;

  const serveArgs = (m: Omit<Master, 'daemon'>) => [
    '--store',
    storeUrl,
    '--bus',
    nats.url,
    '--master-id',
    m.id,
    '--listen',
    `127.0.0.1:${m.clusterPort}`,
    ...FAST_HEARTBEAT,
  ];
  const start = async (m: Omit<Master, 'daemon'>) =>
    startDaemon({ home: m.home, args: serveArgs(m), mcpPort: m.mcpPort, timeoutMs: 60_000 });
  const master = (id: string) => masters.find((m) => m.id === id)!;
  const agents = new Map<string, TestAgent>();
  const agentOn = async (id: string) => {
    let agent = agents.get(id);
    if (!agent) {
      agent = await connectAgent(master(id).daemon.mcpUrl, { name: `agent-${id}`, root: `/work/${id}` });
      agents.set(id, agent);
    }
    return agent;
  };
  const startSlaveOn = (hostId: string, order: string[]) => {
    const slave = slaves.get(hostId)!;
    slave.proc = startSlave(slave.home, [
      '--master',
      order.map((id) => masterUrl(master(id).daemon)).join(','),
    ]);
  };
  const makeSlaveHome = (hostId: string, env: Record<string, string> = {}) => {
    const home = makeHome(`sm-${hostId}`);
    const events = join(home, 'events.log');
    writeServersConfig(home, {
      mcpServers: { echo: echoServerEntry({ events, name: `${hostId}-echo`, env }) },
    });
    slaves.set(hostId, { home, events, proc: undefined as unknown as CliProcess });
    return home;
  };
  const echo = async (id: string, host: string, text: string) =>
    textOf(await (await agentOn(id)).callTool({ name: `${host}_echo_echo`, arguments: { text } }));
  const holderOf = async (on: string, host: string): Promise<string | undefined> => {
    const list = JSON.parse((await runCli(master(on).home, ['slave', 'list', '--json'])).stdout).slaves as {
      host_id: string;
      status: string;
      master?: string;
    }[];
    const row = list.find((s) => s.host_id === host);
    return row?.status === 'connected' ? row.master : undefined;
  };

  beforeAll(async () => {
    [pg, nats] = await Promise.all([startPrivatePostgres(), startPrivateNats()]);
    storeUrl = `${pg.url}?schema=${schema}`;
    for (const id of ['m1', 'm2', 'm3']) {
      const home = makeHome(`sm-${id}`);
      writeServersConfig(home, { mcpServers: {} });
      masters.push({ id, home, mcpPort: await freePort(), clusterPort: await freePort() } as Master);
    }
    // The first master makes the CA; the others import it before their first start.
    masters[0]!.daemon = await start(masters[0]!);
    const bundle = join(makeHome('sm-bundle'), 'ca.bundle');
    const exported = await runCli(masters[0]!.home, ['ca', 'export', '--out', bundle], { env: PASSPHRASE });
    expect(exported.code, exported.stderr).toBe(0);
    for (const m of masters.slice(1)) {
      const imported = await runCli(m.home, ['ca', 'import', bundle], { env: PASSPHRASE });
      expect(imported.code, imported.stderr).toBe(0);
    }
    await Promise.all(masters.slice(1).map(async (m) => Object.assign(m, { daemon: await start(m) })));

    // ws1, ws2 and ws3 pair on different masters and link to m1 first; ws4 comes in the pairing test.
    // ws1's server has resources it can tell subscribers about (the subscription tests).
    await pairSlave(
      master('m1').daemon,
      makeSlaveHome('ws1', { FIXTURE_CATALOG: '1', FIXTURE_SUBSCRIBE: '1' }),
      'ws1',
    );
    await pairSlave(master('m2').daemon, makeSlaveHome('ws2'), 'ws2');
    await pairSlave(master('m3').daemon, makeSlaveHome('ws3'), 'ws3');
    startSlaveOn('ws1', ['m1', 'm2', 'm3']);
    startSlaveOn('ws2', ['m1', 'm3', 'm2']);
    startSlaveOn('ws3', ['m1', 'm2', 'm3']);
    for (const host of ['ws1', 'ws2', 'ws3'])
      await waitForSlaveStatus(master('m1').daemon, host, 'connected', 60_000);
  }, 300_000);

  afterAll(async () => {
    for (const agent of agents.values()) await agent.close().catch(() => undefined);
    for (const s of slaves.values()) await s.proc?.stop().catch(() => undefined);
    await Promise.all(masters.map((m) => m.daemon?.stop().catch(() => undefined)));
    await Promise.all([pg?.destroy(), nats?.destroy()]);
  });

  it('pairs a slave whose request was submitted on master 1 and approved on master 3', async () => {
    const home = makeSlaveHome('ws4');
    const { pair, request } = await requestPairing(master('m1').daemon, home, 'ws4');
    // The request is in the shared store: master 3 lists it and approves it by its code.
    await waitFor(async () => (await pendingOf(master('m3').daemon)).some((p) => p.host_id === 'ws4'), {
      what: 'the request on master 3',
    });
    const approved = await runCli(master('m3').home, ['slave', 'approve', 'ws4', request.pairing_code]);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await pair.exited).code, pair.stderr()).toBe(0);
    startSlaveOn('ws4', ['m3', 'm1', 'm2']);
    await waitForSlaveStatus(master('m3').daemon, 'ws4', 'connected', 60_000);
  }, 120_000);

  it('lets agents on every master call tools on every host, with progress and cancellation across the bus', async () => {
    const hosts = ['ws1', 'ws2', 'ws3', 'ws4'];
    for (const id of ['m1', 'm2', 'm3']) {
      const agent = await agentOn(id);
      await waitFor(
        async () => {
          const names = new Set((await agent.listTools()).tools.map((t) => t.name));
          return hosts.every((h) => names.has(`${h}_echo_echo`));
        },
        { what: `every host's tools on ${id}`, timeoutMs: 30_000 },
      );
      for (const host of hosts) expect(await echo(id, host, `${id} to ${host}`)).toBe(`${id} to ${host}`);
    }
    // Every master sees who holds each link.
    for (const id of ['m1', 'm2', 'm3']) {
      await waitFor(
        async () => (await holderOf(id, 'ws4')) === 'm3' && (await holderOf(id, 'ws1')) === 'm1',
        {
          what: `link holders on ${id}`,
          timeoutMs: 20_000,
        },
      );
    }
    // Progress from ws1 (on m1) to an agent on m2, and a cancellation from m3's agent to ws1.
    const progress: number[] = [];
    const slow = await (await agentOn('m2')).callTool(
      { name: 'ws1_echo_slow', arguments: { ms: 300, steps: 3 } },
      { onprogress: (p) => progress.push(p.progress) },
    );
    expect(textOf(slow)).toContain('slept');
    expect(progress).toEqual([1, 2, 3]);
    const events = slaves.get('ws1')!.events;
    const slowCalls = () => readEvents(events).filter((l) => l.startsWith('call slow')).length;
    const before = slowCalls();
    const abort = new AbortController();
    const call = (await agentOn('m3')).callTool(
      { name: 'ws1_echo_slow', arguments: { ms: 30_000, steps: 60 } },
      { signal: abort.signal },
    );
    await waitFor(() => slowCalls() > before, { what: 'the slow call on ws1' });
    abort.abort();
    await expect(call).rejects.toThrow();
    await waitFor(() => readEvents(events).some((l) => l.startsWith('cancelled slow')), {
      what: 'the cancellation on ws1',
    });
  }, 180_000);

  it('cuts a link held by master 1 when master 2 revokes the host', async () => {
    expect(await holderOf('m2', 'ws3')).toBe('m1');
    const revoked = await runCli(master('m2').home, ['slave', 'revoke', 'ws3', '--yes']);
    expect(revoked.code, revoked.stderr).toBe(0);
    const at = Date.now();
    // The slave is told by the master that holds its link, and stops for good.
    const exit = await slaves.get('ws3')!.proc.exited;
    expect(exit.code).toBe(10);
    expect(Date.now() - at).toBeLessThan(5_000);
    // Revoked is gone from every master's namespace.
    for (const id of ['m1', 'm2', 'm3']) {
      const result = await (await agentOn(id))
        .callTool({ name: 'ws3_echo_echo', arguments: { text: 'x' } })
        .then(textOf, (err: Error) => err.message);
      expect(result).toMatch(/Unknown tool: ws3_echo_echo/);
    }
  }, 60_000);

  /** ws1's `fixture://whoami` as every master names it, once an agent subscribed to it. */
  let whoami: string | undefined;
  const touchWhoami = async (id: string) =>
    textOf(
      await (await agentOn(id)).callTool({ name: 'ws1_echo_touch', arguments: { uri: 'fixture://whoami' } }),
    );
  /** The agent on `id` hears of the next update of whoami, and the agents on `others` do not. */
  const updateReaches = async (from: string, ids: string[], others: string[]) => {
    const agentsOf = async (list: string[]) => Promise.all(list.map((id) => agentOn(id)));
    const [hearing, deaf] = [await agentsOf(ids), await agentsOf(others)];
    const count = (a: TestAgent) => a.record.updated.filter((u) => u === whoami).length;
    // Updates of earlier touches may still be on their way: count once they stopped coming.
    let counts = [...hearing, ...deaf].map(count).join();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      const now = [...hearing, ...deaf].map(count).join();
      if (now === counts) break;
      counts = now;
    }
    const before = [...hearing, ...deaf].map(count);
    expect(await touchWhoami(from)).toBe('updated fixture://whoami');
    // Generous: the whole suite loads the two cores, and a lost update waits it out just the same.
    await waitFor(() => hearing.every((a, i) => count(a) === before[i]! + 1), {
      what: `the update of whoami on ${ids.join(', ')}`,
      timeoutMs: 20_000,
      intervalMs: 20,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    deaf.forEach((a, i) => {
      expect(count(a), `no update on ${others[i]}`).toBe(before[hearing.length + i]);
    });
  };

  it("shares a resource subscription between masters' agents: one letting go ends nobody else's; roots changes cross too", async () => {
    // ws1's link is m1's: m2's and m3's agents reach it over the bus, m1's directly.
    expect(await holderOf('m2', 'ws1')).toBe('m1');
    whoami = await waitFor(
      async () =>
        (await (await agentOn('m2')).listResources()).resources.find(
          (r) => r.uri.startsWith('diane://ws1/') && r.uri.endsWith('fixture://whoami'),
        )?.uri,
      { what: "ws1's whoami on m2", timeoutMs: 20_000 },
    );
    for (const id of ['m1', 'm2', 'm3']) await (await agentOn(id)).subscribeResource({ uri: whoami });
    await updateReaches('m1', ['m1', 'm2', 'm3'], []);
    // The first to let go is a master that reaches the host over the bus...
    await (await agentOn('m2')).unsubscribeResource({ uri: whoami });
    await updateReaches('m2', ['m1', 'm3'], ['m2']);
    // ...then the holder's own agent: m3's subscription still holds on the link.
    await (await agentOn('m1')).unsubscribeResource({ uri: whoami });
    await updateReaches('m3', ['m3'], ['m1', 'm2']);
    // The slave's server was subscribed once and never let go.
    const lines = readEvents(slaves.get('ws1')!.events);
    expect(lines.filter((l) => l.startsWith('subscribed fixture://whoami'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('unsubscribed fixture://whoami'))).toHaveLength(0);

    // An agent on m2 says its roots changed: ws1's server, on m1's link, hears of it.
    const rootsChanges = () =>
      readEvents(slaves.get('ws1')!.events).filter((l) => l === 'roots-changed ws1-echo').length;
    const before = rootsChanges();
    await (await agentOn('m2')).sendRootsListChanged();
    await waitFor(() => rootsChanges() > before, { what: 'roots list_changed on ws1', timeoutMs: 20_000 });
  }, 120_000);

  it('moves the links of a killed master to the others; agents elsewhere see only "not available" meanwhile', async () => {
    expect(await holderOf('m2', 'ws1')).toBe('m1');
    expect(await holderOf('m2', 'ws2')).toBe('m1');
    const agent = await agentOn('m2');
    const seen = new Set<string>();
    await master('m1').daemon.kill9();
    const killedAt = Date.now();
    // A 2025-era session lives on its master: m1's agent has to start a new one once m1 is back.
    await agents
      .get('m1')
      ?.close()
      .catch(() => undefined);
    agents.delete('m1');
    for (const host of ['ws1', 'ws2']) {
      await waitFor(
        async () => {
          const result = await agent.callTool({ name: `${host}_echo_echo`, arguments: { text: 'back?' } });
          const text = textOf(result);
          if (text === 'back?') return true;
          seen.add(text);
          return false;
        },
        { what: `${host} back on another master`, timeoutMs: 30_000, intervalMs: 250 },
      );
    }
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    for (const text of seen) expect(text).toMatch(/^Host ws[12] is not available$/);
    expect(await holderOf('m3', 'ws1')).toMatch(/^m[23]$/);
    expect(await holderOf('m3', 'ws2')).toMatch(/^m[23]$/);
    if (whoami) {
      // m3's agent still wants whoami: its subscription followed ws1's link to its new master.
      await waitFor(async () => (await touchWhoami('m2')) === 'updated fixture://whoami', {
        what: "m3's subscription renewed on ws1's new link",
        timeoutMs: 20_000,
        intervalMs: 250,
      });
      await updateReaches('m2', ['m3'], ['m2']);
    }
    // m1 comes back with the same home: it serves the cluster again, links staying where they are.
    master('m1').daemon = await start(master('m1'));
    await waitFor(async () => (await echo('m1', 'ws2', 'm1 again')) === 'm1 again', {
      what: 'm1 serving ws2 again',
      timeoutMs: 30_000,
    });
  }, 180_000);

  it('keeps serving calls on live links while PostgreSQL restarts, and writes again after', async () => {
    await pg.stop();
    try {
      for (const id of ['m2', 'm3']) {
        for (const host of ['ws1', 'ws2', 'ws4']) expect(await echo(id, host, 'pg down')).toBe('pg down');
      }
      const refused = await runCli(master('m2').home, ['agents', 'add', 'during-outage']);
      expect(refused.code).not.toBe(0);
    } finally {
      await pg.start();
    }
    await waitFor(
      async () => (await runCli(master('m2').home, ['agents', 'add', 'after-outage'])).code === 0,
      {
        what: 'a write through master 2 after PostgreSQL is back',
        timeoutMs: 30_000,
        intervalMs: 1_000,
      },
    );
    const listed = JSON.parse((await runCli(master('m3').home, ['agents', 'list', '--json'])).stdout);
    expect(JSON.stringify(listed)).toContain('after-outage');
  }, 180_000);

  it('recovers cross-master calls by itself after a NATS restart', async () => {
    const holder = (await holderOf('m2', 'ws4'))!;
    const caller = ['m1', 'm2', 'm3'].find((id) => id !== holder)!;
    await nats.stop();
    try {
      const during = await (await agentOn(caller)).callTool({
        name: 'ws4_echo_echo',
        arguments: { text: 'x' },
      });
      expect(textOf(during)).toMatch(/not available|^x$/);
    } finally {
      await nats.start();
    }
    await waitFor(async () => (await echo(caller, 'ws4', 'bus back')) === 'bus back', {
      what: 'a cross-master call after the NATS restart',
      timeoutMs: 30_000,
      intervalMs: 500,
    });
  }, 120_000);
});
