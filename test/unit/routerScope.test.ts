import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { AGENT_META_KEY, type CallRecord } from '../../src/mcp/callRecords.js';
import { createFrontServer } from '../../src/mcp/frontServer.js';
import {
  DEFAULT_ROUTER_SETTINGS,
  type RefusedRequest,
  Router,
  type RouterSettings,
} from '../../src/mcp/router.js';
import { LOCAL_HOST, Scope } from '../../src/mcp/scope.js';
import type { JsonObject } from '../../src/mcp/upstream.js';
import { FakeUpstream, tool } from '../helpers/fakeUpstream.js';

const logger = createLogger('fatal');
const signal = () => new AbortController().signal;
const routers: Router[] = [];
const clients: Client[] = [];

function newRouter(settings: Partial<RouterSettings> = {}): Router {
  const router = new Router({ ...DEFAULT_ROUTER_SETTINGS, listChangedDebounceMs: 10, ...settings }, logger);
  routers.push(router);
  return router;
}

afterEach(async () => {
  while (clients.length) await clients.pop()?.close();
  while (routers.length) routers.pop()?.close();
});

const settle = () => new Promise((r) => setTimeout(r, 40));

/** Two slaves and a local server, as a master sees them. */
function cluster(settings: Partial<RouterSettings> = {}) {
  const router = newRouter(settings);
  const ws = new FakeUpstream('ws', 'ws');
  ws.setCatalog({
    tools: ['fs_read_file', 'fs_list_dir', 'fs_delete_file', 'fs_write_file'].map(tool),
    prompts: [{ name: 'fs_review' }],
    resources: [
      { uri: 'diane://fs/file:///home/me/a.txt', name: 'a' },
      { uri: 'diane://fs/file:///etc/passwd', name: 'passwd' },
    ],
    resourceTemplates: [{ uriTemplate: 'diane://fs/file:///{path}', name: 'any file' }],
  });
  const laptop = new FakeUpstream('laptop', 'laptop');
  laptop.setCatalog({
    tools: ['fs_read_file', 'mail_send'].map(tool),
    prompts: [{ name: 'mail_draft' }],
    resources: [{ uri: 'diane://mail/mail:///inbox', name: 'inbox' }],
  });
  const github = new FakeUpstream('github');
  github.setCatalog({ tools: ['search', 'create_issue'].map(tool), prompts: [{ name: 'triage' }] });
  router.add(ws);
  router.add(laptop);
  router.add(github);
  return { router, ws, laptop, github };
}

function allPages(router: Router, kind: Parameters<Router['list']>[0], scope: Scope): string[] {
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = router.list(kind, cursor, scope);
    expect(page.items.length).toBeLessThanOrEqual(DEFAULT_PAGE);
    for (const item of page.items as { name?: string; uri?: string; uriTemplate?: string }[]) {
      seen.push(item.uri ?? item.uriTemplate ?? item.name!);
    }
    cursor = page.nextCursor;
  } while (cursor);
  return seen;
}
const DEFAULT_PAGE = 2;

/** What a call throws, in the form an agent receives it. */
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

describe('Router scopes: lists', () => {
  it('shows each scope only its entries, across every page', () => {
    const { router } = cluster({ listPageSize: DEFAULT_PAGE });
    const scope = Scope.parse({
      allow: ['host:ws', 'tool:github_search', 'resource:diane://laptop/*'],
      deny: ['*_delete_*', 'diane://ws/fs/file:///etc/*'],
    });
    expect(allPages(router, 'tools', scope)).toEqual([
      'github_search',
      'ws_fs_read_file',
      'ws_fs_list_dir',
      'ws_fs_write_file',
    ]);
    expect(allPages(router, 'prompts', scope)).toEqual(['ws_fs_review']);
    expect(allPages(router, 'resources', scope)).toEqual([
      'diane://laptop/mail/mail:///inbox',
      'diane://ws/fs/file:///home/me/a.txt',
    ]);
    expect(allPages(router, 'resourceTemplates', scope)).toEqual(['diane://ws/fs/file:///{path}']);
    // The full scope still pages over everything.
    expect(allPages(router, 'tools', Scope.full())).toHaveLength(8);
  });

  it('pages a scoped list with cursors that count within the scope', () => {
    const { router } = cluster({ listPageSize: DEFAULT_PAGE });
    const scope = Scope.parse({ allow: ['tool:*_fs_*'] });
    const first = router.list('tools', undefined, scope);
    expect(first.items.map((t) => (t as { name: string }).name)).toEqual([
      'laptop_fs_read_file',
      'ws_fs_read_file',
    ]);
    const second = router.list('tools', first.nextCursor, scope);
    expect(second.items.map((t) => (t as { name: string }).name)).toEqual([
      'ws_fs_list_dir',
      'ws_fs_delete_file',
    ]);
    const third = router.list('tools', second.nextCursor, scope);
    expect(third.items.map((t) => (t as { name: string }).name)).toEqual(['ws_fs_write_file']);
    expect(third.nextCursor).toBeUndefined();
  });

  it('gives local servers the host "local" and empty allow lists nothing', () => {
    const { router } = cluster();
    expect(router.hostOf('github')).toBe(LOCAL_HOST);
    expect(router.hostOf('ws')).toBe('ws');
    const local = Scope.parse({ allow: [`host:${LOCAL_HOST}`] });
    expect(router.list('tools', undefined, local).items.map((t) => (t as { name: string }).name)).toEqual([
      'github_search',
      'github_create_issue',
    ]);
    const none = Scope.parse({ allow: [] });
    for (const kind of ['tools', 'prompts', 'resources', 'resourceTemplates'] as const) {
      expect(router.list(kind, undefined, none).items).toEqual([]);
    }
  });

  it('follows the tables as they change', () => {
    const { router, laptop } = cluster();
    const scope = Scope.parse({ allow: ['host:laptop'] });
    expect(router.list('tools', undefined, scope).items).toHaveLength(2);
    laptop.setCatalog({ tools: [tool('one')] });
    expect(router.list('tools', undefined, scope).items).toEqual([tool('laptop_one')]);
  });
});

describe('Router scopes: calls outside the scope fail like unknown names', () => {
  const scope = Scope.parse({ allow: ['host:ws'] });

  /** The same cluster without the laptop: its names are really unknown there. */
  function withoutLaptop() {
    const router = newRouter();
    const ws = new FakeUpstream('ws', 'ws');
    ws.setCatalog({ tools: [tool('fs_read_file')] });
    router.add(ws);
    router.add(new FakeUpstream('github'));
    return router;
  }

  it('tools/call, prompts/get and resources/read', () => {
    const { router, laptop } = cluster();
    const empty = withoutLaptop();
    for (const [method, params] of [
      ['tools/call', { name: 'laptop_mail_send', arguments: {} }],
      ['tools/call', { name: 'github_search' }],
      ['prompts/get', { name: 'laptop_mail_draft' }],
      ['resources/read', { uri: 'diane://laptop/mail/mail:///inbox' }],
      ['resources/read', { uri: 'diane://github/anything:x' }],
    ] as const) {
      const outOfScope = thrown(() => router.startCall(method, params, { signal: signal(), scope }));
      const unknown = thrown(() => empty.startCall(method, params, { signal: signal(), scope }));
      expect(outOfScope).toEqual(unknown);
      expect(outOfScope.message).toMatch(/^Unknown (tool|prompt|resource): /);
    }
    expect(laptop.sent).toEqual([]);
  });

  it('gives no hint about an offline host or a refused name outside the scope', async () => {
    const { router, laptop } = cluster();
    const records: CallRecord[] = [];
    router.onCallFinished((record) => records.push(record));
    laptop.setState('offline');
    const call = router.startCall(
      'tools/call',
      { name: 'laptop_mail_send', arguments: { to: 'x' }, _meta: { [AGENT_META_KEY]: 'peer' } },
      { signal: signal(), agent: { name: 'owner', scope: Scope.full(), recordArguments: false } },
    );
    // The owner hears that the host is offline ...
    expect(JSON.stringify(await call.next())).toMatch(/not available/);
    // ... and the audit trail shows the call the outage turned away.
    expect(records).toEqual([
      expect.objectContaining({
        method: 'tools/call',
        agent: 'owner',
        peerAgent: 'peer',
        exposedName: 'laptop_mail_send',
        host: 'laptop',
        server: 'mail',
        originalName: 'send',
        outcome: 'tool_error',
        error: expect.stringMatching(/not available/),
        bytesOut: 0,
      }),
    ]);
    expect(records[0]!.bytesIn).toBeGreaterThan(0);
    records.length = 0;
    // A host whose entries are not in the table at all (it never connected since the start).
    const away = new FakeUpstream('away');
    away.setState('offline');
    router.add(away);
    const turnedAway = router.startCall('tools/call', { name: 'away_fs_read' }, { signal: signal() });
    expect(JSON.stringify(await turnedAway.next())).toMatch(/not available/);
    expect(away.sent).toEqual([]);
    expect(records).toEqual([
      expect.objectContaining({
        exposedName: 'away_fs_read',
        host: LOCAL_HOST,
        server: 'away',
        originalName: 'fs_read',
        outcome: 'tool_error',
        error: expect.stringMatching(/not available/),
      }),
    ]);
    // ... a scoped agent, that the tool does not exist.
    const scoped = thrown(() =>
      router.startCall('tools/call', { name: 'laptop_mail_send' }, { signal: signal(), scope }),
    );
    expect(scoped).toEqual(
      thrown(() =>
        withoutLaptop().startCall('tools/call', { name: 'laptop_mail_send' }, { signal: signal(), scope }),
      ),
    );
    expect(
      thrown(() =>
        router.startCall('prompts/get', { name: 'laptop_mail_draft' }, { signal: signal(), scope }),
      ).message,
    ).toBe('Unknown prompt: laptop_mail_draft');

    // A name refused by the table (a collision) is explained to those who could see it only.
    const a = new FakeUpstream('a');
    a.setCatalog({ tools: [tool('b_x')] });
    const ab = new FakeUpstream('a_b');
    ab.setCatalog({ tools: [tool('x')] });
    const colliding = newRouter();
    colliding.add(a);
    colliding.add(ab);
    expect(
      thrown(() => colliding.startCall('tools/call', { name: 'a_b_x' }, { signal: signal() })).message,
    ).toMatch(/not exposed: collision/);
    expect(
      thrown(() => colliding.startCall('tools/call', { name: 'a_b_x' }, { signal: signal(), scope })).message,
    ).toBe('Unknown tool: a_b_x');
  });

  it('completion/complete and resources/subscribe', async () => {
    const { router, laptop } = cluster();
    const empty = withoutLaptop();
    const session = router.openSession({ notify: () => {} }, scope);
    const emptySession = empty.openSession({ notify: () => {} }, scope);
    for (const ref of [
      { type: 'ref/prompt', name: 'laptop_mail_draft' },
      { type: 'ref/resource', uri: 'diane://laptop/mail/mail:///{box}' },
    ]) {
      const params: JsonObject = { ref, argument: { name: 'a', value: '' } };
      expect(await rejected(router.complete(params, signal(), scope))).toEqual(
        await rejected(empty.complete(params, signal(), scope)),
      );
    }
    const uri = 'diane://laptop/mail/mail:///inbox';
    expect(await rejected(router.subscribeResource(session, uri, signal()))).toEqual(
      await rejected(empty.subscribeResource(emptySession, uri, signal())),
    );
    expect(laptop.sent).toEqual([]);
    // In scope, both go through.
    await router.subscribeResource(session, 'diane://ws/fs/file:///home/me/a.txt', signal());
    await router.complete(
      { ref: { type: 'ref/prompt', name: 'ws_fs_review' }, argument: { name: 'a', value: '' } },
      signal(),
      scope,
    );
  });

  it('reports each refusal of an existing entry to onRefused, and nothing for unknown names', async () => {
    const { router } = cluster();
    const events: RefusedRequest[] = [];
    router.onRefused((e) => events.push(e));
    thrown(() => router.startCall('tools/call', { name: 'laptop_mail_send' }, { signal: signal(), scope }));
    thrown(() => router.startCall('prompts/get', { name: 'github_triage' }, { signal: signal(), scope }));
    const uri = 'diane://laptop/mail/mail:///inbox';
    thrown(() => router.startCall('resources/read', { uri }, { signal: signal(), scope }));
    await rejected(
      router.complete(
        { ref: { type: 'ref/prompt', name: 'laptop_mail_draft' }, argument: { name: 'a', value: '' } },
        signal(),
        scope,
      ),
    );
    // Unknown everywhere: not a refusal.
    thrown(() => router.startCall('tools/call', { name: 'laptop_nope' }, { signal: signal(), scope }));
    thrown(() =>
      router.startCall('resources/read', { uri: 'diane://nope/x:y' }, { signal: signal(), scope }),
    );
    expect(events).toEqual([
      {
        method: 'tools/call',
        reason: 'scope',
        kind: 'tool',
        exposedName: 'laptop_mail_send',
        host: 'laptop',
        server: 'laptop',
        name: 'mail_send',
        scope,
      },
      {
        method: 'prompts/get',
        reason: 'scope',
        kind: 'prompt',
        exposedName: 'github_triage',
        host: LOCAL_HOST,
        server: 'github',
        name: 'triage',
        scope,
      },
      {
        method: 'resources/read',
        reason: 'scope',
        kind: 'resource',
        exposedName: uri,
        host: 'laptop',
        server: 'laptop',
        name: 'diane://mail/mail:///inbox',
        scope,
      },
      expect.objectContaining({ method: 'completion/complete', reason: 'scope', name: 'mail_draft' }),
    ]);
  });

  it('lets a call in scope through, with the original name', async () => {
    const { router, ws } = cluster();
    const call = router.startCall('tools/call', { name: 'ws_fs_read_file' }, { signal: signal(), scope });
    expect((await call.next()).kind).toBe('result');
    expect(ws.sent[0]?.params.name).toBe('fs_read_file');
  });
});

describe('Router scopes: notifications', () => {
  function recorder(router: Router, scope?: Scope) {
    const got: string[] = [];
    const session = router.openSession(
      { notify: (method, params) => got.push(params?.uri ? `${method} ${params.uri}` : method) },
      scope,
    );
    return { got, session };
  }

  it('tells a session of a list change only when the change is within its scope', async () => {
    const { router, ws, laptop } = cluster();
    await settle();
    const owner = recorder(router);
    const wsOnly = recorder(router, Scope.parse({ allow: ['host:ws'] }));
    const laptopTools = recorder(router, Scope.parse({ allow: ['tool:laptop_*'] }));

    laptop.setCatalog({ ...laptop.catalogNow, prompts: [{ name: 'mail_draft' }, { name: 'mail_reply' }] });
    await settle();
    expect(owner.got).toEqual(['notifications/prompts/list_changed']);
    expect(wsOnly.got).toEqual([]);
    expect(laptopTools.got).toEqual([]);

    // A definition change counts, and so does a removal.
    laptop.setCatalog({ ...laptop.catalogNow, tools: [{ ...tool('fs_read_file'), description: 'new' }] });
    await settle();
    expect(laptopTools.got).toEqual(['notifications/tools/list_changed']);
    expect(wsOnly.got).toEqual([]);

    ws.setCatalog({ ...ws.catalogNow, resources: [] });
    await settle();
    expect(wsOnly.got).toEqual(['notifications/resources/list_changed']);
    expect(laptopTools.got).toEqual(['notifications/tools/list_changed']);
    expect(owner.got).toEqual([
      'notifications/prompts/list_changed',
      'notifications/tools/list_changed',
      'notifications/resources/list_changed',
    ]);
  });

  it('judges a removed upstream by the host it had', async () => {
    const { router } = cluster();
    await settle();
    const wsOnly = recorder(router, Scope.parse({ allow: ['host:ws'] }));
    const laptopOnly = recorder(router, Scope.parse({ allow: ['host:laptop'] }));
    router.remove('laptop');
    await settle();
    expect(wsOnly.got).toEqual([]);
    expect(laptopOnly.got).toEqual([
      'notifications/tools/list_changed',
      'notifications/prompts/list_changed',
      'notifications/resources/list_changed',
    ]);
  });

  it('setScope applies at once: lists, calls, subscriptions, and list_changed for every kind', async () => {
    const { router, ws } = cluster();
    await settle();
    const agent = recorder(router, Scope.parse({ allow: ['host:ws'] }));
    const uri = 'diane://ws/fs/file:///home/me/a.txt';
    await router.subscribeResource(agent.session, uri, signal());
    expect(router.list('tools', undefined, agent.session.scope).items).toHaveLength(4);

    router.setScope(agent.session, Scope.parse({ allow: ['host:laptop'] }));
    expect(agent.got).toEqual([
      'notifications/tools/list_changed',
      'notifications/prompts/list_changed',
      'notifications/resources/list_changed',
    ]);
    expect(
      router.list('tools', undefined, agent.session.scope).items.map((t) => (t as { name: string }).name),
    ).toEqual(['laptop_fs_read_file', 'laptop_mail_send']);
    // The subscription outside the new scope ended, upstream too.
    expect(agent.session.subscriptions.size).toBe(0);
    expect(ws.sent.map((s) => s.method)).toEqual(['resources/subscribe', 'resources/unsubscribe']);
    ws.emit({ type: 'resource-updated', uri: 'diane://fs/file:///home/me/a.txt' });
    expect(agent.got).toHaveLength(3);
    expect(() =>
      router.startCall(
        'tools/call',
        { name: 'ws_fs_read_file' },
        { signal: signal(), scope: agent.session.scope },
      ),
    ).toThrow('Unknown tool: ws_fs_read_file');
  });

  it('passes log messages only of upstreams the session sees something of', () => {
    const { router, ws, laptop } = cluster();
    const agent = recorder(router, Scope.parse({ allow: ['host:ws'] }));
    const owner = recorder(router);
    ws.emit({ type: 'log', params: { level: 'error', data: 'ws' } });
    laptop.emit({ type: 'log', params: { level: 'error', data: 'laptop' } });
    expect(agent.got).toEqual(['notifications/message']);
    expect(owner.got).toEqual(['notifications/message', 'notifications/message']);
  });
});

describe('Router scopes through the MCP front', () => {
  async function connect(router: Router, scope: Scope, persistent = true) {
    const server = createFrontServer(
      router,
      { name: 'diane', version: 'test' },
      {
        persistent,
        agent: { name: 'scoped', scope, recordArguments: false },
      },
    );
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const client = new Client({ name: 'agent', version: '1' });
    const changes: string[] = [];
    client.setNotificationHandler('notifications/tools/list_changed', () => void changes.push('tools'));
    await client.connect(clientSide);
    clients.push(client);
    return { client, changes };
  }

  it('lists, calls and announces within the scope of the session', async () => {
    const { router, ws, laptop } = cluster();
    await settle();
    const scope = Scope.parse({ allow: ['host:ws'], deny: ['tool:*_delete_*'] });
    const { client, changes } = await connect(router, scope);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([
      'ws_fs_read_file',
      'ws_fs_list_dir',
      'ws_fs_write_file',
    ]);
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual([
      'diane://ws/fs/file:///home/me/a.txt',
      'diane://ws/fs/file:///etc/passwd',
    ]);
    const outOfScope = await client.callTool({ name: 'ws_fs_delete_file' }).catch((e: Error) => e);
    const unknown = await client.callTool({ name: 'ws_fs_no_such_tool' }).catch((e: Error) => e);
    expect(outOfScope).toBeInstanceOf(Error);
    expect((outOfScope as Error).message.replace('ws_fs_delete_file', 'X')).toBe(
      (unknown as Error).message.replace('ws_fs_no_such_tool', 'X'),
    );
    expect(ws.sent).toEqual([]);

    laptop.setCatalog({ tools: [tool('new_one')] });
    await settle();
    expect(changes).toEqual([]);
    ws.setCatalog({ ...ws.catalogNow, tools: [tool('fs_read_file')] });
    await expect.poll(() => changes).toEqual(['tools']);
  });

  it('a per-request front (2026-07-28) uses the scope it was given', async () => {
    const { router } = cluster();
    const { client } = await connect(router, Scope.parse({ allow: ['prompt:*'] }), false);
    expect((await client.listTools()).tools).toEqual([]);
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual([
      'github_triage',
      'laptop_mail_draft',
      'ws_fs_review',
    ]);
  });
});
