import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { WebSocketTransport } from '../../src/cluster/webSocketTransport.js';
import { runCli } from '../helpers/cli.js';
import { type CliProcess, pairSlave, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { readEvents } from '../helpers/procs.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface ExposureJson {
  server: string;
  tools: { exposed: string[]; hidden: string[] };
  prompts: { exposed: string[]; hidden: string[] };
  resources: { exposed: string[]; hidden: string[] };
  resourceTemplates: { exposed: string[]; hidden: string[] };
}

/**
 * Host consent with real processes: the slave's owner hides entries of its echo server in the
 * slave's own mcp-servers.json; the master never sees them, and the slave refuses them itself.
 */
describe('host consent: expose/hide on a slave', () => {
  let master: DaemonHandle;
  let slaveHome: string;
  let slave: CliProcess;
  let events: string;

  const writeConfig = (hide: string[]) =>
    writeServersConfig(slaveHome, {
      mcpServers: {
        echo: echoServerEntry({ events, name: 'ws-echo', env: { FIXTURE_CATALOG: '1' }, extra: { hide } }),
      },
    });

  const statusJson = async () =>
    JSON.parse((await runCli(slaveHome, ['slave', 'status', '--json'])).stdout) as {
      state: string;
      exposure?: ExposureJson[];
    };

  beforeAll(async () => {
    master = await startDaemon({ home: makeHome('m-consent') });
    slaveHome = makeHome('s-consent');
    events = join(slaveHome, 'events.log');
    writeConfig(['crash', 'resource:fixture://whoami']);
    await pairSlave(master, slaveHome, 'ws');
    slave = startSlave(slaveHome);
    await waitForSlaveStatus(master, 'ws', 'connected');
  });

  afterAll(async () => {
    await slave?.stop().catch(() => undefined);
    await master?.stop().catch(() => undefined);
  });

  it("keeps a hidden tool out of the master's lists, and a call for it is an unknown tool", async () => {
    const agent = await connectHttp(master.mcpUrl);
    try {
      const tools = await waitFor(
        async () => {
          const names = (await agent.listTools()).tools.map((t) => t.name);
          return names.includes('ws_echo_echo') && names;
        },
        { what: "the slave's tools on the master" },
      );
      expect(tools).not.toContain('ws_echo_crash');
      expect(tools).toContain('ws_echo_pid');
      const hidden = await agent.callTool({ name: 'ws_echo_crash', arguments: {} }).catch((e: Error) => e);
      const unknown = await agent.callTool({ name: 'ws_echo_nope', arguments: {} }).catch((e: Error) => e);
      expect(hidden).toBeInstanceOf(Error);
      expect((hidden as Error).message.replace('ws_echo_crash', 'X')).toBe(
        (unknown as Error).message.replace('ws_echo_nope', 'X'),
      );
      expect(readEvents(events).filter((l) => l.startsWith('call crash'))).toEqual([]);

      const resources = (await agent.listResources()).resources.map((r) => r.uri);
      expect(resources).not.toContain('diane://ws/echo/fixture://whoami');
      const templates = (await agent.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      expect(templates).toContain('diane://ws/echo/fixture://echo/{word}');
      expect(textOf(await agent.callTool({ name: 'ws_echo_echo', arguments: { text: 'hi' } }))).toContain(
        'hi',
      );
    } finally {
      await agent.close();
    }
  });

  it('refuses on the slave itself a request the master forwards for a hidden entry, and logs it', async () => {
    // The master forwards any URI of a slave (resources are not looked up in its lists), so this
    // read crosses the link and meets the slave's own refusal.
    const agent = await connectHttp(master.mcpUrl);
    try {
      const read = await agent
        .readResource({ uri: 'diane://ws/echo/fixture://whoami' })
        .catch((e: Error) => e);
      expect(read).toBeInstanceOf(Error);
      expect((read as Error).message).toMatch(/Unknown resource: diane:\/\/echo\/fixture:\/\/whoami/);
      // The template's resources are exposed: the same server answers those.
      const word = await agent.readResource({ uri: 'diane://ws/echo/fixture://echo/alpha' });
      expect(JSON.stringify(word.contents)).toContain('ws-echo says alpha');
    } finally {
      await agent.close();
    }
    const refusal = await waitFor(
      () =>
        slave
          .stderr()
          .split('\n')
          .filter((l) => l.includes('"refused a request for an entry'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)[0],
      { what: "the refusal in the slave's log" },
    );
    expect(refusal).toMatchObject({
      level: 40,
      method: 'resources/read',
      server: 'echo',
      kind: 'resource',
      name: 'fixture://whoami',
    });
  });

  it('`diane slave status` shows what is exposed and hidden', async () => {
    const status = await waitFor(
      async () => {
        const s = await statusJson();
        return s.exposure?.[0]?.tools.exposed.includes('echo') && s;
      },
      { what: 'the exposure in the status file' },
    );
    expect(status.state).toBe('connected');
    const [echo] = status.exposure!;
    expect(echo).toMatchObject({
      server: 'echo',
      tools: { hidden: ['crash'] },
      prompts: { exposed: ['greet'], hidden: [] },
      resources: { exposed: [], hidden: ['fixture://whoami'] },
      resourceTemplates: { exposed: ['fixture://echo/{word}'], hidden: [] },
    });
    expect(echo!.tools.exposed).toContain('pid');
    const text = (await runCli(slaveHome, ['slave', 'status'])).stdout;
    expect(text).toContain('Exposed to the master');
    expect(text).toMatch(
      new RegExp(
        `echo  tools ${echo!.tools.exposed.length} exposed, 1 hidden; prompts 1 exposed; resources 1 exposed, 1 hidden`,
      ),
    );
  });

  it('applies new expose/hide lists on SIGHUP without restarting the server', async () => {
    writeConfig(['crash', 'pid']);
    process.kill(slave.pid, 'SIGHUP');
    const agent = await connectHttp(master.mcpUrl);
    try {
      await waitFor(
        async () => {
          const names = (await agent.listTools()).tools.map((t) => t.name);
          return names.includes('ws_echo_echo') && !names.includes('ws_echo_pid');
        },
        { what: 'ws_echo_pid to leave the master after the reload' },
      );
      await waitFor(
        async () =>
          (await agent.listResources()).resources.some((r) => r.uri === 'diane://ws/echo/fixture://whoami'),
        { what: 'the whoami resource to come back' },
      );
    } finally {
      await agent.close();
    }
    await waitFor(async () => (await statusJson()).exposure?.[0]?.tools.hidden.length === 2, {
      what: 'the new exposure in the status file',
    });
    expect((await statusJson()).exposure?.[0]?.tools.hidden).toEqual(['crash', 'pid']);
    expect(readEvents(events).filter((l) => l.startsWith('start '))).toHaveLength(1);
  });

  it('a compromised master that asks the slave directly for a hidden tool is refused by the slave, which audits it', async () => {
    // The master's own keys in hostile hands: a WebSocket server with its certificate on its
    // port, speaking MCP to the slave and asking for what the slave's owner hid.
    const port = master.clusterPort!;
    const read = (name: string) => readFileSync(join(master.home, name), 'utf8');
    await master.stop();
    const rogue = createHttpsServer({
      cert: `${read('server-cert.pem').trim()}\n${read('slave-ca-cert.pem').trim()}\n`,
      key: read('server-key.pem'),
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: false,
    });
    const wss = new WebSocketServer({ server: rogue, path: '/slave/connect' });
    const linked = new Promise<Client>((resolve, reject) => {
      wss.once('connection', (ws) => {
        const client = new Client({ name: 'rogue-master', version: '1' });
        client.connect(new WebSocketTransport(ws)).then(() => resolve(client), reject);
      });
    });
    await new Promise<void>((resolve) => rogue.listen(port, '127.0.0.1', resolve));
    try {
      const client = await linked;
      const tools = (await client.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('echo_echo');
      expect(tools).not.toContain('echo_crash');
      const refused = await client.callTool({ name: 'echo_crash', arguments: {} }).then(
        () => 'answered',
        (e: Error) => e.message,
      );
      expect(refused).toMatch(/Unknown tool: echo_crash/);
      // The hidden tool never ran: the fixture would have exited.
      expect(readEvents(events).some((l) => l.startsWith('call crash'))).toBe(false);
      const rows = await waitFor(
        async () => {
          const res = await runCli(slaveHome, ['slave', 'audit', '--json', '--outcome', 'refused_host']);
          const parsed = res.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          return parsed.some((r) => r.exposed_name === 'echo_crash') && parsed;
        },
        { what: "the refusal in the slave's own audit" },
      );
      expect(rows.find((r) => r.exposed_name === 'echo_crash')).toMatchObject({
        kind: 'tools/call',
        server: 'echo',
        original_name: 'crash',
        outcome: 'refused_host',
      });
      await client.close();
    } finally {
      wss.close();
      rogue.closeAllConnections();
      await new Promise((resolve) => rogue.close(resolve));
    }
  });
});
