import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAgent, connectBridgeAgent, type TestAgent } from '../helpers/agents.js';
import { runCli } from '../helpers/cli.js';
import { type CliProcess, pairSlave, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { cleanEnv, echoServerEntry, makeHome, repoRoot, writeServersConfig } from '../helpers/home.js';
import { textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

const everythingPath = join(repoRoot, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const everythingEntry = () => ({ command: process.execPath, args: [everythingPath, 'stdio'], env: {} });
const catalogFixture = (name: string) => echoServerEntry({ name, env: { FIXTURE_CATALOG: '1' } });

afterAll(() => cleanupProcesses());

/** The tool names server-everything offers a client with sampling, elicitation and roots. */
async function everythingToolsDirect(): Promise<string[]> {
  const { TestAgent } = await import('../helpers/agents.js');
  const direct = new TestAgent({ name: 'direct' });
  await direct.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [everythingPath, 'stdio'],
      env: cleanEnv(),
      stderr: 'pipe',
    }),
  );
  try {
    return (await direct.listTools()).tools.map((t) => t.name).sort();
  } finally {
    await direct.close();
  }
}

/**
 * The behaviours both hops must have. `prefix` is how the agent names the upstreams: `` on the
 * master, `<host>_` for a slave's servers; URIs follow as `diane://<prefix path>…`.
 */
function surfaceTests(ctx: () => { url: string; home: string; names: string; uris: string; fx: string }) {
  const agents: Client[] = [];
  const agent = async (name: string, opts: Partial<Parameters<typeof connectAgent>[1]> = {}) => {
    const a = await connectAgent(ctx().url, { name, ...opts });
    agents.push(a);
    return a;
  };
  afterAll(async () => {
    while (agents.length) await agents.pop()?.close();
  });
  const tool = (server: string, name: string) => `${ctx().names}${server}_${name}`;
  const uri = (server: string, original: string) => `diane://${ctx().uris}${server}/${original}`;

  it('lists what server-everything offers, under Diane names, with nothing lost', async () => {
    const a = await agent('lister');
    const direct = await everythingToolsDirect();
    const through = (await a.listTools()).tools
      .map((t) => t.name)
      .filter((n) => n.startsWith(tool('everything', '')))
      .map((n) => n.slice(tool('everything', '').length))
      .sort();
    expect(through).toEqual(direct);
    expect(through).toEqual(
      expect.arrayContaining(['trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list']),
    );
    const caps = a.getServerCapabilities();
    expect(caps?.prompts).toBeDefined();
    expect(caps?.resources?.subscribe).toBe(true);
    expect(caps?.completions).toBeDefined();
    expect(caps?.logging).toBeDefined();
    expect((caps as Record<string, unknown>).tasks).toBeUndefined();
  });

  it('serves prompts by name, with the resources they embed rewritten', async () => {
    const a = await agent('prompter');
    const prompts = (await a.listPrompts()).prompts.map((p) => p.name);
    expect(prompts).toContain(tool('fx', 'greet'));
    expect(prompts).toContain(tool('everything', 'simple-prompt'));
    const got = await a.getPrompt({ name: tool('fx', 'greet'), arguments: { who: 'bob' } });
    expect(got.messages[0]?.content).toMatchObject({ type: 'text', text: `${ctx().fx} greets bob` });
    const embedded = got.messages[1]?.content as {
      resource: { uri: string; _meta: Record<string, unknown> };
    };
    expect(embedded.resource.uri).toBe(uri('fx', 'fixture://whoami'));
    expect(embedded.resource._meta['dev.diane/originalUri']).toBe('fixture://whoami');
    await expect(a.getPrompt({ name: tool('fx', 'nope') })).rejects.toThrow(/Unknown prompt/);
  });

  it('lists and reads resources and templates under unique diane:// URIs', async () => {
    const a = await agent('reader');
    const { resources } = await a.listResources();
    const whoami = resources.find((r) => r.uri === uri('fx', 'fixture://whoami'));
    expect(whoami?._meta?.['dev.diane/originalUri']).toBe('fixture://whoami');
    expect(resources.some((r) => r.uri.startsWith(uri('everything', '')))).toBe(true);
    const read = await a.readResource({ uri: uri('fx', 'fixture://whoami') });
    expect(read.contents[0]).toMatchObject({ uri: uri('fx', 'fixture://whoami'), text: `I am ${ctx().fx}` });
    const { resourceTemplates } = await a.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate)).toContain(uri('fx', 'fixture://echo/{word}'));
    const fromTemplate = await a.readResource({ uri: uri('fx', 'fixture://echo/hello') });
    expect(fromTemplate.contents[0]).toMatchObject({ text: `${ctx().fx} says hello` });
    // Every server-everything resource reads back through its Diane URI.
    const first = resources.find((r) => r.uri.startsWith(uri('everything', '')))!;
    expect((await a.readResource({ uri: first.uri })).contents[0]?.uri).toBe(first.uri);
    await expect(a.readResource({ uri: 'fixture://whoami' })).rejects.toThrow(/Unknown resource/);
    await expect(a.readResource({ uri: 'diane://nosuch/fixture://whoami' })).rejects.toThrow(
      /Unknown resource/,
    );
  });

  it('reads back exactly what a tool handed out as a resource_link or embedded resource', async () => {
    const a = await agent('linker');
    const result = await a.callTool({ name: tool('fx', 'link'), arguments: {} });
    const [link, embedded] = result.content as [{ uri: string }, { resource: { uri: string } }];
    expect(link.uri).toBe(uri('fx', 'fixture://whoami'));
    expect(embedded.resource.uri).toBe(uri('fx', 'fixture://echo/linked'));
    expect((await a.readResource({ uri: link.uri })).contents[0]).toMatchObject({ text: `I am ${ctx().fx}` });
    expect((await a.readResource({ uri: embedded.resource.uri })).contents[0]).toMatchObject({
      text: `${ctx().fx} says linked`,
    });
    const everythingLinks = await a.callTool({
      name: tool('everything', 'get-resource-links'),
      arguments: { count: 2 },
    });
    const links = (everythingLinks.content as { type: string; uri?: string }[]).filter(
      (c) => c.type === 'resource_link',
    );
    expect(links.length).toBeGreaterThan(0);
    for (const l of links) {
      expect(l.uri?.startsWith(uri('everything', ''))).toBe(true);
      expect((await a.readResource({ uri: l.uri! })).contents.length).toBeGreaterThan(0);
    }
  });

  it('routes completion by prompt name and by resource template', async () => {
    const a = await agent('completer');
    const byPrompt = await a.complete({
      ref: { type: 'ref/prompt', name: tool('fx', 'greet') },
      argument: { name: 'who', value: 'a' },
    });
    expect(byPrompt.completion.values).toEqual(['alice']);
    const byTemplate = await a.complete({
      ref: { type: 'ref/resource', uri: uri('fx', 'fixture://echo/{word}') },
      argument: { name: 'word', value: 'g' },
    });
    expect(byTemplate.completion.values).toEqual(['gamma']);
  });

  it('asks only the calling agent for sampling, elicitation and roots', async () => {
    const caller = await agent('caller', { root: '/work/caller' });
    const bystander = await agent('bystander', { root: '/work/bystander' });
    // The bystander has a call in flight elsewhere: it must still not be asked.
    const busy = bystander.callTool({ name: tool('fx', 'slow'), arguments: { ms: 1500 } });
    const sampled = await caller.callTool({
      name: tool('everything', 'trigger-sampling-request'),
      arguments: { prompt: 'hello', maxTokens: 10 },
    });
    expect(JSON.stringify(sampled.content)).toContain('sampled by caller');
    const elicited = await caller.callTool({
      name: tool('everything', 'trigger-elicitation-request'),
      arguments: {},
    });
    expect(elicited.isError).toBeFalsy();
    expect(JSON.stringify(elicited.content)).toContain('caller');
    const roots = await caller.callTool({ name: tool('everything', 'get-roots-list'), arguments: {} });
    expect(textOf(roots)).toContain('/work/caller');
    expect(textOf(roots)).not.toContain('/work/bystander');
    expect(textOf(await caller.callTool({ name: tool('fx', 'roots'), arguments: {} }))).toBe(
      'file:///work/caller',
    );
    expect(textOf(await bystander.callTool({ name: tool('fx', 'roots'), arguments: {} }))).toBe(
      'file:///work/bystander',
    );
    await busy;
    expect((caller as TestAgent).record.sampling).toHaveLength(1);
    expect((caller as TestAgent).record.elicitation).toHaveLength(1);
    const bystanderRecord = (bystander as TestAgent).record;
    expect(bystanderRecord.sampling).toHaveLength(0);
    expect(bystanderRecord.elicitation).toHaveLength(0);
  });

  it('gives the upstream a clear error, not a hang, when the calling agent cannot answer', async () => {
    const mute = await agent('mute', { answers: {} });
    const result = await mute.callTool({
      name: tool('everything', 'trigger-sampling-request'),
      arguments: { prompt: 'hello', maxTokens: 10 },
    });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/no agent that supports it/);
  });

  it('applies each agent its own log level, with the source in `logger`', async () => {
    const verbose = await agent('verbose');
    const quiet = await agent('quiet');
    await verbose.setLoggingLevel('debug');
    await quiet.setLoggingLevel('error');
    // server-everything logs every subscription at level info.
    const target = (await verbose.listResources()).resources.find((r) =>
      r.uri.startsWith(uri('everything', '')),
    )!;
    await verbose.subscribeResource({ uri: target.uri });
    const record = (verbose as TestAgent).record;
    const expectedLogger = `${ctx().uris}everything`.replace(/\/$/, '');
    await waitFor(
      () =>
        record.logs.some((l) => l.logger === expectedLogger && JSON.stringify(l.data).includes('Subscribe')),
      {
        what: 'the subscription log at the verbose agent',
      },
    );
    await verbose.unsubscribeResource({ uri: target.uri });
    expect((quiet as TestAgent).record.logs.filter((l) => l.level === 'info')).toEqual([]);
  });

  it('delivers resource updates under the URI the agent subscribed to', async () => {
    const a = await agent('subscriber');
    const target = (await a.listResources()).resources.find((r) => r.uri.startsWith(uri('everything', '')))!;
    await a.subscribeResource({ uri: target.uri });
    await a.callTool({ name: tool('everything', 'toggle-subscriber-updates'), arguments: {} });
    await waitFor(() => (a as TestAgent).record.updated.includes(target.uri), {
      what: 'notifications/resources/updated',
      timeoutMs: 15_000,
    });
    await a.callTool({ name: tool('everything', 'toggle-subscriber-updates'), arguments: {} });
  });

  it('delivers every progress notification before the result, 100 calls out of 100', async () => {
    const a = await agent('progress');
    let complete = 0;
    for (let i = 0; i < 100; i++) {
      const seen: number[] = [];
      await a.callTool(
        { name: tool('fx', 'burst'), arguments: { count: 5 } },
        { onprogress: (p) => seen.push(p.progress) },
      );
      if (seen.join(',') === '1,2,3,4,5') complete++;
    }
    expect(complete).toBe(100);
  });

  it('pages its lists with opaque cursors', async () => {
    const a = await agent('pager');
    const first = await a.request({ method: 'tools/list', params: {} });
    expect(first.tools).toHaveLength(5);
    expect(typeof first.nextCursor).toBe('string');
    const all = (await a.listTools()).tools;
    expect(all.length).toBeGreaterThan(5);
    expect(new Set(all.map((t) => t.name)).size).toBe(all.length);
    await expect(a.request({ method: 'tools/list', params: { cursor: 'garbage' } })).rejects.toThrow(
      /Invalid cursor/,
    );
    expect((await a.listResources()).resources.length).toBeGreaterThan(5);
  });
}

/**
 * What every front (2025 HTTP, the stdio bridge, 2026-07-28) must carry for the agent `name`:
 * prompts, resources, and the server's sampling, roots and elicitation asked of that agent.
 */
async function expectAgentSurface(a: TestAgent, name: string, root: string): Promise<void> {
  expect((await a.listPrompts()).prompts.map((p) => p.name)).toContain('fx_greet');
  expect((await a.readResource({ uri: 'diane://fx/fixture://whoami' })).contents[0]).toMatchObject({
    text: 'I am fx',
  });
  const sampled = await a.callTool({
    name: 'everything_trigger-sampling-request',
    arguments: { prompt: 'hi', maxTokens: 5 },
  });
  expect(JSON.stringify(sampled.content)).toContain(`sampled by ${name}`);
  // server-everything keeps the roots it got first; the fixture asks on every call.
  const roots = await a.callTool({ name: 'fx_roots', arguments: {} });
  expect(textOf(roots)).toBe(root);
  const elicited = await a.callTool({ name: 'everything_trigger-elicitation-request', arguments: {} });
  expect(JSON.stringify(elicited.content)).toContain(name);
}

describe('the whole MCP surface through a master-local upstream', () => {
  let home: string;
  let events: string;
  let daemon: DaemonHandle;
  beforeAll(async () => {
    home = makeHome('protocol');
    events = join(home, 'fx-events.log');
    writeServersConfig(home, {
      mcpServers: {
        everything: everythingEntry(),
        fx: {
          ...catalogFixture('fx'),
          env: { FIXTURE_NAME: 'fx', FIXTURE_CATALOG: '1', FIXTURE_EVENTS: events },
        },
      },
    });
    daemon = await startDaemon({ home, args: ['--list-page-size', '5'] });
    await waitFor(
      async () => {
        const res = JSON.parse((await runCli(home, ['servers', 'list', '--json'])).stdout);
        return (
          res.servers.length === 2 && res.servers.every((s: { state: string }) => s.state === 'connected')
        );
      },
      { what: 'upstreams connected' },
    );
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  surfaceTests(() => ({ url: daemon.mcpUrl, home, names: '', uris: '', fx: 'fx' }));

  it("passes an agent's notifications/roots/list_changed on to the upstreams", async () => {
    const a = await connectAgent(daemon.mcpUrl, { name: 'rooted' });
    try {
      await a.sendRootsListChanged();
      await waitFor(() => existsSync(events) && readFileSync(events, 'utf8').includes('roots-changed fx'), {
        what: 'roots-changed at the fixture',
      });
    } finally {
      await a.close();
    }
  });

  it('lists prompts and resources on the CLI, with --json and --all', async () => {
    const prompts = JSON.parse((await runCli(home, ['prompts', 'list', '--json'])).stdout);
    expect(prompts.prompts.map((p: { name: string }) => p.name)).toContain('fx_greet');
    const resources = JSON.parse((await runCli(home, ['resources', 'list', '--json', '--all'])).stdout);
    expect(resources.resources).toContainEqual(
      expect.objectContaining({
        uri: 'diane://fx/fixture://whoami',
        upstream: 'fx',
        originalUri: 'fixture://whoami',
      }),
    );
    expect(resources.resources).toContainEqual(
      expect.objectContaining({ uri: 'diane://fx/fixture://echo/{word}', template: true }),
    );
    const table = await runCli(home, ['resources', 'list']);
    expect(table.stdout).toContain('diane://fx/fixture://whoami');
    expect((await runCli(home, ['prompts', 'list'])).stdout).toContain('fx_greet');
  });

  it('serves the same surface through `diane mcp` (stdio bridge)', async () => {
    const a = await connectBridgeAgent(home, { name: 'bridged', root: '/work/bridged' });
    try {
      await expectAgentSurface(a, 'bridged', 'file:///work/bridged');
      await a.setLoggingLevel('debug');
      // A resource no other agent of this file subscribed to, so that the server sees (and logs) it.
      const target = (await a.listResources()).resources
        .filter((r) => r.uri.startsWith('diane://everything/'))
        .at(-1)!;
      await a.subscribeResource({ uri: target.uri });
      await waitFor(() => a.record.logs.some((l) => l.logger === 'everything'), {
        what: `a log over the bridge (got ${JSON.stringify(a.record.logs)})`,
      });
      await a.callTool({ name: 'everything_toggle-subscriber-updates', arguments: {} });
      await waitFor(() => a.record.updated.includes(target.uri), {
        what: 'a resource update over the bridge',
        timeoutMs: 15_000,
      });
      await a.callTool({ name: 'everything_toggle-subscriber-updates', arguments: {} });
      const completion = await a.complete({
        ref: { type: 'ref/prompt', name: 'fx_greet' },
        argument: { name: 'who', value: 'c' },
      });
      expect(completion.completion.values).toEqual(['carol']);
      // Progress still arrives over the bridge (its order at the agent is the agent SDK's to keep).
      const seen: number[] = [];
      await a.callTool(
        { name: 'fx_burst', arguments: { count: 4 } },
        { onprogress: (p) => seen.push(p.progress) },
      );
      expect(seen.length).toBeGreaterThan(0);
    } finally {
      await a.close();
    }
  });

  it('serves 2026-07-28 agents: lists, reads, prompts, and sampling as input_required', async () => {
    const a = await connectAgent(daemon.mcpUrl, { name: 'modern', modern: true });
    try {
      expect(a.getNegotiatedProtocolVersion()).toBe('2026-07-28');
      await expectAgentSurface(a, 'modern', 'file:///roots/modern');
      const prompt = await a.getPrompt({ name: 'fx_greet', arguments: { who: 'dan' } });
      expect(prompt.messages[0]?.content).toMatchObject({ text: 'fx greets dan' });
      const completion = await a.complete({
        ref: { type: 'ref/resource', uri: 'diane://fx/fixture://echo/{word}' },
        argument: { name: 'word', value: 'b' },
      });
      expect(completion.completion.values).toEqual(['beta']);
      const linked = await a.callTool({ name: 'fx_link', arguments: {} });
      const link = (linked.content as { uri?: string }[])[0]!;
      expect((await a.readResource({ uri: link.uri! })).contents[0]).toMatchObject({ text: 'I am fx' });
    } finally {
      await a.close();
    }
  });
});

describe('the whole MCP surface through a paired slave', () => {
  let master: DaemonHandle;
  let masterHome: string;
  const slaves: CliProcess[] = [];
  const slaveHomes: string[] = [];

  beforeAll(async () => {
    masterHome = makeHome('protocol-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    master = await startDaemon({ home: masterHome, args: ['--list-page-size', '5'] });
    for (const host of ['ws1', 'ws2']) {
      const home = makeHome(`protocol-${host}`);
      slaveHomes.push(home);
      writeServersConfig(home, {
        mcpServers:
          host === 'ws1'
            ? { everything: everythingEntry(), fx: catalogFixture('fx-on-ws1') }
            : { fx: catalogFixture('fx-on-ws2') },
      });
      await pairSlave(master, home, host);
      slaves.push(startSlave(home));
      await waitForSlaveStatus(master, host, 'connected');
    }
    await waitFor(
      async () => {
        const tools = JSON.parse((await runCli(masterHome, ['tools', 'list', '--json'])).stdout).tools;
        return (
          tools.some((t: { name: string }) => t.name === 'ws1_everything_echo') &&
          tools.some((t: { name: string }) => t.name === 'ws2_fx_echo')
        );
      },
      { what: 'slave tools at the master' },
    );
  });
  afterAll(async () => {
    for (const s of slaves) s.proc.kill('SIGTERM');
    await master?.stop();
  });

  surfaceTests(() => ({
    url: master.mcpUrl,
    home: masterHome,
    names: 'ws1_',
    uris: 'ws1/',
    fx: 'fx-on-ws1',
  }));

  it('lists the same server on two hosts and reads each from its own host', async () => {
    const a = await connectAgent(master.mcpUrl, { name: 'two-hosts' });
    try {
      const uris = (await a.listResources()).resources.map((r) => r.uri);
      expect(uris).toContain('diane://ws1/fx/fixture://whoami');
      expect(uris).toContain('diane://ws2/fx/fixture://whoami');
      expect((await a.readResource({ uri: 'diane://ws1/fx/fixture://whoami' })).contents[0]).toMatchObject({
        text: 'I am fx-on-ws1',
      });
      expect((await a.readResource({ uri: 'diane://ws2/fx/fixture://whoami' })).contents[0]).toMatchObject({
        text: 'I am fx-on-ws2',
      });
      const listed = (await a.listResources()).resources.find(
        (r) => r.uri === 'diane://ws2/fx/fixture://whoami',
      );
      expect(listed?._meta?.['dev.diane/originalUri']).toBe('fixture://whoami');
    } finally {
      await a.close();
    }
  });

  it('keeps a resource subscription across a slave reconnect', async () => {
    const a = await connectAgent(master.mcpUrl, { name: 'resubscriber' });
    try {
      const target = (await a.listResources()).resources.find((r) =>
        r.uri.startsWith('diane://ws1/everything/'),
      )!;
      await a.subscribeResource({ uri: target.uri });
      const ws1 = slaves[0]!;
      ws1.proc.kill('SIGTERM');
      await ws1.exited;
      await waitForSlaveStatus(master, 'ws1', 'disconnected');
      const restarted = startSlave(slaveHomes[0]!);
      slaves[0] = restarted;
      await waitForSlaveStatus(master, 'ws1', 'connected');
      await waitFor(
        async () =>
          (await a.listTools()).tools.some((t) => t.name === 'ws1_everything_toggle-subscriber-updates'),
        {
          what: 'ws1 tools back',
        },
      );
      await a.callTool({ name: 'ws1_everything_toggle-subscriber-updates', arguments: {} });
      await waitFor(() => (a as TestAgent).record.updated.includes(target.uri), {
        what: 'an update after the reconnect',
        timeoutMs: 15_000,
      });
    } finally {
      await a.close();
    }
  });
});
