import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { type CliProcess, pairSlave, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, filesystemServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, connectStdioBridge, type HttpTestClient, textOf } from '../helpers/mcpClient.js';
import { readEvents } from '../helpers/procs.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface Found {
  name: string;
  host: string;
  server: string;
  online: boolean;
  alsoOn?: string[];
}

const META = ['call_tool', 'list_hosts', 'search_tools'];
const READ_TOOLS = ['ws1_filesystem_read_text_file', 'ws1_filesystem_read_file'];

/**
 * Discovery mode with real processes: a master with its own echo server, a slave with the real
 * filesystem server and a slave with the echo fixture. Agents see three meta-tools; search finds
 * the right tool on the right host, and call_tool is the direct call.
 */
describe('discovery mode', () => {
  let master: DaemonHandle;
  let ws1: CliProcess;
  let full: HttpTestClient;
  let finder: HttpTestClient;
  const events = join(makeHome('discovery-events'), 'events.log');

  const search = async (client: HttpTestClient, args: Record<string, unknown>): Promise<Found[]> => {
    const result = await client.callTool({ name: 'search_tools', arguments: args });
    expect(result.isError, textOf(result)).toBeFalsy();
    return (result.structuredContent as { results: Found[] }).results;
  };
  const via = (client: HttpTestClient, name: string, args: Record<string, unknown>, opts = {}) =>
    client.callTool({ name: 'call_tool', arguments: { name, arguments: args } }, opts);

  beforeAll(async () => {
    const masterHome = makeHome('discovery-master');
    writeServersConfig(masterHome, { mcpServers: { echo: echoServerEntry({ name: 'local-echo' }) } });
    master = await startDaemon({ home: masterHome });
    const ws1Home = makeHome('discovery-ws1');
    const files = join(ws1Home, 'files');
    mkdirSync(files);
    writeFileSync(join(files, 'notes.txt'), 'the notes of ws1\n');
    writeServersConfig(ws1Home, { mcpServers: { filesystem: filesystemServerEntry(files) } });
    const ws2Home = makeHome('discovery-ws2');
    writeServersConfig(ws2Home, { mcpServers: { echo: echoServerEntry({ events, name: 'ws2-echo' }) } });
    await pairSlave(master, ws1Home, 'ws1');
    await pairSlave(master, ws2Home, 'ws2');
    ws1 = startSlave(ws1Home);
    startSlave(ws2Home);
    await waitForSlaveStatus(master, 'ws1', 'connected');
    await waitForSlaveStatus(master, 'ws2', 'connected');
    full = await connectHttp(master.mcpUrl);
    await waitFor(
      async () => {
        const names = (await full.listTools()).tools.map((t) => t.name);
        return names.includes('ws1_filesystem_read_text_file') && names.includes('ws2_echo_add');
      },
      { what: 'every host listed' },
    );
    finder = await connectHttp(`${master.mcpUrl}/discovery`);
  }, 90_000);

  it('shows the meta-tools instead of the catalogue, on HTTP and on `diane mcp --discovery`', async () => {
    expect((await finder.listTools()).tools.map((t) => t.name).sort()).toEqual(META);
    const bridge = await connectStdioBridge(master.home, { args: ['--discovery'] });
    expect((await bridge.listTools()).tools.map((t) => t.name).sort()).toEqual(META);
    const found = await bridge.callTool({ name: 'search_tools', arguments: { query: 'add two numbers' } });
    expect(textOf(found)).toContain('ws2_echo_add');
    await bridge.close();
  });

  it('finds the right tool on the right host by words', async () => {
    const read = await search(finder, { query: 'read the contents of a text file' });
    // read_file is the filesystem server's older name for read_text_file: either is right.
    expect(READ_TOOLS).toContain(read[0]?.name);
    expect(read[0]).toMatchObject({ host: 'ws1', server: 'filesystem', online: true });
    const sum = await search(finder, { query: 'add two numbers', limit: 3 });
    // The master's echo server has the same `add`: identical copies fold into one result.
    expect(sum.flatMap((r) => [r.name, ...(r.alsoOn ?? [])])).toEqual(
      expect.arrayContaining(['echo_add', 'ws2_echo_add']),
    );
    const onlyWs2 = await search(finder, { query: 'echo text', host: 'ws2' });
    expect(onlyWs2.length).toBeGreaterThan(0);
    expect(onlyWs2.every((r) => r.host === 'ws2')).toBe(true);
    const hosts = await finder.callTool({ name: 'list_hosts', arguments: {} });
    expect(textOf(hosts)).toMatch(/ws1/);
    expect(JSON.stringify(hosts.structuredContent)).toContain('filesystem');
  });

  it('call_tool returns exactly what a direct call returns: content, structured content and errors', async () => {
    const direct = await full.callTool({ name: 'ws2_echo_add', arguments: { a: 2, b: 3 } });
    expect(await via(finder, 'ws2_echo_add', { a: 2, b: 3 })).toEqual(direct);
    const directRead = await full.callTool({
      name: 'ws1_filesystem_list_allowed_directories',
      arguments: {},
    });
    expect(await via(finder, 'ws1_filesystem_list_allowed_directories', {})).toEqual(directRead);
    expect(await via(finder, 'ws2_echo_fail', {})).toEqual(
      await full.callTool({ name: 'ws2_echo_fail', arguments: {} }),
    );
    const unknown = (call: () => Promise<unknown>) =>
      call().then(
        () => 'answered',
        (e: { code?: number; message: string }) => `${e.code} ${e.message}`,
      );
    expect(await unknown(() => via(finder, 'ws2_echo_nothing', {}))).toBe(
      await unknown(() => full.callTool({ name: 'ws2_echo_nothing', arguments: {} })),
    );
    const bad = await finder.callTool({ name: 'call_tool', arguments: { arguments: {} } });
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toMatch(/Invalid arguments for call_tool: name/);
  });

  it('call_tool relays progress and cancellation', async () => {
    const seen: number[] = [];
    const slow = await via(
      finder,
      'ws2_echo_slow',
      { ms: 300, steps: 3 },
      { onprogress: (p: { progress: number }) => seen.push(p.progress) },
    );
    expect(slow.isError).toBeFalsy();
    expect(seen).toEqual([1, 2, 3]);
    const cancelsBefore = readEvents(events).filter((l) => l.startsWith('cancelled slow')).length;
    const abort = new AbortController();
    const call = via(finder, 'ws2_echo_slow', { ms: 20_000, steps: 40 }, { signal: abort.signal });
    await waitFor(() => readEvents(events).some((l) => l.startsWith('call slow')), {
      what: 'the slow call to start',
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    abort.abort();
    await expect(call).rejects.toThrow();
    await waitFor(
      () => readEvents(events).filter((l) => l.startsWith('cancelled slow')).length > cancelsBefore,
      {
        what: 'the cancellation to reach the server',
      },
    );
  });

  it("keeps to an agent's scope, in search and in calls; an agent in discovery mode by identity", async () => {
    const added = await runCli(master.home, [
      'agents',
      'add',
      'seeker',
      '--mode',
      'discovery',
      '--allow',
      'host:ws2',
      '--json',
    ]);
    expect(added.code, added.stderr).toBe(0);
    const seeker = await connectHttp(master.mcpUrl, { token: JSON.parse(added.stdout).token });
    expect((await seeker.listTools()).tools.map((t) => t.name).sort()).toEqual(META);
    const read = await search(seeker, { query: 'read the contents of a text file', limit: 50 });
    expect(read.every((r) => r.host === 'ws2')).toBe(true);
    expect(await search(seeker, { query: 'filesystem', host: 'ws1' })).toEqual([]);
    const hosts = await seeker.callTool({ name: 'list_hosts', arguments: {} });
    expect(JSON.stringify(hosts)).not.toContain('ws1');
    const refused = await via(seeker, 'ws1_filesystem_read_text_file', { path: 'notes.txt' }).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/Unknown tool: ws1_filesystem_read_text_file/);
    expect(textOf(await via(seeker, 'ws2_echo_echo', { text: 'in scope' }))).toBe('in scope');
  });

  it('marks the tools of an offline host as offline instead of dropping them', async () => {
    await ws1.stop();
    await waitForSlaveStatus(master, 'ws1', 'disconnected');
    const read = await waitFor(
      async () => {
        const found = await search(finder, { query: 'read the contents of a text file' });
        return found[0]?.online === false && found;
      },
      { what: 'the filesystem tools marked offline' },
    );
    expect(READ_TOOLS).toContain(read[0]?.name);
    expect(read[0]).toMatchObject({ host: 'ws1', online: false });
    const hosts = await finder.callTool({ name: 'list_hosts', arguments: {} });
    expect(textOf(hosts)).toMatch(/ws1.*offline/is);
  });
});
