// The MCP fixtures on their own, without Diane: this proves they work and documents what they
// do (and a few behaviours of the v2 SDK client the proxy relies on).
import { join } from 'node:path';
import { Client, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startHttpEchoServer } from '../helpers/fixtures.js';
import { fixturePath, makeHome, removeHomes } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { isAlive, pidsFromEvents, readEvents } from '../helpers/procs.js';
import { cleanupProcesses, trackClosable } from '../helpers/registry.js';
import { waitFor } from '../helpers/wait.js';

const PATTERN = 'abcdefghijklmnopqrstuvwxyz0123456789';

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
  it('lists the tool set, with an outputSchema on add', async () => {
    const { client } = await connect();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      ['add', 'add_tool', 'big', 'crash', 'echo', 'fail', 'pid', 'remove_tool', 'slow'].sort(),
    );
    const add = tools.find((t) => t.name === 'add')!;
    expect(add.outputSchema).toMatchObject({ type: 'object', properties: { sum: { type: 'number' } } });
    expect(client.getServerCapabilities()?.tools?.listChanged).toBe(true);
  });

  it('echoes, adds (with structuredContent) and fails on request', async () => {
    const { client } = await connect();
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }))).toBe('hello');
    const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
    expect(textOf(sum)).toBe('42');
    expect(sum.structuredContent).toEqual({ sum: 42 });
    const failed = await client.callTool({ name: 'fail', arguments: {} });
    expect(failed.isError).toBe(true);
    expect(textOf(failed)).toBe('fixture failure');
    // Invalid arguments are a tool error too (not a JSON-RPC error) in the v2 McpServer.
    const invalid = await client.callTool({ name: 'big', arguments: { bytes: 64 * 1024 * 1024 + 1 } });
    expect(invalid.isError).toBe(true);
  });

  it('returns an 8 MiB text intact', async () => {
    const { client } = await connect();
    const bytes = 8 * 1024 * 1024;
    const text = textOf(await client.callTool({ name: 'big', arguments: { bytes } }));
    expect(text.length).toBe(bytes);
    expect(text === PATTERN.repeat(Math.ceil(bytes / PATTERN.length)).slice(0, bytes)).toBe(true);
  });

  it('sends one progress notification per step when asked for progress', async () => {
    const { client, events } = await connect();
    const progress: { progress: number; total?: number; message?: string }[] = [];
    const result = await client.callTool(
      { name: 'slow', arguments: { ms: 150, steps: 3 } },
      { onprogress: (p) => progress.push(p) },
    );
    expect(textOf(result)).toBe('slept 150ms');
    expect(progress).toEqual([
      { progress: 1, total: 3, message: 'step 1' },
      { progress: 2, total: 3, message: 'step 2' },
      { progress: 3, total: 3, message: 'step 3' },
    ]);
    expect(readEvents(events).filter((l) => /^progress slow \d+ echo \d\/3 sent$/.test(l))).toHaveLength(3);
    expect(readEvents(events).some((l) => /^done slow \d+ echo$/.test(l))).toBe(true);
  });

  it('keeps a call alive past its timeout while progress arrives (resetTimeoutOnProgress)', async () => {
    const { client } = await connect();
    // 20 steps of 100 ms against a 1 s timeout that each progress notification restarts.
    const result = await client.callTool(
      { name: 'slow', arguments: { ms: 2000, steps: 20 } },
      { onprogress: () => undefined, timeout: 1000, resetTimeoutOnProgress: true },
    );
    expect(textOf(result)).toBe('slept 2000ms');
  });

  it('stops a call cancelled by the client and records it', async () => {
    const { client, events } = await connect();
    const abort = new AbortController();
    const call = client.callTool(
      { name: 'slow', arguments: { ms: 30_000, steps: 30 } },
      { signal: abort.signal },
    );
    const started = await waitFor(() => readEvents(events).find((l) => l.startsWith('call slow')), {
      what: 'the slow call to start',
    });
    abort.abort();
    // The v2 client rejects an aborted call with SdkError code REQUEST_TIMEOUT (sic).
    const error = await call.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(SdkError);
    expect((error as SdkError).code).toBe(SdkErrorCode.RequestTimeout);
    const id = started.split(' ')[2];
    await waitFor(() => readEvents(events).includes(`cancelled slow ${id} echo`), {
      what: 'the cancelled line',
    });
    expect(readEvents(events).some((l) => l.startsWith(`done slow ${id}`))).toBe(false);
  });

  it('is cancelled upstream when the client times a call out', async () => {
    const { client, events } = await connect();
    const error = await client
      .callTool({ name: 'slow', arguments: { ms: 30_000, steps: 1 } }, { timeout: 300 })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(error).toBeInstanceOf(SdkError);
    expect((error as SdkError).code).toBe(SdkErrorCode.RequestTimeout);
    await waitFor(() => readEvents(events).some((l) => l.startsWith('cancelled slow')), {
      what: 'the cancellation that follows a client timeout',
    });
  });

  it('adds and removes tools at runtime and says so with tools/list_changed', async () => {
    let changes = 0;
    const { client, events } = await connect({ onToolsChanged: () => changes++ });
    expect(textOf(await client.callTool({ name: 'add_tool', arguments: { name: 'later' } }))).toBe(
      'added later',
    );
    await waitFor(() => changes >= 1, { what: 'list_changed after add_tool' });
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('later');
    expect(textOf(await client.callTool({ name: 'later', arguments: {} }))).toBe('dynamic later');
    const again = await client.callTool({ name: 'add_tool', arguments: { name: 'later' } });
    expect(again.isError).toBe(true);

    await client.callTool({ name: 'remove_tool', arguments: { name: 'later' } });
    await waitFor(() => changes >= 2, { what: 'list_changed after remove_tool' });
    expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('later');
    expect(readEvents(events)).toEqual(expect.arrayContaining(['added later echo', 'removed later echo']));
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

  it('crash exits the process without answering', async () => {
    const { client, events, transport } = await connectStdioFixture();
    const pid = transport.pid!;
    let closed = false;
    client.onclose = () => {
      closed = true;
    };
    await expect(client.callTool({ name: 'crash', arguments: { code: 3 } })).rejects.toThrow();
    await waitFor(() => !isAlive(pid), { what: 'the crashed fixture to be gone' });
    expect(closed).toBe(true);
    expect(readEvents(events)).toEqual(expect.arrayContaining([`crash ${pid} echo 3`, `exit ${pid} echo 3`]));
  });

  it('exits when its stdin closes, aborting calls in flight', async () => {
    const { client, events, transport } = await connectStdioFixture();
    const pid = transport.pid!;
    const call = client.callTool({ name: 'slow', arguments: { ms: 30_000 } }).catch((err: unknown) => err);
    await waitFor(() => readEvents(events).some((l) => l.startsWith('call slow')), { what: 'the slow call' });
    await client.close();
    expect(await call).toBeInstanceOf(Error);
    await waitFor(() => !isAlive(pid), { what: 'the fixture to exit' });
    const lines = readEvents(events);
    expect(lines.some((l) => /^aborted slow \d+ echo$/.test(l))).toBe(true);
    expect(lines).toEqual(expect.arrayContaining([`closed ${pid} echo`, `exit ${pid} echo 0`]));
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
