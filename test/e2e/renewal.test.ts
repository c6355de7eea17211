import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { FAST_HEARTBEAT, pairSlave, slavesOf, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { freePort } from '../helpers/ports.js';
import { rawUpgrade } from '../helpers/rawUpgrade.js';
import { expectRefusal } from '../helpers/refusal.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface Creds {
  client_cert: string;
  client_key: string;
  ca_cert: string;
  issued_at: string;
  expires_at: string;
}

interface SlaveRow {
  host_id: string;
  status: string;
  cert_serial: string;
  cert_expires_at: string;
  last_renewed_at?: string;
  renewal_pending: boolean;
  renewal_error?: string;
  link_cert_serial?: string;
}

function credsOf(home: string): Creds {
  return JSON.parse(readFileSync(join(home, 'slave-credentials.json'), 'utf8'));
}

async function rowOf(master: { home: string }, hostId: string): Promise<SlaveRow> {
  const row = (await slavesOf(master as never)).find((s) => s.host_id === hostId);
  if (!row) throw new Error(`${hostId} is not listed`);
  return row as unknown as SlaveRow;
}

/** Short lifetimes make renewal happen within seconds: due at 60-67 % of the lifetime. */
describe('certificates renew themselves over the link', () => {
  it('a connected slave renews several times before expiry; calls never fail; the old serial is refused', async () => {
    const masterHome = makeHome('renew-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    const master = await startDaemon({ home: masterHome, args: ['--cert-validity', '16s'] });
    const slaveHome = makeHome('renew-slave');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'renewer');
    const paired = credsOf(slaveHome);
    const pairedRow = await rowOf(master, 'renewer');
    const slave = startSlave(slaveHome);
    await waitForSlaveStatus(master, 'renewer', 'connected');
    const agent = await connectHttp(master.mcpUrl);
    await expect
      .poll(async () => (await agent.listTools()).tools.map((t) => t.name))
      .toContain('renewer_echo_echo');

    // Calls run back to back during three renewals; every one must succeed.
    const serials = new Set([pairedRow.cert_serial]);
    const failures: string[] = [];
    let calls = 0;
    let calling = true;
    const caller = (async () => {
      while (calling) {
        try {
          const result = await agent.callTool({
            name: 'renewer_echo_echo',
            arguments: { text: `n${calls}` },
          });
          if (result.isError || textOf(result) !== `n${calls}`) failures.push(textOf(result));
        } catch (err) {
          failures.push((err as Error).message);
        }
        calls++;
        // Back to back, but not a flood: the test client keeps a listener per call for a while.
        await sleep(20);
      }
    })();
    const renewedTo = async (count: number) =>
      waitFor(
        async () => {
          const row = await rowOf(master, 'renewer');
          if (row.status === 'connected') serials.add(row.cert_serial);
          return serials.size >= count;
        },
        { what: `${count - 1} renewals`, timeoutMs: 45_000, intervalMs: 250 },
      );
    await renewedTo(2);
    // Once the first renewed certificate is in use, the paired one opens nothing, though it has
    // not expired yet (tried while it is valid: the answer, under load, may come after).
    const tried = Date.now();
    const old = await rawUpgrade({
      port: master.clusterPort!,
      ca: paired.ca_cert,
      cert: paired.client_cert,
      key: paired.client_key,
    });
    expect(tried).toBeLessThan(Date.parse(paired.expires_at));
    expect(old).toMatchObject({ status: 409, refusal: 'superseded' });
    await renewedTo(4);
    calling = false;
    await caller;
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(10);
    // The slave never lost its credential: it is still running, and renewed before each expiry.
    expect(slave.proc.exitCode).toBeNull();

    // The renewed credentials are on disk, private, and they are what the master lists.
    const renewed = credsOf(slaveHome);
    expect(statSync(join(slaveHome, 'slave-credentials.json')).mode & 0o777).toBe(0o600);
    expect(renewed.client_key).not.toBe(paired.client_key);
    const row = await waitFor(
      async () => {
        const r = await rowOf(master, 'renewer');
        return r.cert_expires_at === renewed.expires_at && r;
      },
      { what: 'the listed expiry to be the renewed one' },
    );
    expect(Date.parse(row.cert_expires_at)).toBeGreaterThan(Date.parse(paired.expires_at));
    expect(row.last_renewed_at).toBeDefined();
    expect(row.renewal_error).toBeUndefined();
    // The default window (one year) says nothing about a fresh 10-year CA.
    expect((await runCli(masterHome, ['info'])).stdout).not.toMatch(/WARNING/);
    const listed = await runCli(masterHome, ['slave', 'list']);
    expect(listed.stdout).toMatch(/LAST RENEWAL\s+RENEWAL/);
    expect(listed.stdout).toContain(renewed.expires_at);

    // `slave status` on the slave says when the next renewal is due.
    const status = await runCli(slaveHome, ['slave', 'status']);
    expect(status.stdout).toMatch(/Next renewal: \d{4}-\d\d-\d\dT/);
    expect(status.stdout).toMatch(/Last renewal: \d{4}-/);

    await agent.close();
    await slave.stop();
    await master.stop();
  });

  it('a slave offline past two thirds of its lifetime renews as soon as it reconnects', async () => {
    const masterHome = makeHome('renew-late-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    const master = await startDaemon({ home: masterHome, args: ['--cert-validity', '15s'] });
    const slaveHome = makeHome('renew-late-slave');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'latecomer');
    const paired = credsOf(slaveHome);
    const issued = Date.parse(paired.issued_at);
    const lifetime = Date.parse(paired.expires_at) - issued;
    // Offline until past two thirds of the lifetime (a wait on the clock, which is the point).
    await waitFor(() => Date.now() > issued + (lifetime * 2) / 3 + 200, {
      what: 'two thirds of the lifetime',
      timeoutMs: 20_000,
    });
    const slave = startSlave(slaveHome);
    const row = await waitFor(
      async () => {
        const r = await rowOf(master, 'latecomer');
        return r.last_renewed_at !== undefined && r.status === 'connected' && r;
      },
      { what: 'a renewal on reconnect', timeoutMs: 4000, intervalMs: 100 },
    );
    // Renewed before the paired certificate ended, with no time to wait for another schedule.
    expect(Date.parse(row.last_renewed_at!)).toBeLessThan(Date.parse(paired.expires_at));
    expect(row.cert_expires_at).toBe(credsOf(slaveHome).expires_at);
    await slave.stop();
    await master.stop();
  });

  it('a slave offline past its expiry must pair again, with a clear message (exit 11)', async () => {
    const masterHome = makeHome('renew-expired-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    // A CA that lives 10 years is within a 20-year warning window.
    const master = await startDaemon({
      home: masterHome,
      args: ['--cert-validity', '3s', '--ca-expiry-warning', '7300d'],
    });
    const info = await runCli(masterHome, ['info']);
    expect(info.stdout).toMatch(/CA expires: {4}\d{4}-/);
    expect(info.stdout).toMatch(
      /WARNING: the slave CA expires at \S+ \(in \d+ days\); after that no slave can connect/,
    );
    expect(master.stderr()).toMatch(/"msg":"the slave CA expires at/);
    const slaveHome = makeHome('renew-expired-slave');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'sleeper');
    const paired = credsOf(slaveHome);
    await waitFor(() => Date.now() > Date.parse(paired.expires_at) + 100, { what: 'the expiry' });
    const res = await runCli(slaveHome, ['slave', 'start']);
    expectRefusal(res, 11, /Certificate expired\. Please re-pair with master/);
    // Nothing was renewed behind its back: the listed certificate is still the paired one.
    expect((await rowOf(master, 'sleeper')).last_renewed_at).toBeUndefined();
    await master.stop();
  });

  it('a revoked host cannot come back to renew: its link is cut and its certificate refused', async () => {
    const masterHome = makeHome('renew-revoked-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    const master = await startDaemon({ home: masterHome, args: ['--cert-validity', '20s'] });
    const slaveHome = makeHome('renew-revoked-slave');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'outcast');
    const slave = startSlave(slaveHome);
    await waitForSlaveStatus(master, 'outcast', 'connected');
    const revoked = await runCli(masterHome, ['slave', 'revoke', 'outcast', '--yes']);
    expect(revoked.code).toBe(0);
    const exit = await slave.exited;
    expect(exit.code).toBe(10);
    expect(slave.stderr()).toMatch(/Credentials revoked/);
    const creds = credsOf(slaveHome);
    const again = await rawUpgrade({
      port: master.clusterPort!,
      ca: creds.ca_cert,
      cert: creds.client_cert,
      key: creds.client_key,
    });
    expect(again).toMatchObject({ status: 410, refusal: 'revoked' });
    expect((await rowOf(master, 'outcast')).last_renewed_at).toBeUndefined();
    await master.stop();
  });

  it('kill -9 of the slave, then of the master, mid-renewal leaves a working credential and a consistent store', async () => {
    const masterHome = makeHome('renew-crash-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    const clusterPort = await freePort();
    const masterArgs = ['--cert-validity', '15s', '--listen', `127.0.0.1:${clusterPort}`, ...FAST_HEARTBEAT];
    let master = await startDaemon({ home: masterHome, args: masterArgs });
    const mcpPort = master.port;
    const slaveHome = makeHome('renew-crash-slave');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'survivor');
    let slave = startSlave(slaveHome);
    await waitForSlaveStatus(master, 'survivor', 'connected');

    // The slave dies the moment it starts asking for a new certificate.
    await waitFor(() => slave.stderr().includes('renewing the certificate over the link'), {
      what: 'the slave starting a renewal',
      timeoutMs: 20_000,
      intervalMs: 5,
    });
    await slave.stop('SIGKILL');
    slave = startSlave(slaveHome);
    // Whatever is on disk (the paired certificate or the renewed one), the master accepts it.
    await waitForSlaveStatus(master, 'survivor', 'connected');

    // The master dies the moment it has recorded a renewed certificate.
    const mark = master.stderr().length;
    await waitFor(() => master.stderr().slice(mark).includes('pending until its first link'), {
      what: 'the master recording a renewal',
      timeoutMs: 20_000,
      intervalMs: 5,
    });
    await master.kill9();
    const restartedAt = new Date().toISOString();
    master = await startDaemon({ home: masterHome, mcpPort, args: masterArgs });
    await waitForSlaveStatus(master, 'survivor', 'connected', 30_000);

    // Renewal goes on after both crashes, and the store agrees with the slave's file.
    const row = await waitFor(
      async () => {
        const r = await rowOf(master, 'survivor');
        return r.status === 'connected' && (r.last_renewed_at ?? '') > restartedAt && r;
      },
      { what: 'a renewal after the restarts', timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(row.link_cert_serial).toBe(row.cert_serial);
    await waitFor(
      async () => (await rowOf(master, 'survivor')).cert_expires_at === credsOf(slaveHome).expires_at,
      {
        what: 'the listed certificate to be the one on disk',
      },
    );
    expect(slave.proc.exitCode).toBeNull();
    const agent = await connectHttp(master.mcpUrl);
    await expect
      .poll(async () =>
        textOf(await agent.callTool({ name: 'survivor_echo_echo', arguments: { text: 'still here' } })),
      )
      .toBe('still here');
    await agent.close();
    await slave.stop();
    await master.stop();
  });
});
