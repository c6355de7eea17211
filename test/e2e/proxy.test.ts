import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { startHttpEchoServer } from '../helpers/fixtures.js';
import { echoServerEntry, filesystemServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, connectStdioBridge, textOf } from '../helpers/mcpClient.js';
import { descendantPids, isAlive, pidsFromEvents, readEvents } from '../helpers/procs.js';
import { expectRefusal } from '../helpers/refusal.js';
import { waitFor } from '../helpers/wait.js';

const echoServer = (events: string, env: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
  echoServerEntry({ events, env, extra });

afterAll(() => cleanupProcesses());

describe('single-host proxy (real daemon, real upstreams)', () => {
  let home: string;
  let events: string;
  let fsRoot: string;
  let daemon: DaemonHandle;
  const clients: Client[] = [];

  beforeAll(async () => {
    home = makeHome('proxy');
    events = join(home, 'echo-events.log');
    fsRoot = join(home, 'files');
    mkdirSync(join(fsRoot, 'docs'), { recursive: true });
    writeFileSync(join(fsRoot, 'docs', 'proposal.md'), '# The proposal\n');
    writeServersConfig(home, {
      mcpServers: {
        filesystem: filesystemServerEntry(fsRoot),
        echo: echoServer(events),
        quick: echoServer(events, { FIXTURE_NAME: 'quick' }, { timeout: '700ms' }),
        'Bad Name': { command: 'nope' },
        broken: { command: 42 },
      },
    });
    daemon = await startDaemon({ home });
    await waitFor(
      async () => (await runCli(home, ['servers', 'list', '--json'])).stdout.includes('"connected"'),
      {
        what: 'upstreams connected',
      },
    );
    await waitFor(
      async () => {
        const res = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
        return res.servers.every((s: { state: string }) => s.state === 'connected');
      },
      { what: 'all upstreams connected' },
    );
  });

  afterEach(async () => {
    while (clients.length) await clients.pop()?.close();
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('lists and calls tools of the filesystem server and the fixture over HTTP', async () => {
    const client = await connectHttp(daemon.mcpUrl);
    clients.push(client);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toContain('filesystem_search_files');
    expect(names).toContain('echo_echo');
    expect(names).toContain('quick_echo');
    expect(names.some((n) => n.startsWith('broken_'))).toBe(false);

    const found = await client.callTool({
      name: 'filesystem_search_files',
      arguments: { path: fsRoot, pattern: '**/*proposal*' },
    });
    expect(textOf(found)).toContain('proposal.md');
    const echoed = await client.callTool({ name: 'echo_echo', arguments: { text: 'over http' } });
    expect(textOf(echoed)).toBe('over http');
  });

  it('serves the same tools over `diane mcp` (stdio bridge)', async () => {
    const client = await connectStdioBridge(home);
    clients.push(client);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('filesystem_read_text_file');
    const read = await client.callTool({
      name: 'filesystem_read_text_file',
      arguments: { path: join(fsRoot, 'docs', 'proposal.md') },
    });
    expect(textOf(read)).toContain('The proposal');
    const sum = await client.callTool({ name: 'echo_add', arguments: { a: 2, b: 40 } });
    expect(textOf(sum)).toBe('42');
  });

  it('reports a broken config entry with the path of the bad field while the others run', async () => {
    const res = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
    const paths = res.configErrors.map((e: { path: string }) => e.path);
    expect(paths).toContain('mcpServers.broken.command');
    expect(paths.some((p: string) => p.startsWith('mcpServers.Bad Name'))).toBe(true);
    const text = (await runCli(home, ['servers', 'list'])).stdout;
    expect(text).toMatch(/filesystem\s+stdio\s+connected/);
  });

  it('forwards progress and passes an 8 MiB result intact', async () => {
    const client = await connectHttp(daemon.mcpUrl);
    clients.push(client);
    const progress: number[] = [];
    const slow = await client.callTool(
      { name: 'echo_slow', arguments: { ms: 300, steps: 3 } },
      { onprogress: (p) => progress.push(p.progress) },
    );
    expect(textOf(slow)).toContain('slept');
    expect(progress).toEqual([1, 2, 3]);

    const bytes = 8 * 1024 * 1024;
    const big = await client.callTool({ name: 'echo_big', arguments: { bytes } });
    const text = textOf(big);
    expect(text.length).toBe(bytes);
    const pattern = 'abcdefghijklmnopqrstuvwxyz0123456789';
    expect(text.slice(0, 36)).toBe(pattern);
    expect(text.slice(bytes - 10)).toBe(pattern.repeat(Math.ceil(bytes / 36)).slice(bytes - 10, bytes));
  });

  it('carries an agent cancellation to the upstream', async () => {
    const client = await connectHttp(daemon.mcpUrl);
    clients.push(client);
    const count = (prefix: string) => readEvents(events).filter((l) => l.startsWith(prefix)).length;
    const callsBefore = count('call slow');
    const cancelsBefore = count('cancelled slow');
    const abort = new AbortController();
    const call = client.callTool(
      { name: 'echo_slow', arguments: { ms: 20_000, steps: 40 } },
      { signal: abort.signal },
    );
    await waitFor(() => count('call slow') > callsBefore, { what: 'slow call reached the fixture' });
    abort.abort();
    await expect(call).rejects.toThrow();
    await waitFor(() => count('cancelled slow') > cancelsBefore, {
      what: 'cancellation reaching the fixture',
    });
  });

  it('times a call out after the per-server timeout and cancels it upstream', async () => {
    const client = await connectHttp(daemon.mcpUrl);
    clients.push(client);
    const before = readEvents(events).filter((l) => l.startsWith('cancelled')).length;
    const result = await client.callTool({ name: 'quick_slow', arguments: { ms: 10_000, steps: 1 } });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/timed out/);
    await waitFor(() => readEvents(events).filter((l) => l.startsWith('cancelled')).length > before, {
      what: 'timeout cancellation reaching the fixture',
    });
  });

  it('restarts the idle timeout on every progress notification, even when the agent asked for none', async () => {
    const client = await connectHttp(daemon.mcpUrl);
    clients.push(client);
    // quick has a 700ms timeout; this call lasts 2.1s but reports progress every 300ms.
    const result = await client.callTool({ name: 'quick_slow', arguments: { ms: 2100, steps: 7 } });
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toContain('slept 2100ms');
  });

  it('serves 2026-07-28 clients (per-request protocol) on the same endpoint', async () => {
    const modern = new Client(
      { name: 'modern-agent', version: '1' },
      { versionNegotiation: { mode: 'auto' } },
    );
    await modern.connect(
      new StreamableHTTPClientTransport(new URL(daemon.mcpUrl), {
        requestInit: { headers: daemon.authHeaders },
      }),
    );
    try {
      expect(modern.getNegotiatedProtocolVersion()).toBe('2026-07-28');
      const names = (await modern.listTools()).tools.map((t) => t.name);
      expect(names).toContain('filesystem_search_files');
      expect(textOf(await modern.callTool({ name: 'echo_echo', arguments: { text: 'modern' } }))).toBe(
        'modern',
      );
    } finally {
      await modern.close();
    }
  });

  it('tells the agent when the tool list changes', async () => {
    let changes = 0;
    const client = await connectHttp(daemon.mcpUrl, { onToolsChanged: () => changes++ });
    clients.push(client);
    await client.callTool({ name: 'echo_add_tool', arguments: { name: 'dynamic' } });
    await waitFor(() => changes > 0, { what: 'tools/list_changed at the agent' });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('echo_dynamic');
    const afterAdd = changes;
    await client.callTool({ name: 'echo_remove_tool', arguments: { name: 'dynamic' } });
    await waitFor(() => changes > afterAdd, { what: 'tools/list_changed after the removal' });
    expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('echo_dynamic');
  });

  it('restarts an upstream killed mid-session, and its tools come back', async () => {
    let changes = 0;
    const client = await connectHttp(daemon.mcpUrl, { onToolsChanged: () => changes++ });
    clients.push(client);
    const pid = Number(textOf(await client.callTool({ name: 'echo_pid', arguments: {} })));
    expect(isAlive(pid)).toBe(true);
    // The list is read only after a list_changed, so each step shows that the agent was told.
    let seen = 0;
    const announced = (present: boolean, what: string) =>
      waitFor(
        async () => {
          if (changes === seen) return false;
          seen = changes;
          return (await client.listTools()).tools.some((t) => t.name === 'echo_echo') === present;
        },
        { what, timeoutMs: 20_000 },
      );
    process.kill(pid, 'SIGKILL');
    await announced(false, 'list_changed without the echo tools while it is down');
    const gone = await client.callTool({ name: 'echo_echo', arguments: { text: 'x' } });
    expect(gone.isError).toBe(true);
    expect(textOf(gone)).toMatch(/not available/);
    // Fail open: the other upstreams keep working.
    expect(textOf(await client.callTool({ name: 'quick_echo', arguments: { text: 'still here' } }))).toBe(
      'still here',
    );
    await announced(true, 'list_changed with the echo tools back after the restart');
    const newPid = Number(textOf(await client.callTool({ name: 'echo_pid', arguments: {} })));
    expect(newPid).not.toBe(pid);
    const servers = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
    expect(servers.servers.find((s: { name: string }) => s.name === 'echo').restarts).toBeGreaterThanOrEqual(
      1,
    );
  });

  it('calls a tool from the CLI and lists tools', async () => {
    const res = await runCli(home, ['tools', 'call', 'echo_echo', '--args', '{"text":"from the cli"}']);
    expect(res.code).toBe(0);
    expect(res.stdout.trim()).toBe('from the cli');
    const bad = await runCli(home, ['tools', 'call', 'echo_echo', '--args', '{not json']);
    expectRefusal(bad, 2, /^diane: --args is not valid JSON: /);
    const unknown = await runCli(home, ['tools', 'call', 'nope_nothing']);
    expectRefusal(unknown, 1, /^diane: .*Unknown tool:? "?nope_nothing/);
    const list = JSON.parse((await runCli(home, ['tools', 'list', '--json'])).stdout);
    expect(list.tools.some((t: { name: string }) => t.name === 'filesystem_search_files')).toBe(true);
  });

  it('creates the admin socket with mode 0600', () => {
    expect(statSync(join(home, 'diane.sock')).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'slave-ca-key.pem')).mode & 0o777).toBe(0o600);
  });
});

describe('reload, collisions and shutdown', () => {
  it('reloads only changed servers, reports refused names, and leaves no child after SIGTERM', async () => {
    const home = makeHome('reload');
    const events = join(home, 'events.log');
    const longName = `t${'x'.repeat(70)}`;
    writeServersConfig(home, {
      mcpServers: {
        alpha: echoServer(events, { FIXTURE_NAME: 'alpha', FIXTURE_EXTRA_TOOLS: `dup,dup,${longName}` }),
        beta: echoServer(events, { FIXTURE_NAME: 'beta' }),
      },
    });
    const daemon = await startDaemon({ home, args: ['--max-tool-name-length', '64'] });
    try {
      await waitFor(
        async () => (await runCli(home, ['tools', 'list', '--json'])).stdout.includes('beta_echo'),
        {
          what: 'beta tools',
        },
      );
      await waitFor(
        async () => (await runCli(home, ['tools', 'list', '--json'])).stdout.includes('alpha_echo'),
        {
          what: 'alpha tools',
        },
      );
      const all = JSON.parse((await runCli(home, ['tools', 'list', '--all', '--json'])).stdout);
      const exposed = all.tools.map((t: { name: string }) => t.name);
      expect(exposed).not.toContain(`alpha_${longName}`);
      expect(exposed).not.toContain('alpha_dup');
      expect(
        all.rejected.filter((r: { exposedName: string; reason: string }) => r.exposedName === 'alpha_dup'),
      ).toEqual([
        expect.objectContaining({ reason: 'collision' }),
        expect.objectContaining({ reason: 'collision' }),
      ]);
      for (const name of exposed) expect(name.length).toBeLessThanOrEqual(64);
      expect(all.rejected).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ exposedName: `alpha_${longName}`, reason: 'too-long' }),
        ]),
      );
      const text = (await runCli(home, ['tools', 'list', '--all'])).stdout;
      expect(text).toContain('too-long');

      const servers = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
      const alphaPid = servers.servers.find((s: { name: string }) => s.name === 'alpha').pid;
      const betaPid = servers.servers.find((s: { name: string }) => s.name === 'beta').pid;

      writeServersConfig(home, {
        mcpServers: {
          alpha: echoServer(events, { FIXTURE_NAME: 'alpha', FIXTURE_EXTRA_TOOLS: `dup,dup,${longName}` }),
          beta: echoServer(events, { FIXTURE_NAME: 'beta', CHANGED: '1' }),
          gamma: echoServer(events, { FIXTURE_NAME: 'gamma' }),
        },
      });
      const reload = JSON.parse((await runCli(home, ['servers', 'reload', '--json'])).stdout);
      expect(reload.unchanged).toEqual(['alpha']);
      expect(reload.restarted).toEqual(['beta']);
      expect(reload.added).toEqual(['gamma']);
      await waitFor(
        async () => (await runCli(home, ['tools', 'list', '--json'])).stdout.includes('gamma_echo'),
        {
          what: 'gamma tools',
        },
      );
      const after = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
      expect(after.servers.find((s: { name: string }) => s.name === 'alpha').pid).toBe(alphaPid);
      await waitFor(
        async () => {
          const s = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
          const pid = s.servers.find((x: { name: string }) => x.name === 'beta').pid;
          return pid && pid !== betaPid;
        },
        { what: 'beta restarted' },
      );
      expect(isAlive(betaPid)).toBe(false);

      // SIGHUP reloads too: remove gamma.
      writeServersConfig(home, {
        mcpServers: {
          alpha: echoServer(events, { FIXTURE_NAME: 'alpha', FIXTURE_EXTRA_TOOLS: `dup,dup,${longName}` }),
          beta: echoServer(events, { FIXTURE_NAME: 'beta', CHANGED: '1' }),
        },
      });
      process.kill(daemon.pid, 'SIGHUP');
      await waitFor(
        async () => !(await runCli(home, ['tools', 'list', '--json'])).stdout.includes('gamma_echo'),
        {
          what: 'gamma removed by SIGHUP',
        },
      );

      const children = descendantPids(daemon.pid);
      expect(children.length).toBeGreaterThan(0);
      const result = await daemon.stop('SIGTERM');
      expect(result.code).toBe(0);
      const started = pidsFromEvents(events);
      await waitFor(() => [...children, ...started].every((pid) => !isAlive(pid)), {
        what: 'no child process left after SIGTERM',
        timeoutMs: 5000,
      });
    } finally {
      // Cleanup only: an expect here would replace the body's failure with its own.
      await daemon.stop('SIGTERM').catch(() => undefined);
    }
  });
});

describe('front-end rules', () => {
  it('requires a bearer token when the MCP endpoint is not on loopback', async () => {
    const home = makeHome('token');
    writeServersConfig(home, { mcpServers: {} });
    const daemon = await startDaemon({ home, args: [], mcpHost: '0.0.0.0' });
    try {
      const info = JSON.parse((await runCli(home, ['info', '--json'])).stdout);
      expect(info.mcp.tokenRequired).toBe(true);
      const token: string = info.mcp.token;
      expect(token.length).toBeGreaterThanOrEqual(32);
      const url = `http://127.0.0.1:${daemon.port}/mcp`;
      const init = {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      };
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      const anonymous = await fetch(url, { method: 'POST', headers, body: JSON.stringify(init) });
      expect(anonymous.status).toBe(401);
      const wrong = await fetch(url, {
        method: 'POST',
        headers: { ...headers, authorization: 'Bearer nope' },
        body: JSON.stringify(init),
      });
      expect(wrong.status).toBe(401);
      const client = await connectHttp(url, { headers: { authorization: `Bearer ${token}` } });
      expect((await client.listTools()).tools).toEqual([]);
      await client.close();
      // diane mcp reads the token from the daemon and works.
      const bridge = await connectStdioBridge(home);
      expect((await bridge.listTools()).tools).toEqual([]);
      await bridge.close();
    } finally {
      await daemon.stop();
    }
  });

  it('`diane mcp` survives a daemon restart', async () => {
    const home = makeHome('bridge');
    const events = join(home, 'events.log');
    writeServersConfig(home, { mcpServers: { echo: echoServer(events) } });
    let daemon = await startDaemon({ home });
    const port = daemon.port;
    await waitFor(
      async () => (await runCli(home, ['tools', 'list', '--json'])).stdout.includes('echo_echo'),
      {
        what: 'echo tools',
      },
    );
    const bridge = await connectStdioBridge(home);
    try {
      expect(textOf(await bridge.callTool({ name: 'echo_echo', arguments: { text: 'one' } }))).toBe('one');
      await daemon.stop();
      const away = await bridge.callTool({ name: 'echo_echo', arguments: { text: 'two' } });
      expect(away.isError).toBe(true);
      daemon = await startDaemon({ home, mcpPort: port });
      await waitFor(
        async () => !(await bridge.callTool({ name: 'echo_echo', arguments: { text: 'three' } })).isError,
        { what: 'bridge calls work again', timeoutMs: 30_000 },
      );
    } finally {
      await bridge.close();
      await daemon.stop();
    }
  });

  it('`diane mcp` without a daemon says how to start one and exits non-zero', async () => {
    const home = makeHome('nodaemon');
    const res = await runCli(home, ['mcp'], { timeoutMs: 15_000 });
    expectRefusal(
      res,
      3,
      `No Diane daemon is running for DIANE_HOME=${home}. Start one with \`diane serve\` (or \`npm start\`).`,
    );
    expect(res.stdout).toBe('');
  });

  it('refuses a corrupt database with a clear error and leaves the file alone', async () => {
    const home = makeHome('corrupt');
    const db = join(home, 'diane.db');
    writeFileSync(db, 'this is not a database, but somebody may want it back\n'.repeat(100), { mode: 0o600 });
    const before = readFileSync(db);
    const res = await runCli(home, ['serve', '--mcp-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0'], {
      timeoutMs: 15_000,
    });
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/not a valid Diane database/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(readFileSync(db).equals(before)).toBe(true);
  });

  it('says clearly when a port is taken', async () => {
    const home = makeHome('busy');
    const first = await startDaemon({ home });
    try {
      const other = makeHome('busy2');
      const res = await runCli(
        other,
        ['serve', '--mcp-listen', `127.0.0.1:${first.port}`, '--listen', '127.0.0.1:0'],
        {
          timeoutMs: 15_000,
        },
      );
      expect(res.code).toBe(5);
      expect(res.stderr).toMatch(
        /cannot listen on 127\.0\.0\.1:\d+ \(--mcp-listen\): the address is already in use/,
      );
      const twice = await runCli(home, ['serve', '--mcp-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0'], {
        timeoutMs: 15_000,
      });
      expectRefusal(twice, 1, /^diane: another Diane daemon is already running with this DIANE_HOME/);
    } finally {
      await first.stop();
    }
  });

  it('gives usage errors a clear message and exit code 2', async () => {
    const home = makeHome('usage');
    const bad = await runCli(home, ['serve', '--call-timeout', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid duration "soon"/);
    const unknown = await runCli(home, ['frobnicate']);
    expectRefusal(unknown, 2, /unknown command 'frobnicate'/);
  });
});

describe('HTTP upstreams', () => {
  it('serves a Streamable HTTP upstream and reconnects when it comes back', async () => {
    const home = makeHome('http-up');
    const events = join(home, 'events.log');
    let web = await startHttpEchoServer({ name: 'web', events });
    const port = web.port;
    writeServersConfig(home, { mcpServers: { web: { type: 'http', url: web.url } } });
    const daemon = await startDaemon({ home });
    try {
      await waitFor(
        async () => (await runCli(home, ['tools', 'list', '--json'])).stdout.includes('web_echo'),
        {
          what: 'web tools',
        },
      );
      const client = await connectHttp(daemon.mcpUrl);
      try {
        expect(textOf(await client.callTool({ name: 'web_echo', arguments: { text: 'via http' } }))).toBe(
          'via http',
        );
        await web.stop();
        const down = await client.callTool({ name: 'web_echo', arguments: { text: 'anyone?' } });
        expect(down.isError).toBe(true);
        expect(textOf(down)).toMatch(/not available/);
        await waitFor(async () => !(await client.listTools()).tools.some((t) => t.name === 'web_echo'), {
          what: 'web tools removed while it is down',
        });
        web = await startHttpEchoServer({ name: 'web', events, port });
        await waitFor(async () => (await client.listTools()).tools.some((t) => t.name === 'web_echo'), {
          what: 'web tools back',
          timeoutMs: 20_000,
        });
        expect(textOf(await client.callTool({ name: 'web_echo', arguments: { text: 'again' } }))).toBe(
          'again',
        );
      } finally {
        await client.close();
      }
    } finally {
      await daemon.stop();
      await web.stop();
    }
  });
});
