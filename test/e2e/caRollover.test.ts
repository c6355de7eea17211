import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { certKeyFingerprint } from '../../src/pki/index.js';
import { runCli } from '../helpers/cli.js';
import {
  masterUrl,
  pairSlave,
  pendingOf,
  spawnCli,
  startSlave,
  waitForSlaveStatus,
} from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface CaStatusJson {
  state: 'stable' | 'rolling';
  current: { fingerprint: string };
  next?: { fingerprint: string };
  retired?: { fingerprint: string };
  hosts: { host_id: string; ca: string; connected: boolean }[];
  waiting_for: string[];
}

function trustedBy(home: string): string[] {
  const creds = JSON.parse(readFileSync(join(home, 'slave-credentials.json'), 'utf8')) as { ca_cert: string };
  const pems = creds.ca_cert.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return pems.map((pem) => certKeyFingerprint(pem));
}

function slaveHome(name: string): string {
  const home = makeHome(`rollover-${name}`);
  writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
  return home;
}

describe('CA rollover', () => {
  it('runs end to end: one slave online throughout, one that connects midway, one that misses it', async () => {
    const masterHome = makeHome('rollover-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    const master = await startDaemon({ home: masterHome });
    const caStatus = async (): Promise<CaStatusJson> =>
      JSON.parse((await runCli(masterHome, ['ca', 'status', '--json'])).stdout);
    const hostCa = async (host: string) => (await caStatus()).hosts.find((h) => h.host_id === host)?.ca;

    const homes = { steady: slaveHome('steady'), midway: slaveHome('midway'), absent: slaveHome('absent') };
    for (const [name, home] of Object.entries(homes)) await pairSlave(master, home, name);
    const oldCa = (await caStatus()).current.fingerprint;
    const steady = startSlave(homes.steady);
    await waitForSlaveStatus(master, 'steady', 'connected');
    const agent = await connectHttp(master.mcpUrl);
    const echo = async (text: string) =>
      textOf(await agent.callTool({ name: 'steady_echo_echo', arguments: { text } }));
    await expect
      .poll(async () => (await agent.listTools()).tools.map((t) => t.name))
      .toContain('steady_echo_echo');
    expect(await echo('before')).toBe('before');

    // Start: a second CA, trusted next to the first; the online slave learns it and renews onto it.
    const rotate = await runCli(masterHome, ['ca', 'rotate', '--json']);
    expect(rotate.code, rotate.stderr).toBe(0);
    const started = JSON.parse(rotate.stdout) as CaStatusJson;
    expect(started.state).toBe('rolling');
    const newCa = started.next!.fingerprint;
    expect(newCa).not.toBe(oldCa);
    expect((await runCli(masterHome, ['info'])).stdout).toContain(`Next CA:       ${newCa}`);
    await waitFor(async () => (await hostCa('steady')) === 'next', {
      what: 'steady on the next CA',
      timeoutMs: 30_000,
    });
    expect(new Set(trustedBy(homes.steady))).toEqual(new Set([oldCa, newCa]));
    expect(await echo('during')).toBe('during');

    // Finishing early is refused and names who is missing.
    const early = await runCli(masterHome, ['ca', 'finish']);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/not every host has renewed onto the next CA yet: absent, midway\./);

    // A slave paired during the rollover may pin either CA; pinning the next one works.
    const newcomerHome = slaveHome('newcomer');
    const pair = spawnCli(newcomerHome, [
      'slave',
      'pair',
      `--master=${masterUrl(master)}`,
      '--host-id=newcomer',
      `--ca-fingerprint=${newCa}`,
    ]);
    const request = await waitFor(
      async () => (await pendingOf(master)).find((p) => p.host_id === 'newcomer'),
      {
        what: 'pairing request of newcomer',
      },
    );
    expect((await runCli(masterHome, ['slave', 'approve', 'newcomer', request.pairing_code])).code).toBe(0);
    expect((await pair.exited).code, pair.stderr()).toBe(0);
    expect(new Set(trustedBy(newcomerHome))).toEqual(new Set([oldCa, newCa]));
    const newcomer = startSlave(newcomerHome);
    await waitForSlaveStatus(master, 'newcomer', 'connected');
    expect(await hostCa('newcomer')).toBe('next');

    // The one that connects midway renews as soon as it is back.
    const midway = startSlave(homes.midway);
    await waitFor(async () => (await hostCa('midway')) === 'next', {
      what: 'midway on the next CA',
      timeoutMs: 30_000,
    });
    expect((await caStatus()).waiting_for).toEqual(['absent']);

    // The admin gives up on the absent one: it must pair again.
    const finish = await runCli(masterHome, ['ca', 'finish', '--force', '--json']);
    expect(finish.code, finish.stderr).toBe(0);
    const finished = JSON.parse(finish.stdout) as CaStatusJson & { left_behind: string[] };
    expect(finished).toMatchObject({
      state: 'stable',
      current: { fingerprint: newCa },
      left_behind: ['absent'],
    });
    expect(finished.retired?.fingerprint).toBe(oldCa);
    const info = JSON.parse((await runCli(masterHome, ['info', '--json'])).stdout);
    expect(info.ca_fingerprint).toBe(newCa);
    expect(info.ca_next_fingerprint).toBeUndefined();

    // Live links carry on; the slaves drop the retired CA, and reconnect under the new one alone.
    expect(await echo('after')).toBe('after');
    await waitFor(async () => trustedBy(homes.steady).join() === newCa, {
      what: 'steady trusting only the new CA',
    });
    await waitFor(async () => trustedBy(homes.midway).join() === newCa, {
      what: 'midway trusting only the new CA',
    });
    await steady.stop();
    await waitForSlaveStatus(master, 'steady', 'disconnected');
    const steadyAgain = startSlave(homes.steady);
    await waitForSlaveStatus(master, 'steady', 'connected');
    await expect.poll(() => echo('restarted'), { timeout: 10_000 }).toBe('restarted');

    // The slave that missed the whole rollover is told to pair again.
    const absent = await runCli(homes.absent, ['slave', 'start', '--heartbeat-interval', '250ms'], {
      timeoutMs: 30_000,
    });
    expect(absent.code).toBe(14);
    expect(absent.stderr).toMatch(/CA changed.*re-pair/s);
    expect(absent.stderr).toContain(newCa);

    await Promise.all([steadyAgain.stop(), midway.stop(), newcomer.stop()]);
    await agent.close();
  }, 180_000);
});
