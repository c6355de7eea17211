import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { masterUrl, pairSlave, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, removeHomes, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

afterAll(async () => {
  await cleanupProcesses();
  removeHomes();
});

const PASSPHRASE = { DIANE_CA_PASSPHRASE: 'a passphrase only the operators know' };

interface InfoJson {
  ca_fingerprint: string;
  pair_command: string;
  cluster: { url: string };
}

const infoOf = async (home: string): Promise<InfoJson> =>
  JSON.parse((await runCli(home, ['info', '--json'])).stdout);

describe('several masters sharing one CA', () => {
  it('shares the CA by export/import; each master has its own server certificate; a slave fails over without pairing again', async () => {
    const homeA = makeHome('mm-a');
    const homeB = makeHome('mm-b');
    const slaveHome = makeHome('mm-slave');
    for (const home of [homeA, homeB]) writeServersConfig(home, { mcpServers: {} });
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });

    let masterA = await startDaemon({ home: homeA, args: ['--public-host', 'master-a.test'] });

    // Export from A; importing into A's own home is refused while A runs.
    const bundle = join(makeHome('mm-bundle'), 'ca.bundle');
    const exported = await runCli(homeA, ['ca', 'export', '--out', bundle], { env: PASSPHRASE });
    expect(exported.code, exported.stderr).toBe(0);
    expect(statSync(bundle).mode & 0o777).toBe(0o600);
    expect(readFileSync(bundle, 'utf8')).not.toContain('PRIVATE KEY');
    const busy = await runCli(homeA, ['ca', 'import', bundle], { env: PASSPHRASE });
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(/running.*stop it first/s);

    // A wrong passphrase writes nothing; the right one installs the CA and the shared tokens.
    const wrong = await runCli(homeB, ['ca', 'import', bundle], {
      env: { DIANE_CA_PASSPHRASE: 'not the passphrase at all' },
    });
    expect(wrong.code).toBe(6);
    expect(wrong.stderr).toMatch(/wrong passphrase/);
    expect(readdirSync(homeB).sort()).toEqual(['mcp-servers.json']);
    const imported = await runCli(homeB, ['ca', 'import', bundle], { env: PASSPHRASE });
    expect(imported.code, imported.stderr).toBe(0);
    expect(statSync(join(homeB, 'slave-ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(homeB, 'agent-token'), 'utf8')).toBe(
      readFileSync(join(homeA, 'agent-token'), 'utf8'),
    );
    expect(existsSync(join(homeB, 'server-key.pem'))).toBe(false);

    // Pair with A, then give B what a shared store would: A's database.
    await pairSlave(masterA, slaveHome, 'ws1');
    await masterA.stop();
    copyFileSync(join(homeA, 'diane.db'), join(homeB, 'diane.db'));
    chmodSync(join(homeB, 'diane.db'), 0o600);
    masterA = await startDaemon({ home: homeA, args: ['--public-host', 'master-a.test'] });
    const masterB = await startDaemon({ home: homeB, args: ['--public-host', 'master-b.test'] });

    // One CA, two server certificates: each master's own key, serial and names.
    const [infoA, infoB] = [await infoOf(homeA), await infoOf(homeB)];
    expect(infoB.ca_fingerprint).toBe(infoA.ca_fingerprint);
    expect(infoB.pair_command).toContain(`--master=${infoB.cluster.url}`);
    expect(infoB.pair_command).toContain(`--ca-fingerprint=${infoA.ca_fingerprint}`);
    expect(infoB.cluster.url).toContain('master-b.test');
    const ca = new X509Certificate(readFileSync(join(homeA, 'slave-ca-cert.pem')));
    const serverA = new X509Certificate(readFileSync(join(homeA, 'server-cert.pem')));
    const serverB = new X509Certificate(readFileSync(join(homeB, 'server-cert.pem')));
    expect(serverB.serialNumber).not.toBe(serverA.serialNumber);
    expect(serverA.verify(ca.publicKey) && serverB.verify(ca.publicKey)).toBe(true);
    expect(serverA.subjectAltName).toContain('DNS:master-a.test');
    expect(serverB.subjectAltName).toContain('DNS:master-b.test');
    expect(serverB.subjectAltName).not.toContain('master-a.test');
    expect(readFileSync(join(homeB, 'server-key.pem'), 'utf8')).not.toBe(
      readFileSync(join(homeA, 'server-key.pem'), 'utf8'),
    );

    // The slave links to A first, and serves calls there.
    const credsBefore = readFileSync(join(slaveHome, 'slave-credentials.json'), 'utf8');
    const slave = startSlave(slaveHome, ['--master', `${masterUrl(masterA)},${masterUrl(masterB)}`]);
    await waitForSlaveStatus(masterA, 'ws1', 'connected');
    const echoVia = async (mcpUrl: string, text: string) => {
      const agent = await connectHttp(mcpUrl);
      try {
        await expect
          .poll(async () => (await agent.listTools()).tools.map((t) => t.name), { timeout: 15_000 })
          .toContain('ws1_echo_echo');
        return textOf(await agent.callTool({ name: 'ws1_echo_echo', arguments: { text } }));
      } finally {
        await agent.close();
      }
    };
    expect(await echoVia(masterA.mcpUrl, 'via a')).toBe('via a');
    const status = async () => JSON.parse((await runCli(slaveHome, ['slave', 'status', '--json'])).stdout);
    expect((await status()).master).toBe(`wss://127.0.0.1:${masterA.clusterPort}/slave/connect`);

    // A dies: the slave moves to B within its backoff, with the same credentials.
    await masterA.kill9();
    await waitForSlaveStatus(masterB, 'ws1', 'connected', 30_000);
    expect(await echoVia(masterB.mcpUrl, 'via b')).toBe('via b');
    await waitFor(async () => (await status()).state === 'connected', { what: 'slave status connected' });
    const linked = await status();
    expect(linked.master).toBe(`wss://127.0.0.1:${masterB.clusterPort}/slave/connect`);
    expect(linked.masters).toEqual([masterUrl(masterA), masterUrl(masterB)]);
    const text = (await runCli(slaveHome, ['slave', 'status'])).stdout;
    expect(text).toContain(`Linked to:    wss://127.0.0.1:${masterB.clusterPort}/slave/connect`);
    expect(slave.proc.exitCode).toBeNull();
    expect(readFileSync(join(slaveHome, 'slave-credentials.json'), 'utf8')).toBe(credsBefore);

    // B's own pair command works: its server certificate chains to the fingerprint it prints.
    const secondSlave = makeHome('mm-slave2');
    await pairSlave(masterB, secondSlave, 'ws2');
    expect(JSON.parse(readFileSync(join(secondSlave, 'slave-credentials.json'), 'utf8')).masters).toEqual([
      masterUrl(masterB),
    ]);

    await slave.stop();
    await masterB.stop();
  }, 240_000);
});
