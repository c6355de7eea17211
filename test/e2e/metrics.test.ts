import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import {
  type CliProcess,
  FAST_HEARTBEAT,
  pairSlave,
  spawnCli,
  waitForSlaveStatus,
} from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, removeHomes, writeServersConfig } from '../helpers/home.js';
import { connectHttp } from '../helpers/mcpClient.js';
import { freePort } from '../helpers/ports.js';
import { type Sample, samplesOf, sampleValue, scrape, sumOf } from '../helpers/prometheus.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => {
  cleanupProcesses();
  removeHomes();
});

/** The TCP ports a process listens on, from /proc (Linux only). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; st 0A is LISTEN; column 9 is the inode.
      if (cols[3] === '0A' && inodes.has(cols[9] ?? ''))
        ports.push(Number.parseInt(cols[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** Scrapes until `check` holds (scrapes within a second share one reading of the state). */
async function scrapeUntil(port: number, check: (s: Sample[]) => boolean, what: string): Promise<Sample[]> {
  return waitFor(
    async () => {
      const samples = await scrape(port);
      return check(samples) && samples;
    },
    { what, timeoutMs: 15_000, intervalMs: 250 },
  );
}

describe('Prometheus metrics of a real master and a real paired slave', () => {
  let master: DaemonHandle;
  let slave: CliProcess;
  let masterMetrics: number;
  let slaveMetrics: number;

  beforeAll(async () => {
    const masterHome = makeHome('m-metrics');
    writeServersConfig(masterHome, { mcpServers: { echo: echoServerEntry({ name: 'm-echo' }) } });
    masterMetrics = await freePort();
    master = await startDaemon({
      home: masterHome,
      args: ['--metrics-listen', `127.0.0.1:${masterMetrics}`],
    });
    const slaveHome = makeHome('s-metrics');
    writeServersConfig(slaveHome, {
      mcpServers: { echo: { ...echoServerEntry({ name: 'ws-echo' }), hide: ['crash'] } },
    });
    await pairSlave(master, slaveHome, 'ws');
    slaveMetrics = await freePort();
    // Through the environment, as a service unit would set it.
    slave = spawnCli(slaveHome, ['slave', 'start', ...FAST_HEARTBEAT], {
      DIANE_METRICS_LISTEN: `127.0.0.1:${slaveMetrics}`,
    });
    await waitForSlaveStatus(master, 'ws', 'connected');
  });

  afterAll(async () => {
    await slave?.stop().catch(() => undefined);
    await master?.stop().catch(() => undefined);
  });

  it('counts the calls of agents on both sides, by host, server and outcome', async () => {
    const agent = await connectHttp(master.mcpUrl);
    const tools = await waitFor(
      async () => {
        const names = (await agent.listTools()).tools.map((t) => t.name);
        return names.includes('ws_echo_echo') && names.includes('echo_echo') && names;
      },
      { what: 'the tools of both hosts' },
    );
    await agent.callTool({ name: 'ws_echo_echo', arguments: { text: 'a' } });
    await agent.callTool({ name: 'ws_echo_echo', arguments: { text: 'b' } });
    await agent.callTool({ name: 'ws_echo_fail', arguments: {} });
    await agent.callTool({ name: 'echo_echo', arguments: { text: 'c' } });

    // An agent that may use only this machine's servers: its call to the slave is refused.
    const added = await runCli(master.home, ['agents', 'add', 'bot', '--allow', 'host:local', '--json']);
    expect(added.code, added.stderr).toBe(0);
    const bot = await connectHttp(master.mcpUrl, { token: JSON.parse(added.stdout).token });
    await expect(bot.callTool({ name: 'ws_echo_echo', arguments: { text: 'x' } })).rejects.toThrow();

    const m = await scrapeUntil(
      masterMetrics,
      (s) => sumOf(s, 'diane_calls_total', { outcome: 'refused_scope' }) === 1,
      'the refusal in the master metrics',
    );
    const calls = (labels: Record<string, string>) =>
      sumOf(m, 'diane_calls_total', { kind: 'tools/call', ...labels });
    expect(calls({ host: 'ws', server: 'echo', outcome: 'ok' })).toBe(2);
    expect(calls({ host: 'ws', server: 'echo', outcome: 'tool_error' })).toBe(1);
    expect(calls({ host: 'local', server: 'echo', outcome: 'ok' })).toBe(1);
    expect(calls({ host: 'ws', outcome: 'refused_scope' })).toBe(1);
    expect(
      sampleValue(m, 'diane_call_duration_seconds_count', { host: 'ws', kind: 'tools/call', outcome: 'ok' }),
    ).toBe(2);
    expect(
      sampleValue(m, 'diane_call_duration_seconds_sum', { host: 'ws', kind: 'tools/call', outcome: 'ok' }),
    ).toBeGreaterThan(0);
    expect(sumOf(m, 'diane_calls_in_flight')).toBe(0);
    // Tool names are not labels.
    expect(m.some((s) => Object.values(s.labels).includes('ws_echo_echo'))).toBe(false);
    // The exposed tools are what an unscoped agent lists.
    expect(sampleValue(m, 'diane_exposed_entries', { list: 'tools' })).toBe(tools.length);
    expect(sampleValue(m, 'diane_agent_sessions')).toBeGreaterThanOrEqual(2);

    // The slave counted what it ran for the master: its own servers are on host "local".
    const s = await scrapeUntil(
      slaveMetrics,
      (x) => sumOf(x, 'diane_calls_total', { outcome: 'tool_error' }) === 1,
      'the calls in the slave metrics',
    );
    const served = (outcome: string) =>
      sampleValue(s, 'diane_calls_total', { host: 'local', server: 'echo', kind: 'tools/call', outcome });
    expect(served('ok')).toBe(2);
    expect(served('tool_error')).toBe(1);
    // The refused call never reached the slave.
    expect(sumOf(s, 'diane_calls_total')).toBe(3);
    expect(sampleValue(s, 'diane_call_duration_seconds_count', { host: 'local', outcome: 'ok' })).toBe(2);
    await agent.close();
    await bot.close();
  });

  it("reports the master's links, pairing, servers, CA and process", async () => {
    const m = await scrape(masterMetrics);
    expect(sampleValue(m, 'diane_slave_links_connected')).toBe(1);
    expect(sampleValue(m, 'diane_slave_link_up', { host: 'ws' })).toBe(1);
    expect(sampleValue(m, 'diane_slave_link_connects_total', { host: 'ws' })).toBe(1);
    expect(sampleValue(m, 'diane_slave_hosts', { state: 'connected' })).toBe(1);
    expect(sampleValue(m, 'diane_slave_renewal_failing_hosts')).toBe(0);
    expect(sampleValue(m, 'diane_slave_renewal_failing', { host: 'ws' })).toBe(0);
    expect(sampleValue(m, 'diane_slave_cert_expiry_timestamp_seconds', { host: 'ws' })).toBeGreaterThan(
      Date.now() / 1000,
    );
    expect(sampleValue(m, 'diane_pairing_requests_total')).toBe(1);
    expect(sampleValue(m, 'diane_pairing_decisions_total', { outcome: 'approved' })).toBe(1);
    expect(sampleValue(m, 'diane_pairing_decisions_total', { outcome: 'denied' })).toBe(0);
    expect(sampleValue(m, 'diane_pairing_requests_pending')).toBe(0);
    expect(sampleValue(m, 'diane_upstream_state', { server: 'echo', state: 'connected' })).toBe(1);
    expect(sampleValue(m, 'diane_upstream_state', { server: 'echo', state: 'backoff' })).toBe(0);
    // Slave hosts are reported by the link metrics, not as servers.
    expect(samplesOf(m, 'diane_upstream_state', { server: 'ws' })).toEqual([]);
    expect(sampleValue(m, 'diane_ca_expiry_timestamp_seconds', { ca: 'current' })).toBeGreaterThan(
      Date.now() / 1000,
    );
    expect(sampleValue(m, 'diane_build_info', { role: 'master' })).toBe(1);
    expect(sampleValue(m, 'diane_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(samplesOf(m, 'diane_nodejs_eventloop_lag_p99_seconds')).toHaveLength(1);
    expect(sampleValue(m, 'diane_process_open_fds')).toBeGreaterThan(0);
  });

  it("reports the slave's link, certificate, servers and what it exposes", async () => {
    const s = await scrape(slaveMetrics);
    expect(sampleValue(s, 'diane_master_link_up')).toBe(1);
    expect(sampleValue(s, 'diane_master_link_connects_total')).toBe(1);
    expect(sampleValue(s, 'diane_cert_renewal_failing')).toBe(0);
    expect(sampleValue(s, 'diane_cert_expiry_timestamp_seconds', { host: 'ws' })).toBeGreaterThan(
      Date.now() / 1000,
    );
    expect(sampleValue(s, 'diane_cert_next_renewal_timestamp_seconds', { host: 'ws' })).toBeGreaterThan(
      Date.now() / 1000,
    );
    expect(sampleValue(s, 'diane_upstream_state', { server: 'echo', state: 'connected' })).toBe(1);
    expect(
      sampleValue(s, 'diane_exposure_entries', { server: 'echo', list: 'tools', exposure: 'hidden' }),
    ).toBe(1);
    const exposed = sampleValue(s, 'diane_exposure_entries', {
      server: 'echo',
      list: 'tools',
      exposure: 'exposed',
    });
    expect(exposed).toBeGreaterThan(0);
    expect(sampleValue(s, 'diane_exposed_entries', { list: 'tools' })).toBe(exposed);
    expect(sampleValue(s, 'diane_build_info', { role: 'slave' })).toBe(1);
    expect(sampleValue(s, 'diane_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(samplesOf(s, 'diane_nodejs_eventloop_lag_p99_seconds')).toHaveLength(1);
  });

  it('listens on its own port, next to the two others, and serves nothing else there', async () => {
    expect(listeningPorts(master.pid)).toEqual(
      [master.port, master.clusterPort!, masterMetrics].sort((a, b) => a - b),
    );
    expect(listeningPorts(slave.pid)).toEqual([slaveMetrics]);
    for (const path of ['/mcp', '/healthz', '/api/info']) {
      const res = await fetch(`http://127.0.0.1:${masterMetrics}${path}`);
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
  });
});

describe('renewals, missed heartbeats and reconnects in the metrics', () => {
  it('counts them on the master and on the slave', async () => {
    const masterPort = await freePort();
    const slavePort = await freePort();
    // Short lifetimes make renewal happen within seconds (due at 60-67 % of the lifetime).
    const master = await startDaemon({
      home: makeHome('m-metrics-renew'),
      args: ['--cert-validity', '12s', ...FAST_HEARTBEAT, '--metrics-listen', `127.0.0.1:${masterPort}`],
    });
    const slaveHome = makeHome('s-metrics-renew');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'rn');
    const slave = spawnCli(slaveHome, [
      'slave',
      'start',
      ...FAST_HEARTBEAT,
      '--metrics-listen',
      `127.0.0.1:${slavePort}`,
    ]);
    try {
      await waitForSlaveStatus(master, 'rn', 'connected');
      const renewed = (s: Sample[]) => sumOf(s, 'diane_slave_cert_renewals_total', { host: 'rn' }) >= 1;
      const m = await waitFor(
        async () => {
          const samples = await scrape(masterPort);
          return (
            renewed(samples) &&
            sumOf(samples, 'diane_slave_link_connects_total', { host: 'rn' }) >= 2 &&
            samples
          );
        },
        { what: 'a renewal and the link of the renewed certificate', timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(samplesOf(m, 'diane_slave_cert_renewal_failures_total')).toEqual([]);
      expect(sampleValue(m, 'diane_slave_renewal_failing_hosts')).toBe(0);
      const s = await scrapeUntil(
        slavePort,
        (x) => sumOf(x, 'diane_cert_renewals_total', { outcome: 'renewed' }) >= 1,
        'the renewal in the slave metrics',
      );
      expect(sampleValue(s, 'diane_cert_renewals_total', { outcome: 'failed' })).toBe(0);
      expect(sampleValue(s, 'diane_cert_renewals_total', { outcome: 'refused' })).toBe(0);
      expect(sampleValue(s, 'diane_master_link_connects_total')).toBeGreaterThanOrEqual(2);

      // A slave that stops answering pings: the master drops its link and counts the miss.
      process.kill(slave.pid, 'SIGSTOP');
      try {
        await scrapeUntil(
          masterPort,
          (x) => sumOf(x, 'diane_slave_heartbeat_misses_total', { host: 'rn' }) >= 1,
          'the missed heartbeat in the master metrics',
        );
        await scrapeUntil(
          masterPort,
          (x) => sampleValue(x, 'diane_slave_link_up', { host: 'rn' }) === 0,
          'the link down in the master metrics',
        );
      } finally {
        process.kill(slave.pid, 'SIGCONT');
      }
      await scrapeUntil(
        masterPort,
        (x) => sampleValue(x, 'diane_slave_link_up', { host: 'rn' }) === 1,
        'the link back in the master metrics',
      );
    } finally {
      await slave.stop();
      await master.stop();
    }
  });
});

describe('--metrics-listen', () => {
  it('is off by default: no metrics port is opened', async () => {
    const home = makeHome('m-nometrics');
    const master = await startDaemon({ home });
    try {
      expect(listeningPorts(master.pid)).toEqual([master.port, master.clusterPort!].sort((a, b) => a - b));
    } finally {
      await master.stop();
    }
  });

  it('refuses a bad address with a usage error (exit 2), on serve and on slave start', async () => {
    const home = makeHome('m-badmetrics');
    const serve = await runCli(home, ['serve', '--metrics-listen', 'nonsense']);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('invalid --metrics-listen "nonsense": use host:port');
    const slave = await runCli(home, ['slave', 'start', '--metrics-listen', '127.0.0.1:99999']);
    expect(slave.code).toBe(2);
    expect(slave.stderr).toContain('invalid --metrics-listen "127.0.0.1:99999"');
    const env = await runCli(home, ['serve'], { env: { DIANE_METRICS_LISTEN: 'localhost' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('invalid --metrics-listen "localhost"');
  });

  it('says which flag it is when the port is taken (exit 5)', async () => {
    const home = makeHome('m-takenmetrics');
    const taker = createServer();
    await new Promise<void>((resolve) => taker.listen(0, '127.0.0.1', resolve));
    const { port } = taker.address() as AddressInfo;
    try {
      const res = await runCli(home, [
        'serve',
        '--mcp-listen',
        `127.0.0.1:${await freePort()}`,
        '--listen',
        `127.0.0.1:${await freePort()}`,
        '--metrics-listen',
        `127.0.0.1:${port}`,
      ]);
      expect(res.code).toBe(5);
      expect(res.stderr).toContain(`cannot listen on 127.0.0.1:${port} (--metrics-listen)`);
    } finally {
      taker.close();
    }
  });
});
