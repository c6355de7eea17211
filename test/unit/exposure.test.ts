import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMcpServersConfig } from '../../src/config/mcpServers.js';
import { Exposure } from '../../src/mcp/exposure.js';
import { createFrontServer } from '../../src/mcp/frontServer.js';
import { DEFAULT_ROUTER_SETTINGS, type RefusedRequest, Router } from '../../src/mcp/router.js';
import { Scope } from '../../src/mcp/scope.js';
import type { JsonObject, UpstreamCatalog } from '../../src/mcp/upstream.js';
import { FakeUpstream, tool } from '../helpers/fakeUpstream.js';

const signal = () => new AbortController().signal;
const settle = () => new Promise((r) => setTimeout(r, 40));
const routers: Router[] = [];
const clients: Client[] = [];

afterEach(async () => {
  while (clients.length) await clients.pop()?.close();
  while (routers.length) routers.pop()?.close();
});

/** A logger whose lines the test reads. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info', base: undefined },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
  return { logger, lines };
}

function newRouter(logger = capturingLogger().logger): Router {
  const router = new Router({ ...DEFAULT_ROUTER_SETTINGS, listChangedDebounceMs: 10 }, logger);
  routers.push(router);
  return router;
}

/** The exposure of one server as `mcp-servers.json` on the slave gives it. */
function exposureFromConfig(entry: Record<string, unknown>): Exposure {
  const parsed = parseMcpServersConfig(
    JSON.stringify({ mcpServers: { filesystem: { command: 'fs-mcp', ...entry } } }),
    'mcp-servers.json',
  );
  expect(parsed.errors).toEqual([]);
  return Exposure.from(parsed.servers[0]);
}

/** What the filesystem server on the slave really has, hidden entries included. */
const FULL_CATALOG: UpstreamCatalog = {
  tools: ['read_file', 'read_secret_notes', 'list_directory', 'write_file', 'delete_file'].map(tool),
  prompts: [{ name: 'read_summary' }, { name: 'cleanup' }],
  resources: [
    { uri: 'file:///home/me/public/a.txt', name: 'a' },
    { uri: 'file:///home/me/private/b.txt', name: 'b' },
  ],
  resourceTemplates: [
    { uriTemplate: 'file:///home/me/public/{path}', name: 'public' },
    { uriTemplate: 'file:///{path}', name: 'any' },
  ],
};

const CONSENT = {
  expose: ['read_*', 'list_*', 'resource:file:///home/me/public/*'],
  hide: ['*secret*'],
};

describe('Exposure: the owner’s expose and hide lists', () => {
  it('exposes everything without lists', () => {
    const all = Exposure.from(undefined);
    expect(all.isAll).toBe(true);
    expect(Exposure.from({ hide: [] }).isAll).toBe(true);
    expect(all.filter(FULL_CATALOG)).toBe(FULL_CATALOG);
  });

  it.each([
    // spec, kind, name, exposed
    [CONSENT, 'tool', 'read_file', true],
    [CONSENT, 'tool', 'list_directory', true],
    [CONSENT, 'tool', 'write_file', false],
    [CONSENT, 'tool', 'read_secret_notes', false],
    [CONSENT, 'prompt', 'read_summary', true],
    [CONSENT, 'prompt', 'cleanup', false],
    [CONSENT, 'resource', 'file:///home/me/public/a.txt', true],
    [CONSENT, 'resource', 'file:///home/me/private/b.txt', false],
    [CONSENT, 'resource', 'file:///home/me/public/my_secret.txt', false],
    [{ hide: ['tool:write_*'] }, 'tool', 'write_file', false],
    [{ hide: ['tool:write_*'] }, 'prompt', 'write_file', true],
    [{ hide: ['tool:write_*'] }, 'resource', 'file:///x', true],
    [{ expose: [] }, 'tool', 'read_file', false],
    [{ expose: [] }, 'resource', 'file:///x', false],
    [{ expose: ['prompt:*'] }, 'prompt', 'x', true],
    [{ expose: ['prompt:*'] }, 'tool', 'x', false],
    [{ expose: ['resource:tool:*'] }, 'resource', 'tool:abc', true],
    [{ expose: ['resource:tool:*'] }, 'tool', 'abc', false],
  ] as const)('%j: %s %s → %s', (spec, kind, name, exposed) => {
    expect(Exposure.from(spec).allows(kind, name)).toBe(exposed);
  });

  it('filters a catalog once, and lists templates by their template text', () => {
    const exposure = Exposure.from(CONSENT);
    const filtered = exposure.filter(FULL_CATALOG);
    expect(filtered).toBe(exposure.filter(FULL_CATALOG));
    expect(filtered.tools.map((t) => t.name)).toEqual(['read_file', 'list_directory']);
    expect(filtered.prompts.map((p) => p.name)).toEqual(['read_summary']);
    expect(filtered.resources.map((r) => r.uri)).toEqual(['file:///home/me/public/a.txt']);
    expect(filtered.resourceTemplates.map((t) => t.uriTemplate)).toEqual(['file:///home/me/public/{path}']);
  });

  it('summarizes what is exposed and hidden, by the server’s own names', () => {
    expect(Exposure.from(CONSENT).summarize('filesystem', FULL_CATALOG)).toEqual({
      server: 'filesystem',
      tools: {
        exposed: ['read_file', 'list_directory'],
        hidden: ['read_secret_notes', 'write_file', 'delete_file'],
      },
      prompts: { exposed: ['read_summary'], hidden: ['cleanup'] },
      resources: { exposed: ['file:///home/me/public/a.txt'], hidden: ['file:///home/me/private/b.txt'] },
      resourceTemplates: { exposed: ['file:///home/me/public/{path}'], hidden: ['file:///{path}'] },
    });
  });

  it('compares by patterns', () => {
    expect(Exposure.from(CONSENT).sameAs(Exposure.from({ ...CONSENT }))).toBe(true);
    expect(Exposure.from(CONSENT).sameAs(Exposure.from({ expose: CONSENT.expose }))).toBe(false);
    expect(Exposure.from({ expose: [] }).sameAs(Exposure.all())).toBe(false);
  });
});

/** The slave's router: its filesystem server has everything, the owner exposes only part. */
function slave(consent: Record<string, unknown> = CONSENT) {
  const { logger, lines } = capturingLogger();
  const router = newRouter(logger);
  const fs = new FakeUpstream('filesystem');
  fs.setCatalog(FULL_CATALOG);
  fs.answer = async (req) =>
    req.method === 'resources/read' ? { contents: [{ uri: req.params.uri, text: 'x' }] } : { content: [] };
  router.add(fs, { exposure: exposureFromConfig(consent) });
  const refusals: RefusedRequest[] = [];
  router.onRefused((event) => refusals.push(event));
  const warnings = () =>
    lines
      .filter((l) => l.level === 40 && String(l.msg).startsWith('refused'))
      .map(({ method, server, kind, name }) => ({ method, server, kind, name }));
  return { router, fs, refusals, warnings };
}

/** The same slave where the hidden entries do not exist at all: what "unknown" looks like. */
function slaveWithout() {
  const router = newRouter();
  const fs = new FakeUpstream('filesystem');
  fs.setCatalog(Exposure.from(CONSENT).filter(FULL_CATALOG));
  router.add(fs);
  return router;
}

function thrown(fn: () => unknown): { ctor: string; code: unknown; message: string; json: string } {
  try {
    fn();
  } catch (err) {
    const e = err as Error & { code?: unknown };
    return { ctor: e.constructor.name, code: e.code, message: e.message, json: JSON.stringify(e) };
  }
  throw new Error('nothing was thrown');
}

async function rejected(promise: Promise<unknown>) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) throw new Error('nothing was thrown');
  return thrown(() => {
    throw err;
  });
}

describe('Exposure in the router (the slave enforces its owner’s consent)', () => {
  it('leaves hidden entries out of every list, for every session', () => {
    const { router } = slave();
    const names = (kind: Parameters<Router['list']>[0]) =>
      (router.list(kind, undefined).items as { name?: string; uri?: string; uriTemplate?: string }[]).map(
        (i) => i.uriTemplate ?? i.uri ?? i.name,
      );
    expect(names('tools')).toEqual(['filesystem_read_file', 'filesystem_list_directory']);
    expect(names('prompts')).toEqual(['filesystem_read_summary']);
    expect(names('resources')).toEqual(['diane://filesystem/file:///home/me/public/a.txt']);
    expect(names('resourceTemplates')).toEqual(['diane://filesystem/file:///home/me/public/{path}']);
    // Hidden is not "refused by the table": nothing says it exists.
    expect(router.toolTable().rejected).toEqual([]);
  });

  it('refuses a request for a hidden entry exactly like an unknown one, logs it and reports it', async () => {
    const { router, fs, refusals, warnings } = slave();
    // Unknown names: the slave without the hidden entries. Unknown URIs: URIs that route
    // nowhere (a router forwards any URI of a server it has, listed or not).
    const unknown = slaveWithout();
    const nowhere = newRouter();
    for (const [method, params, name] of [
      ['tools/call', { name: 'filesystem_write_file', arguments: { path: '/x' } }, 'write_file'],
      ['tools/call', { name: 'filesystem_read_secret_notes' }, 'read_secret_notes'],
      ['prompts/get', { name: 'filesystem_cleanup' }, 'cleanup'],
      [
        'resources/read',
        { uri: 'diane://filesystem/file:///home/me/private/b.txt' },
        'file:///home/me/private/b.txt',
      ],
      ['resources/read', { uri: 'diane://filesystem/file:///etc/passwd' }, 'file:///etc/passwd'],
    ] as const) {
      const refused = thrown(() => router.startCall(method, params, { signal: signal() }));
      const other = method === 'resources/read' ? nowhere : unknown;
      expect(refused).toEqual(thrown(() => other.startCall(method, params, { signal: signal() })));
      expect(refusals.at(-1)).toEqual({
        method,
        reason: 'hidden',
        kind: method === 'tools/call' ? 'tool' : method === 'prompts/get' ? 'prompt' : 'resource',
        exposedName: 'name' in params ? params.name : params.uri,
        host: 'local',
        server: 'filesystem',
        name,
        scope: Scope.full(),
      });
    }
    // The log has the server's own names only: it reads the same on a slave and on a master.
    expect(warnings()).toEqual(
      refusals.map(({ method, server, kind, name }) => ({ method, server, kind, name })),
    );

    const session = router.openSession({ notify: () => {} });
    const unknownSession = nowhere.openSession({ notify: () => {} });
    const uri = 'diane://filesystem/file:///home/me/private/b.txt';
    expect(await rejected(router.subscribeResource(session, uri, signal()))).toEqual(
      await rejected(nowhere.subscribeResource(unknownSession, uri, signal())),
    );
    expect(refusals.at(-1)).toMatchObject({
      method: 'resources/subscribe',
      name: 'file:///home/me/private/b.txt',
    });
    for (const ref of [
      { type: 'ref/prompt', name: 'filesystem_cleanup' },
      { type: 'ref/resource', uri: 'diane://filesystem/file:///{path}' },
    ]) {
      const params: JsonObject = { ref, argument: { name: 'path', value: '' } };
      const other = ref.type === 'ref/prompt' ? unknown : nowhere;
      expect(await rejected(router.complete(params, signal()))).toEqual(
        await rejected(other.complete(params, signal())),
      );
      expect(refusals.at(-1)).toMatchObject({ method: 'completion/complete' });
    }
    expect(refusals).toHaveLength(8);
    expect(fs.sent).toEqual([]);

    // A name that exists nowhere is unknown, not a refusal; exposed entries pass.
    expect(() => router.startCall('tools/call', { name: 'filesystem_nope' }, { signal: signal() })).toThrow(
      'Unknown tool: filesystem_nope',
    );
    await router.startCall('tools/call', { name: 'filesystem_read_file' }, { signal: signal() }).next();
    await router
      .startCall(
        'resources/read',
        { uri: 'diane://filesystem/file:///home/me/public/deep/c.txt' },
        { signal: signal() },
      )
      .next();
    expect(refusals).toHaveLength(8);
    expect(fs.sent.map((s) => [s.method, s.params.name ?? s.params.uri])).toEqual([
      ['tools/call', 'read_file'],
      ['resources/read', 'file:///home/me/public/deep/c.txt'],
    ]);
  });

  it('holds against a master that sends requests of its own making over the link', async () => {
    const { router, fs, refusals } = slave();
    // The slave serves its router on the link exactly like this (SlaveAgent).
    const front = createFrontServer(
      router,
      { name: 'diane-slave-ws', version: 'test' },
      { persistent: true },
    );
    const [masterSide, slaveSide] = InMemoryTransport.createLinkedPair();
    await front.connect(slaveSide);
    const master = new Client({ name: 'diane-master', version: 'test' });
    await master.connect(masterSide);
    clients.push(master);

    expect((await master.listTools()).tools.map((t) => t.name)).toEqual([
      'filesystem_read_file',
      'filesystem_list_directory',
    ]);
    const hidden = await master
      .callTool({ name: 'filesystem_write_file', arguments: { path: '/etc/x' } })
      .catch((e: Error) => e);
    const unknown = await master.callTool({ name: 'filesystem_no_such_tool' }).catch((e: Error) => e);
    expect(hidden).toBeInstanceOf(Error);
    expect((hidden as Error).message.replace('filesystem_write_file', 'X')).toBe(
      (unknown as Error).message.replace('filesystem_no_such_tool', 'X'),
    );
    expect((hidden as Error & { code: number }).code).toBe((unknown as Error & { code: number }).code);
    const read = await master
      .readResource({ uri: 'diane://filesystem/file:///home/me/private/b.txt' })
      .catch((e: Error) => e);
    expect((read as Error).message).toMatch(
      /Unknown resource: diane:\/\/filesystem\/file:\/\/\/home\/me\/private\/b.txt/,
    );
    const sub = await master
      .subscribeResource({ uri: 'diane://filesystem/file:///home/me/private/b.txt' })
      .catch((e: Error) => e);
    expect((sub as Error).message).toMatch(/Unknown resource/);
    expect(refusals.map((r) => [r.method, r.name])).toEqual([
      ['tools/call', 'write_file'],
      ['resources/read', 'file:///home/me/private/b.txt'],
      ['resources/subscribe', 'file:///home/me/private/b.txt'],
    ]);
    expect(fs.sent).toEqual([]);
  });

  it('applies a new exposure at once (reload): lists, calls, list_changed, the summary', async () => {
    const { router, fs } = slave();
    await settle();
    const told: string[] = [];
    router.openSession({ notify: (method) => told.push(method) });
    let catalogChanges = 0;
    router.onCatalogChanged(() => catalogChanges++);

    router.setExposure('filesystem', exposureFromConfig({ hide: ['delete_*'] }));
    await settle();
    expect(router.toolTable().exposed.map((t) => t.originalName)).toEqual([
      'read_file',
      'read_secret_notes',
      'list_directory',
      'write_file',
    ]);
    expect(told.sort()).toEqual([
      'notifications/prompts/list_changed',
      'notifications/resources/list_changed',
      'notifications/tools/list_changed',
    ]);
    expect(catalogChanges).toBe(1);
    await router.startCall('tools/call', { name: 'filesystem_write_file' }, { signal: signal() }).next();
    expect(fs.sent).toHaveLength(1);
    expect(router.exposureSummary()[0]?.tools).toEqual({
      exposed: ['read_file', 'read_secret_notes', 'list_directory', 'write_file'],
      hidden: ['delete_file'],
    });

    // The same patterns again change nothing.
    told.length = 0;
    router.setExposure('filesystem', exposureFromConfig({ hide: ['delete_*'] }));
    await settle();
    expect(told).toEqual([]);
  });

  it('reports a change of hidden entries only to catalog listeners, not to agents', async () => {
    const { router, fs } = slave();
    await settle();
    const told: string[] = [];
    router.openSession({ notify: (method) => told.push(method) });
    let catalogChanges = 0;
    router.onCatalogChanged(() => catalogChanges++);
    fs.setCatalog({ ...FULL_CATALOG, tools: [...FULL_CATALOG.tools, tool('write_more')] });
    await settle();
    expect(told).toEqual([]);
    expect(catalogChanges).toBe(1);
    expect(router.exposureSummary()[0]?.tools.hidden).toContain('write_more');
  });

  it('drops resource updates of a URI hidden since the subscription', async () => {
    const { router, fs } = slave({ hide: [] });
    const updates: string[] = [];
    const session = router.openSession({ notify: (_m, p) => updates.push(String(p?.uri)) });
    await router.subscribeResource(session, 'diane://filesystem/file:///home/me/private/b.txt', signal());
    fs.emit({ type: 'resource-updated', uri: 'file:///home/me/private/b.txt' });
    router.setExposure('filesystem', Exposure.from({ hide: ['*private*'] }));
    fs.emit({ type: 'resource-updated', uri: 'file:///home/me/private/b.txt' });
    expect(updates).toEqual(['diane://filesystem/file:///home/me/private/b.txt']);
  });
});
