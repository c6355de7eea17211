// A smoke test of the fixtures on their own, without Diane: only the behaviours Diane's e2e tests
// read (names, pids, extra tools, event lines, list_changed, a server that never starts), so that
// a broken fixture fails here by name instead of as a mystery in a Diane test. The SDK's own
// behaviour is not tested here (see docs/testing.md).
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startHttpEchoServer } from '../helpers/fixtures.js';
import { fixturePath, makeHome, removeHomes } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { pidsFromEvents, readEvents } from '../helpers/procs.js';
import { cleanupProcesses, trackClosable } from '../helpers/registry.js';
import { waitFor } from '../helpers/wait.js';

interface Connected {
  client: Client;
  events: string;
}

interface FixtureOptions {
  env?: Record<string, string>;
  onToolsChanged?: () => void;
}

async function connectStdioFixture(
  opts: FixtureOptions = {},
): Promise<Connected & { transport: StdioClientTransport }> {
  const events = join(makeHome('fixture'), 'events.log');
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [fixturePath('echo-server.mjs')],
    env: { ...getDefaultEnvironment(), FIXTURE_EVENTS: events, ...opts.env },
    stderr: 'pipe',
    maxBufferSize: 128 * 1024 * 1024,
  });
  transport.stderr?.on('data', (chunk: Buffer) => {
    if (process.env.DIANE_TEST_VERBOSE === '1') process.stderr.write(chunk);
  });
  const client = new Client({ name: 'fixture-test', version: '1.0.0' });
  const onToolsChanged = opts.onToolsChanged;
  if (onToolsChanged)
    client.setNotificationHandler('notifications/tools/list_changed', () => onToolsChanged());
  await client.connect(transport);
  trackClosable(client);
  return { client, events, transport };
}

async function connectHttpFixture(opts: FixtureOptions = {}): Promise<Connected> {
  const events = join(makeHome('fixture'), 'events.log');
  const server = await startHttpEchoServer({ events, env: opts.env });
  const client = await connectHttp(server.url, { onToolsChanged: opts.onToolsChanged });
  return { client, events };
}

afterEach(() => cleanupProcesses());
afterAll(async () => {
  await cleanupProcesses();
  removeHomes();
});

describe.each([
  { transport: 'stdio', connect: connectStdioFixture },
  { transport: 'streamable http', connect: connectHttpFixture },
])('echo fixture over $transport', ({ connect }) => {
  it('echoes, logs a slow call and its cancellation, and announces tools added and removed', async () => {
    let changes = 0;
    const { client, events } = await connect({ onToolsChanged: () => changes++ });
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }))).toBe('hello');

    const abort = new AbortController();
    const call = client
      .callTool({ name: 'slow', arguments: { ms: 30_000, steps: 30 } }, { signal: abort.signal })
      .catch((err: unknown) => err);
    const started = await waitFor(() => readEvents(events).find((l) => l.startsWith('call slow')), {
      what: 'the "call slow" line',
    });
    abort.abort();
    expect(await call).toBeInstanceOf(Error);
    const id = started.split(' ')[2];
    await waitFor(() => readEvents(events).includes(`cancelled slow ${id} echo`), {
      what: 'the "cancelled slow" line',
    });

    await client.callTool({ name: 'add_tool', arguments: { name: 'later' } });
    await waitFor(() => changes >= 1, { what: 'list_changed after add_tool' });
    expect(textOf(await client.callTool({ name: 'later', arguments: {} }))).toBe('dynamic later');
    await client.callTool({ name: 'remove_tool', arguments: { name: 'later' } });
    await waitFor(() => changes >= 2, { what: 'list_changed after remove_tool' });
    expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('later');
  });
});

describe('echo fixture over stdio: process behaviour', () => {
  it('names itself, reports its pid, lists extra tools (a repeated name twice)', async () => {
    const { client, events, transport } = await connectStdioFixture({
      env: { FIXTURE_NAME: 'alpha', FIXTURE_EXTRA_TOOLS: 'dup,dup,x-tool' },
    });
    expect(client.getServerVersion()?.name).toBe('alpha');
    const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
    expect(pid).toBe(transport.pid);
    expect(pidsFromEvents(events)).toEqual([pid]);
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.filter((n) => n === 'dup')).toHaveLength(2);
    expect(textOf(await client.callTool({ name: 'x-tool', arguments: { text: 'hi' } }))).toBe('hi');
    expect(textOf(await client.callTool({ name: 'dup', arguments: {} }))).toBe('dup');
  });

  it('FIXTURE_CRASH_ON_START=1 is a server that never comes up', async () => {
    const events = join(makeHome('fixture'), 'events.log');
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [fixturePath('echo-server.mjs')],
      env: { ...getDefaultEnvironment(), FIXTURE_EVENTS: events, FIXTURE_CRASH_ON_START: '1' },
      stderr: 'ignore',
    });
    const client = new Client({ name: 'fixture-test', version: '1.0.0' });
    await expect(client.connect(transport, { timeout: 10_000 })).rejects.toThrow();
    const pids = pidsFromEvents(events);
    expect(pids).toHaveLength(1);
    expect(readEvents(events)).toContain(`crash ${pids[0]} echo 1`);
  });
});

describe('http echo fixture', () => {
  it('shares tools added at runtime between sessions, and stops on SIGTERM', async () => {
    const events = join(makeHome('fixture'), 'events.log');
    const server = await startHttpEchoServer({ events, name: 'web' });
    let changesB = 0;
    const a = await connectHttp(server.url);
    const b = await connectHttp(server.url, { onToolsChanged: () => changesB++ });
    expect(a.getServerVersion()?.name).toBe('web');
    await a.callTool({ name: 'add_tool', arguments: { name: 'shared' } });
    await waitFor(() => changesB >= 1, { what: 'list_changed on the other session' });
    expect(textOf(await b.callTool({ name: 'shared', arguments: {} }))).toBe('dynamic shared');
    const health = await fetch(server.url.replace(/\/mcp$/, '/healthz'));
    expect(await health.json()).toEqual({ ok: true, sessions: 2 });
    await a.close();
    await waitFor(() => readEvents(events).some((l) => / closed$/.test(l) && l.startsWith('session ')), {
      what: 'DELETE to end the session',
    });
    await b.close();
    await server.stop();
    expect(readEvents(events)).toContain(`signal SIGTERM ${server.pid} web`);
  });
});
