import { webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  issueSlaveCertificate,
  loadCa,
  loadOrCreateCa,
  makeCsr,
  validateCsr,
  x509,
} from '../../src/pki/index.js';
import { runCli } from '../helpers/cli.js';
import {
  type CliProcess,
  FAST_HEARTBEAT,
  pairSlave,
  slavesOf,
  startSlave,
  waitForSlaveStatus,
} from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, filesystemServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { readEvents } from '../helpers/procs.js';
import { rawUpgrade } from '../helpers/rawUpgrade.js';
import { expectRefusal } from '../helpers/refusal.js';
import { trackPid } from '../helpers/registry.js';
import { waitFor } from '../helpers/wait.js';

const MAX_PAYLOAD = 2 * 1024 * 1024;

interface SlaveCreds {
  client_cert: string;
  client_key: string;
  ca_cert: string;
  ws_url: string;
}

function credsOf(home: string): SlaveCreds {
  return JSON.parse(readFileSync(join(home, 'slave-credentials.json'), 'utf8'));
}

function echoEntry(events: string, name: string) {
  return echoServerEntry({ events, name });
}

afterAll(() => cleanupProcesses());

describe('cluster: one master, two slaves, real processes', () => {
  let masterHome: string;
  let master: DaemonHandle;
  let clusterPort: number;
  let mcpPort: number;
  const homes = { workstation: '', laptop: '', spare: '' };
  const slaves: Record<string, CliProcess> = {};
  let fsRoot: string;
  let wsEvents: string;
  let laptopEvents: string;

  const masterArgs = () => [
    ...FAST_HEARTBEAT,
    '--max-payload',
    String(MAX_PAYLOAD),
    '--listen',
    `127.0.0.1:${clusterPort}`,
  ];

  beforeAll(async () => {
    masterHome = makeHome('m-cluster');
    master = await startDaemon({
      home: masterHome,
      args: [...FAST_HEARTBEAT, '--max-payload', String(MAX_PAYLOAD)],
    });
    clusterPort = master.clusterPort!;
    mcpPort = master.port;

    homes.workstation = makeHome('s-ws');
    fsRoot = join(homes.workstation, 'files');
    mkdirSync(join(fsRoot, 'projects'), { recursive: true });
    writeFileSync(join(fsRoot, 'projects', 'proposal.txt'), 'only on the workstation\n');
    wsEvents = join(homes.workstation, 'events.log');
    writeServersConfig(homes.workstation, {
      mcpServers: {
        filesystem: filesystemServerEntry(fsRoot),
        echo: echoEntry(wsEvents, 'ws-echo'),
      },
    });
    homes.laptop = makeHome('s-laptop');
    laptopEvents = join(homes.laptop, 'events.log');
    writeServersConfig(homes.laptop, { mcpServers: { echo: echoEntry(laptopEvents, 'laptop-echo') } });
    homes.spare = makeHome('s-spare');

    // Scenario 1: pair each machine, then start it.
    await pairSlave(master, homes.workstation, 'workstation');
    await pairSlave(master, homes.laptop, 'laptop');
    await pairSlave(master, homes.spare, 'spare');
    slaves.workstation = startSlave(homes.workstation);
    slaves.laptop = startSlave(homes.laptop);
    await waitForSlaveStatus(master, 'workstation', 'connected');
    await waitForSlaveStatus(master, 'laptop', 'connected');
  });

  afterAll(async () => {
    for (const s of Object.values(slaves)) await s.stop().catch(() => undefined);
    await master?.stop().catch(() => undefined);
  });

  it('scenario 1: paired slaves show as connected with their tools', async () => {
    await waitFor(
      async () => (await slavesOf(master)).find((s) => s.host_id === 'workstation' && s.tool_count > 14),
      {
        what: 'workstation tools counted',
      },
    );
    const list = await slavesOf(master);
    const ws = list.find((s) => s.host_id === 'workstation')!;
    expect(ws).toMatchObject({ status: 'connected', enabled: true });
    expect(ws.last_heartbeat).toBeTruthy();
    expect(list.find((s) => s.host_id === 'spare')).toMatchObject({ status: 'disconnected' });
    const table = (await runCli(masterHome, ['slave', 'list'])).stdout;
    expect(table).toMatch(/workstation\s+connected/);
    const status = await runCli(homes.workstation, ['slave', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      running: true,
      state: 'connected',
      host_id: 'workstation',
    });
  });

  it("scenario 2: an agent on the master lists and calls the workstation's tools", async () => {
    const agent = await connectHttp(master.mcpUrl);
    try {
      const names = (await agent.listTools()).tools.map((t) => t.name);
      expect(names).toContain('workstation_filesystem_search_files');
      expect(names).toContain('laptop_echo_echo');
      const found = await agent.callTool({
        name: 'workstation_filesystem_search_files',
        arguments: { path: fsRoot, pattern: '**/*proposal*' },
      });
      expect(textOf(found)).toContain(join(fsRoot, 'projects', 'proposal.txt'));
      const read = await agent.callTool({
        name: 'workstation_filesystem_read_text_file',
        arguments: { path: join(fsRoot, 'projects', 'proposal.txt') },
      });
      expect(textOf(read)).toContain('only on the workstation');
    } finally {
      await agent.close();
    }
  });

  it('carries progress and cancellation across both hops', async () => {
    const agent = await connectHttp(master.mcpUrl);
    try {
      const progress: number[] = [];
      const done = await agent.callTool(
        { name: 'workstation_echo_slow', arguments: { ms: 300, steps: 3 } },
        { onprogress: (p) => progress.push(p.progress) },
      );
      expect(textOf(done)).toContain('slept');
      expect(progress).toEqual([1, 2, 3]);

      const slowCalls = () => readEvents(wsEvents).filter((l) => l.startsWith('call slow')).length;
      const before = slowCalls();
      const abort = new AbortController();
      const call = agent.callTool(
        { name: 'workstation_echo_slow', arguments: { ms: 30_000, steps: 60 } },
        { signal: abort.signal },
      );
      await waitFor(() => slowCalls() > before, { what: 'slow call reached the upstream on the slave' });
      abort.abort();
      await expect(call).rejects.toThrow();
      await waitFor(() => readEvents(wsEvents).some((l) => l.startsWith('cancelled slow')), {
        what: 'cancellation reached the upstream on the slave',
      });
    } finally {
      await agent.close();
    }
  });

  it("a slave's tool change reaches the agent as tools/list_changed", async () => {
    let changes = 0;
    const agent = await connectHttp(master.mcpUrl, { onToolsChanged: () => changes++ });
    try {
      await agent.callTool({ name: 'laptop_echo_add_tool', arguments: { name: 'fresh' } });
      await waitFor(() => changes > 0, { what: 'list_changed at the agent' });
      expect((await agent.listTools()).tools.map((t) => t.name)).toContain('laptop_echo_fresh');
      expect(textOf(await agent.callTool({ name: 'laptop_echo_fresh', arguments: {} }))).toContain('dynamic');
    } finally {
      await agent.close();
    }
  });

  it('garbage and oversized frames close only that link', async () => {
    const creds = credsOf(homes.spare);
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(creds.ws_url, {
          cert: creds.client_cert,
          key: creds.client_key,
          ca: creds.ca_cert,
        });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    const closeOf = (ws: WebSocket) =>
      new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

    // A second link for the same host replaces the first, whose socket is closed.
    const first = await open();
    const firstClosed = closeOf(first);
    const second = await open();
    expect(await firstClosed).toBe(4409);
    second.close();

    const garbage = await open();
    const garbageClosed = closeOf(garbage);
    garbage.send('this is not json-rpc');
    expect(await garbageClosed).toBe(1007);

    const big = await open();
    const bigClosed = closeOf(big);
    big.send(
      JSON.stringify({ jsonrpc: '2.0', method: 'x', params: { pad: 'x'.repeat(MAX_PAYLOAD + 1024) } }),
    );
    expect(await bigClosed).toBe(1009);

    const binary = await open();
    const binaryClosed = closeOf(binary);
    binary.send(Buffer.from([1, 2, 3]));
    expect(await binaryClosed).toBe(1007);

    const agent = await connectHttp(master.mcpUrl);
    try {
      expect(
        textOf(await agent.callTool({ name: 'laptop_echo_echo', arguments: { text: 'unaffected' } })),
      ).toBe('unaffected');
    } finally {
      await agent.close();
    }
  });

  it('the hub refuses no certificate, another CA, an expired certificate, a revoked one on a resumed TLS session, and a forged copy of its serial', async () => {
    const caPem = readFileSync(join(masterHome, 'slave-ca-cert.pem'), 'utf8');
    const none = await rawUpgrade({ port: clusterPort, ca: caPem });
    expect(none).toMatchObject({ status: 401, refusal: 'no-certificate' });

    const foreignHome = makeHome('foreign-ca');
    const foreign = await loadOrCreateCa({
      certPath: join(foreignHome, 'c.pem'),
      keyPath: join(foreignHome, 'k.pem'),
      keyBits: 2048,
    });
    const { csrPem, keyPem } = await makeCsr('workstation');
    const csr = await validateCsr(csrPem, 'workstation');
    const foreignCert = await issueSlaveCertificate(foreign, csr, 'workstation');
    const other = await rawUpgrade({ port: clusterPort, ca: caPem, cert: foreignCert.certPem, key: keyPem });
    expect(other).toMatchObject({ status: 403, refusal: 'unknown-certificate' });

    const masterCa = await loadCa({
      certPath: join(masterHome, 'slave-ca-cert.pem'),
      keyPath: join(masterHome, 'slave-ca-key.pem'),
    });
    const expiredCert = await issueSlaveCertificate(masterCa, csr, 'workstation', {
      now: new Date(Date.now() - 3 * 24 * 3600_000),
      validityMs: 24 * 3600_000,
    });
    const expired = await rawUpgrade({
      port: clusterPort,
      ca: caPem,
      cert: expiredCert.certPem,
      key: keyPem,
    });
    expect(expired).toMatchObject({ status: 495, refusal: 'expired' });

    // An enrolled certificate is accepted, and its TLS session can be resumed...
    const spare = credsOf(homes.spare);
    const first = await rawUpgrade({
      port: clusterPort,
      ca: caPem,
      cert: spare.client_cert,
      key: spare.client_key,
    });
    expect(first.status).toBe(101);
    expect(first.session).toBeDefined();
    const resumedOk = await rawUpgrade({
      port: clusterPort,
      ca: caPem,
      cert: spare.client_cert,
      key: spare.client_key,
      session: first.session,
    });
    expect(resumedOk.reused).toBe(true);
    expect(resumedOk.status).toBe(101);
    // ...but after a revoke, the resumed session is refused too.
    const revoke = await runCli(masterHome, ['slave', 'revoke', 'spare', '--reason', 'lost laptop', '--yes']);
    expect(revoke.code).toBe(0);
    const resumed = await rawUpgrade({
      port: clusterPort,
      ca: caPem,
      cert: spare.client_cert,
      key: spare.client_key,
      session: resumedOk.session ?? first.session,
    });
    expect(resumed.reused).toBe(true);
    expect(resumed).toMatchObject({ status: 410, refusal: 'revoked' });

    // A self-signed certificate that copies the revoked serial is a stranger, not a revoked slave:
    // the chain is judged before the revocation list, which a stranger must not be able to probe.
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const copied = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: new X509Certificate(spare.client_cert).serialNumber,
      name: 'CN=spare',
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 3600_000),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const forged = await rawUpgrade({
      port: clusterPort,
      ca: caPem,
      cert: copied.toString('pem'),
      key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`,
    });
    expect(forged).toMatchObject({ status: 403, refusal: 'unknown-certificate' });
  });

  it('scenario 3: a silent slave is marked disconnected, calls fail at once, and it comes back by itself', async () => {
    const agent = await connectHttp(master.mcpUrl);
    try {
      const inFlight = agent.callTool({ name: 'laptop_echo_slow', arguments: { ms: 30_000, steps: 30 } });
      await waitFor(() => readEvents(laptopEvents).filter((l) => l.startsWith('call slow')).length > 0, {
        what: 'in-flight call on the laptop',
      });
      process.kill(slaves.laptop!.pid, 'SIGSTOP');
      try {
        await waitForSlaveStatus(master, 'laptop', 'disconnected', 15_000);
        const dropped = await inFlight;
        expect(dropped.isError).toBe(true);
        expect(textOf(dropped)).toBe('Host laptop is not available');
        const offline = await agent.callTool({ name: 'laptop_echo_echo', arguments: { text: 'hello?' } });
        expect(offline.isError).toBe(true);
        expect(textOf(offline)).toBe('Host laptop is not available');
        // Fail open: the workstation still answers.
        expect(
          textOf(await agent.callTool({ name: 'workstation_echo_echo', arguments: { text: 'ok' } })),
        ).toBe('ok');
      } finally {
        process.kill(slaves.laptop!.pid, 'SIGCONT');
      }
      await waitForSlaveStatus(master, 'laptop', 'connected', 20_000);
      await waitFor(
        async () =>
          !(await agent.callTool({ name: 'laptop_echo_echo', arguments: { text: 'back' } })).isError,
        {
          what: 'laptop answering again',
        },
      );
    } finally {
      await agent.close();
    }
  });

  it('scenario 3: after kill -9 and a restart of the master, the slaves come back without re-pairing', async () => {
    await master.kill9();
    master = await startDaemon({ home: masterHome, mcpPort, args: masterArgs() });
    await waitForSlaveStatus(master, 'workstation', 'connected', 30_000);
    await waitForSlaveStatus(master, 'laptop', 'connected', 30_000);
    const agent = await connectHttp(master.mcpUrl);
    try {
      const echoed = await agent.callTool({
        name: 'workstation_echo_echo',
        arguments: { text: 'after restart' },
      });
      expect(textOf(echoed)).toBe('after restart');
    } finally {
      await agent.close();
    }
  });

  it('scenario 4: revoke cuts the live link, the slave exits, and cannot come back until it pairs again', async () => {
    let changes = 0;
    const agent = await connectHttp(master.mcpUrl, { onToolsChanged: () => changes++ });
    try {
      expect((await agent.listTools()).tools.some((t) => t.name.startsWith('workstation_'))).toBe(true);
      const noYes = await runCli(masterHome, ['slave', 'revoke', 'workstation']);
      expectRefusal(noYes, 2, 'refusing to revoke slave workstation without --yes when not on a terminal');
      const revoke = await runCli(masterHome, [
        'slave',
        'revoke',
        'workstation',
        '--reason',
        'Compromised',
        '--yes',
      ]);
      expect(revoke.code).toBe(0);
      const exit = await slaves.workstation!.exited;
      expect(exit.code).toBe(10);
      expect(slaves.workstation!.stderr()).toContain('Credentials revoked. Please re-pair with master');
      await waitFor(() => changes > 0, { what: 'list_changed after revoke' });
      expect((await agent.listTools()).tools.some((t) => t.name.startsWith('workstation_'))).toBe(false);

      const revoked = JSON.parse((await runCli(masterHome, ['slave', 'revoked', '--json'])).stdout).revoked;
      expect(revoked).toEqual(
        expect.arrayContaining([expect.objectContaining({ host_id: 'workstation', reason: 'Compromised' })]),
      );
      expect((await runCli(masterHome, ['slave', 'revoked'])).stdout).toMatch(
        /workstation\s+\S+\s+\S+\s+Compromised/,
      );

      const restarted = startSlave(homes.workstation);
      expect((await restarted.exited).code).toBe(10);
      expect(restarted.stderr()).toContain('Credentials revoked. Please re-pair with master');

      // Pairing again with a new key brings it back.
      await pairSlave(master, homes.workstation, 'workstation');
      slaves.workstation = startSlave(homes.workstation);
      await waitForSlaveStatus(master, 'workstation', 'connected');
      await waitFor(
        async () => (await agent.listTools()).tools.some((t) => t.name === 'workstation_echo_echo'),
        {
          what: 'workstation tools back after re-pairing',
        },
      );
    } finally {
      await agent.close();
    }
  });
});

describe('slave lifecycle', () => {
  it('a detached slave keeps trying while the master is down, connects when it is up, and stops on request', async () => {
    const masterHome = makeHome('m-life');
    let master = await startDaemon({ home: masterHome, args: FAST_HEARTBEAT });
    const port = master.clusterPort!;
    const slaveHome = makeHome('s-life');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoEntry(join(slaveHome, 'events.log'), 'life') } });
    await pairSlave(master, slaveHome, 'nomad');
    const second = makeHome('s-life2');
    await pairSlave(master, second, 'drifter');
    await master.stop();

    const started = await runCli(slaveHome, ['slave', 'start', '--detach', ...FAST_HEARTBEAT]);
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(/Slave started in the background \(pid \d+\): backoff/);
    const down = JSON.parse((await runCli(slaveHome, ['slave', 'status', '--json'])).stdout);
    expect(down).toMatchObject({ running: true, state: expect.stringMatching(/backoff|connecting/) });
    const again = await runCli(slaveHome, ['slave', 'start', '--detach']);
    expectRefusal(again, 1, /^diane: a Diane slave is already running for this home \(pid \d+\)$/);

    // A slave whose certificate has expired gives up with its own message and exit code.
    const expiredHome = makeHome('s-expired');
    const creds = JSON.parse(readFileSync(join(second, 'slave-credentials.json'), 'utf8'));
    writeFileSync(
      join(expiredHome, 'slave-credentials.json'),
      JSON.stringify({ ...creds, expires_at: new Date(Date.now() - 1000).toISOString() }),
      { mode: 0o600 },
    );
    const expired = await runCli(expiredHome, ['slave', 'start']);
    expect(expired.code).toBe(11);
    expect(expired.stderr).toContain('Certificate expired. Please re-pair with master');

    master = await startDaemon({
      home: masterHome,
      args: [...FAST_HEARTBEAT, '--listen', `127.0.0.1:${port}`],
    });
    try {
      // The slave backed off up to its cap while the master was down.
      await waitForSlaveStatus(master, 'nomad', 'connected', 70_000);
      const status = JSON.parse((await runCli(slaveHome, ['slave', 'status', '--json'])).stdout);
      expect(status).toMatchObject({ running: true, state: 'connected', host_id: 'nomad' });

      const stop = await runCli(slaveHome, ['slave', 'stop']);
      expect(stop.code).toBe(0);
      const stopped = JSON.parse((await runCli(slaveHome, ['slave', 'status', '--json'])).stdout);
      expect(stopped).toMatchObject({ running: false, state: 'stopped' });
      await waitForSlaveStatus(master, 'nomad', 'disconnected');
      const none = await runCli(slaveHome, ['slave', 'stop']);
      expectRefusal(none, 1, 'no Diane slave is running for this home');

      const all = await runCli(masterHome, [
        'slave',
        'revoke',
        '--all',
        '--reason',
        'rotation',
        '--yes',
        '--json',
      ]);
      expect(all.code).toBe(0);
      expect(
        JSON.parse(all.stdout)
          .revoked.map((r: { host_id: string }) => r.host_id)
          .sort(),
      ).toEqual(['drifter', 'nomad']);
      const list = await slavesOf(master);
      expect(list.every((s) => !s.enabled)).toBe(true);
    } finally {
      // The detached slave is not a child of this test; never leave it behind.
      const pidFile = join(slaveHome, 'slave.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      if (pid > 0) trackPid(pid);
      await master.stop();
    }
  }, 150_000);
});
