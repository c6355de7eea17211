import type { ServerCapabilities } from '@modelcontextprotocol/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import { DEFAULT_ROUTER_SETTINGS, Router, type RouterSettings } from '../../src/mcp/router.js';
import type {
  AgentRequest,
  AgentRequestHandler,
  CallOptions,
  ForwardedMethod,
  JsonObject,
  Upstream,
  UpstreamCatalog,
  UpstreamEvent,
  UpstreamStatus,
} from '../../src/mcp/upstream.js';
import { EMPTY_CATALOG, UpstreamUnavailableError } from '../../src/mcp/upstream.js';

const logger = createLogger('fatal');

interface SentRequest {
  method: ForwardedMethod;
  params: JsonObject;
  opts: CallOptions;
}

/** An upstream whose catalog, state and answers the test sets by hand. */
class FakeUpstream implements Upstream {
  readonly kind = 'stdio' as const;
  agentRequests?: AgentRequestHandler;
  state: UpstreamStatus['state'] = 'connected';
  catalogNow: UpstreamCatalog = EMPTY_CATALOG;
  capabilities: ServerCapabilities = { tools: {}, prompts: {}, resources: { subscribe: true }, logging: {} };
  readonly sent: SentRequest[] = [];
  answer: (req: SentRequest) => Promise<JsonObject> = async () => ({ content: [] });
  rootsChanged = 0;
  private readonly listeners = new Set<(event: UpstreamEvent) => void>();

  constructor(readonly name: string) {}

  status(): UpstreamStatus {
    return {
      name: this.name,
      kind: 'stdio',
      state: this.state,
      toolCount: 0,
      promptCount: 0,
      resourceCount: 0,
      restarts: 0,
    };
  }
  catalog(): UpstreamCatalog {
    return this.state === 'connected' ? this.catalogNow : EMPTY_CATALOG;
  }
  serverCapabilities(): ServerCapabilities | undefined {
    return this.state === 'connected' ? this.capabilities : undefined;
  }
  request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    const req = { method, params, opts };
    this.sent.push(req);
    if (this.state !== 'connected')
      return Promise.reject(new UpstreamUnavailableError(this.unavailableMessage()));
    return this.answer(req);
  }
  notifyRootsChanged(): void {
    this.rootsChanged++;
  }
  unavailableMessage(): string {
    return `Server ${this.name} is not available`;
  }
  subscribe(listener: (event: UpstreamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(event: UpstreamEvent): void {
    for (const l of this.listeners) l(event);
  }
  setCatalog(catalog: Partial<UpstreamCatalog>): void {
    this.catalogNow = { ...EMPTY_CATALOG, ...catalog };
    this.emit({ type: 'catalog', kind: 'tools' });
    this.emit({ type: 'catalog', kind: 'prompts' });
    this.emit({ type: 'catalog', kind: 'resources' });
  }
  setState(state: UpstreamStatus['state']): void {
    this.state = state;
    this.emit({ type: 'state' });
  }
  async stop(): Promise<void> {}
}

const tool = (name: string) => ({ name, inputSchema: { type: 'object' as const } });
const signal = () => new AbortController().signal;
const routers: Router[] = [];

function newRouter(settings: Partial<RouterSettings> = {}): Router {
  const router = new Router({ ...DEFAULT_ROUTER_SETTINGS, listChangedDebounceMs: 10, ...settings }, logger);
  routers.push(router);
  return router;
}

afterEach(() => {
  while (routers.length) routers.pop()?.close();
  vi.useRealTimers();
});

describe('Router: names and URIs', () => {
  it('routes tools and prompts through the table to the original name', async () => {
    const router = newRouter();
    const fs = new FakeUpstream('fs');
    fs.setCatalog({ tools: [tool('read_file')], prompts: [{ name: 'summarize' }] });
    router.add(fs);
    const call = router.startCall(
      'tools/call',
      { name: 'fs_read_file', arguments: { path: '/x' } },
      { signal: signal() },
    );
    expect(await call.next()).toMatchObject({ kind: 'result' });
    expect(fs.sent[0]).toMatchObject({
      method: 'tools/call',
      params: { name: 'read_file', arguments: { path: '/x' } },
    });
    const prompt = router.startCall('prompts/get', { name: 'fs_summarize' }, { signal: signal() });
    await prompt.next();
    expect(fs.sent[1]).toMatchObject({ method: 'prompts/get', params: { name: 'summarize' } });
    expect(() => router.startCall('prompts/get', { name: 'fs_nope' }, { signal: signal() })).toThrow(
      /Unknown prompt/,
    );
  });

  it('refuses colliding prompt names for every claimant and says why', () => {
    const router = newRouter();
    const a = new FakeUpstream('a');
    a.setCatalog({ prompts: [{ name: 'b_x' }] });
    const ab = new FakeUpstream('a_b');
    ab.setCatalog({ prompts: [{ name: 'x' }] });
    router.add(a);
    router.add(ab);
    expect(router.promptTable().exposed).toEqual([]);
    expect(router.promptTable().rejected.map((r) => r.reason)).toEqual(['collision', 'collision']);
    expect(() => router.startCall('prompts/get', { name: 'a_b_x' }, { signal: signal() })).toThrow(
      /collision/,
    );
  });

  it('gives resources diane:// URIs, keeps the original in _meta, and routes reads back', async () => {
    const router = newRouter();
    const fs = new FakeUpstream('fs');
    fs.setCatalog({
      resources: [
        { uri: 'file:///a.txt', name: 'a' },
        { uri: 'no-scheme', name: 'bad' },
      ],
      resourceTemplates: [{ uriTemplate: 'file:///{path}', name: 'any' }],
    });
    fs.answer = async (req) => ({ contents: [{ uri: req.params.uri, text: 'A' }] });
    router.add(fs);
    const listing = router.resourceListing();
    expect(listing.resources).toEqual([
      { uri: 'diane://fs/file:///a.txt', name: 'a', _meta: { 'dev.diane/originalUri': 'file:///a.txt' } },
    ]);
    expect(listing.rejected).toEqual([
      expect.objectContaining({ exposedName: 'no-scheme', reason: 'not-a-uri' }),
    ]);
    expect(listing.resourceTemplates[0]?.uriTemplate).toBe('diane://fs/file:///{path}');
    const read = router.startCall(
      'resources/read',
      { uri: 'diane://fs/file:///b.txt' },
      { signal: signal() },
    );
    expect(await read.next()).toEqual({
      kind: 'result',
      result: {
        contents: [
          { uri: 'diane://fs/file:///b.txt', text: 'A', _meta: { 'dev.diane/originalUri': 'file:///b.txt' } },
        ],
      },
    });
    expect(fs.sent[0]?.params.uri).toBe('file:///b.txt');
    expect(() =>
      router.startCall('resources/read', { uri: 'diane://other/file:///a' }, { signal: signal() }),
    ).toThrow(/Unknown resource/);
  });

  it('nests the URIs of an upstream that is itself a Diane instead of wrapping them twice', () => {
    const router = newRouter();
    const host = new FakeUpstream('ws1');
    host.setCatalog({
      resources: [
        { uri: 'diane://fs/file:///a.txt', name: 'a', _meta: { 'dev.diane/originalUri': 'file:///a.txt' } },
      ],
    });
    router.add(host);
    expect(router.resourceListing().resources[0]).toMatchObject({
      uri: 'diane://ws1/fs/file:///a.txt',
      _meta: { 'dev.diane/originalUri': 'file:///a.txt' },
    });
  });

  it('passes names and URIs unchanged in transparent mode, for one upstream only', async () => {
    const router = newRouter({ naming: 'transparent' });
    const daemon = new FakeUpstream('daemon');
    daemon.setCatalog({ tools: [tool('fs_read')], resources: [{ uri: 'diane://fs/file:///a', name: 'a' }] });
    router.add(daemon);
    expect(router.toolTable().exposed.map((t) => t.exposedName)).toEqual(['fs_read']);
    expect(router.resourceListing().resources[0]?.uri).toBe('diane://fs/file:///a');
    await router.startCall('resources/read', { uri: 'diane://fs/file:///a' }, { signal: signal() }).next();
    expect(daemon.sent[0]?.params.uri).toBe('diane://fs/file:///a');
    expect(() => router.add(new FakeUpstream('second'))).toThrow(/exactly one upstream/);
  });

  it('pages lists behind opaque cursors and refuses a forged one', () => {
    const router = newRouter({ listPageSize: 2 });
    const up = new FakeUpstream('u');
    up.setCatalog({ tools: ['a', 'b', 'c', 'd', 'e'].map(tool) });
    router.add(up);
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = router.list('tools', cursor);
      expect(page.items.length).toBeLessThanOrEqual(2);
      names.push(...page.items.map((t) => (t as { name: string }).name));
      cursor = page.nextCursor;
    } while (cursor);
    expect(names).toEqual(['u_a', 'u_b', 'u_c', 'u_d', 'u_e']);
    expect(() => router.list('tools', 'bm90LWEtY3Vyc29y')).toThrow(/Invalid cursor/);
    const promptCursor = router.list('tools', undefined).nextCursor!;
    expect(() => router.list('prompts', promptCursor)).toThrow(/Invalid cursor/);
  });

  it('announces each list change once per burst, and only for the list that changed', async () => {
    const router = newRouter();
    const kinds: string[] = [];
    router.onListChanged((kind) => kinds.push(kind));
    const up = new FakeUpstream('u');
    router.add(up);
    await new Promise((r) => setTimeout(r, 30));
    kinds.length = 0;
    up.setCatalog({ tools: [tool('a')] });
    up.setCatalog({ tools: [tool('a'), tool('b')] });
    await new Promise((r) => setTimeout(r, 30));
    expect(kinds).toEqual(['tools']);
    up.setCatalog({ tools: [tool('a'), tool('b')] });
    await new Promise((r) => setTimeout(r, 30));
    expect(kinds).toEqual(['tools']);
  });
});

describe('Router: what one upstream may put in a list', () => {
  it('refuses names outside the MCP charset, and says why', () => {
    const router = newRouter();
    const up = new FakeUpstream('ws1');
    up.setCatalog({
      tools: [tool('ok.name-1_x'), tool('\u001b[2Jclear'), tool(''), tool('x'.repeat(129)), tool('spa ce')],
      prompts: [{ name: 'rtl\u202eevil' }],
    });
    router.add(up);
    expect(router.toolTable().exposed.map((t) => t.exposedName)).toEqual(['ws1_ok.name-1_x']);
    expect(router.toolTable().rejected.map((r) => r.reason)).toEqual([
      'bad-name',
      'bad-name',
      'bad-name',
      'bad-name',
    ]);
    expect(router.promptTable().rejected).toEqual([
      expect.objectContaining({ reason: 'bad-name', upstream: 'ws1' }),
    ]);
  });

  it('exposes at most maxEntries per upstream and list, and summarises the rest in one row', () => {
    const router = newRouter({ upstreamLimits: { maxEntries: 3, maxBytes: 1_000_000 } });
    const flood = new FakeUpstream('flood');
    flood.setCatalog({ tools: Array.from({ length: 60_000 }, (_, i) => tool(`t${i}`)) });
    const calm = new FakeUpstream('calm');
    calm.setCatalog({ tools: [tool('a'), tool('b')] });
    router.add(flood);
    router.add(calm);
    expect(router.toolTable().exposed.map((t) => t.exposedName)).toEqual([
      'calm_a',
      'calm_b',
      'flood_t0',
      'flood_t1',
      'flood_t2',
    ]);
    expect(router.toolTable().rejected).toEqual([
      expect.objectContaining({
        upstream: 'flood',
        reason: 'upstream-cap',
        originalName: '59997 more tools',
        detail: 'flood offers 60000 tools; at most 3 per upstream are exposed',
      }),
    ]);
  });

  it('stops at the byte budget of an upstream, resources and templates together', () => {
    const router = newRouter({ upstreamLimits: { maxEntries: 100, maxBytes: 200 } });
    const up = new FakeUpstream('u');
    const big = 'd'.repeat(120);
    up.setCatalog({
      tools: [
        { ...tool('a'), description: big },
        { ...tool('b'), description: big },
      ],
      resources: [{ uri: 'file:///a', name: big }],
      resourceTemplates: [{ uriTemplate: 'file:///{x}', name: big }],
    });
    router.add(up);
    expect(router.toolTable().exposed.map((t) => t.exposedName)).toEqual(['u_a']);
    expect(router.toolTable().rejected[0]).toMatchObject({ reason: 'too-large' });
    expect(router.resourceListing().resources).toHaveLength(1);
    expect(router.resourceListing().resourceTemplates).toHaveLength(0);
    expect(router.resourceListing().rejected[0]).toMatchObject({
      reason: 'too-large',
      originalName: '1 more resources',
    });
  });

  it('puts no limits on a transparent router (the bridge serves one trusted daemon)', () => {
    const router = newRouter({ naming: 'transparent', upstreamLimits: { maxEntries: 1, maxBytes: 10 } });
    const daemon = new FakeUpstream('daemon');
    daemon.setCatalog({ tools: [tool('a_b'), tool('c_d')] });
    router.add(daemon);
    expect(router.toolTable().exposed).toHaveLength(2);
  });
});

describe('Router: calls', () => {
  it('answers a call to an offline upstream as a tool error, and a prompt as a protocol error', async () => {
    const router = newRouter();
    const up = new FakeUpstream('u');
    up.setCatalog({ tools: [tool('t')], prompts: [{ name: 'p' }] });
    router.add(up);
    up.answer = () => Promise.reject(new UpstreamUnavailableError('Server u is not available'));
    expect(await router.startCall('tools/call', { name: 'u_t' }, { signal: signal() }).next()).toEqual({
      kind: 'result',
      result: { content: [{ type: 'text', text: 'Server u is not available' }], isError: true },
    });
    const step = await router.startCall('prompts/get', { name: 'u_p' }, { signal: signal() }).next();
    expect(step).toMatchObject({
      kind: 'error',
      error: expect.objectContaining({ message: expect.stringMatching(/not available/) }),
    });
  });

  it('times a silent call out, but not while the agent is answering the upstream', async () => {
    const router = newRouter({ callTimeoutMs: 50 });
    const up = new FakeUpstream('u');
    up.setCatalog({ tools: [tool('ask'), tool('hang')] });
    router.add(up);
    up.answer = (req) => {
      if (req.params.name === 'hang') {
        return new Promise((_resolve, reject) =>
          req.opts.signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      }
      return (async () => {
        const answer = await router.routeAgentRequest('u', { method: 'roots/list', params: {} }, signal());
        return { content: [{ type: 'text', text: JSON.stringify(answer) }] };
      })();
    };
    const hung = await router.startCall('tools/call', { name: 'u_hang' }, { signal: signal() }).next();
    expect(hung).toMatchObject({ kind: 'result', result: { isError: true } });
    expect(JSON.stringify(hung)).toContain('timed out');

    const call = router.startCall(
      'tools/call',
      { name: 'u_ask' },
      { signal: signal(), capabilities: { roots: {} } },
    );
    const input = await router.step(call, { keepSignal: true });
    expect(input.kind).toBe('input');
    await new Promise((r) => setTimeout(r, 150)); // three idle timeouts while the agent "thinks"
    const resumed = router.resumeCall(call.id)!;
    resumed.answer({ r1: { roots: [] } });
    expect(await resumed.next()).toMatchObject({
      kind: 'result',
      result: { content: [{ text: '{"roots":[]}' }] },
    });
  });

  it("uses a server's own timeout, but never beyond the hard cap", async () => {
    // Far apart, so that a loaded machine cannot blur the three: 20 ms, the 800 ms cap, 60 s.
    const router = newRouter({ callTimeoutMs: 60_000, callTimeoutCapMs: 800 });
    const hang = (up: FakeUpstream) => {
      up.setCatalog({ tools: [tool('hang')] });
      up.answer = (req) =>
        new Promise((_resolve, reject) =>
          req.opts.signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
    };
    const patient = new FakeUpstream('patient');
    const quick = new FakeUpstream('quick');
    hang(patient);
    hang(quick);
    router.add(patient, { timeoutMs: 60_000 });
    router.add(quick, { timeoutMs: 20 });
    for (const [name, withinMs] of [
      ['patient_hang', 5000],
      ['quick_hang', 400],
    ] as const) {
      const started = Date.now();
      const result = await router.startCall('tools/call', { name }, { signal: signal() }).next();
      expect(result).toMatchObject({ kind: 'result', result: { isError: true } });
      expect(JSON.stringify(result)).toContain('timed out');
      expect(Date.now() - started).toBeLessThan(withinMs);
    }
  });

  it('cancels the upstream request when the agent goes away', async () => {
    const router = newRouter();
    const up = new FakeUpstream('u');
    up.setCatalog({ tools: [tool('t')] });
    router.add(up);
    let aborted = false;
    up.answer = (req) =>
      new Promise((_resolve, reject) =>
        req.opts.signal.addEventListener('abort', () => {
          aborted = true;
          reject(new Error('cancelled'));
        }),
      );
    const agent = new AbortController();
    const call = router.startCall('tools/call', { name: 'u_t' }, { signal: agent.signal });
    agent.abort();
    await call.next();
    expect(aborted).toBe(true);
  });
});

describe('Router: requests from upstreams to agents', () => {
  const sampling: AgentRequest = { method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } };

  function setup() {
    const router = newRouter();
    const up = new FakeUpstream('u');
    up.setCatalog({ tools: [tool('t')] });
    router.add(up);
    const pending: { resolve: (v: JsonObject) => void }[] = [];
    up.answer = () => new Promise((resolve) => pending.push({ resolve }));
    return { router, up, pending };
  }

  it('goes to the most recent call in flight on that upstream whose agent can answer', async () => {
    const { router, pending } = setup();
    const older = router.startCall(
      'tools/call',
      { name: 'u_t' },
      { signal: signal(), capabilities: { sampling: {} } },
    );
    const mute = router.startCall('tools/call', { name: 'u_t' }, { signal: signal(), capabilities: {} });
    await new Promise((r) => setTimeout(r, 2));
    const newer = router.startCall(
      'tools/call',
      { name: 'u_t' },
      { signal: signal(), capabilities: { sampling: {} } },
    );
    const answer = router.routeAgentRequest('u', sampling, signal());
    const step = await router.step(newer, { keepSignal: true });
    expect(step).toMatchObject({ kind: 'input', requests: { r1: { method: 'sampling/createMessage' } } });
    router
      .resumeCall(newer.id)!
      .answer({ r1: { role: 'assistant', model: 'm', content: { type: 'text', text: 'hi' } } });
    expect(await answer).toMatchObject({ model: 'm' });
    for (const p of pending) p.resolve({ content: [] });
    await Promise.all([older.next(), mute.next(), newer.next()]);
  });

  it('follows the correlation id of a Diane peer exactly, and echoes the peer id it was given', async () => {
    const { router, up, pending } = setup();
    const named = router.startCall(
      'tools/call',
      { name: 'u_t', _meta: { 'dev.diane/call': 'peer-42' } },
      { signal: signal(), capabilities: { sampling: {} } },
    );
    await new Promise((r) => setTimeout(r, 2));
    const later = router.startCall(
      'tools/call',
      { name: 'u_t' },
      { signal: signal(), capabilities: { sampling: {} } },
    );
    // The upstream was sent each call's own id, not the peer's.
    const sentId = up.sent[0]?.opts.meta?.['dev.diane/call'];
    expect(sentId).toBe(named.id);
    expect(up.sent[0]?.params._meta).toBeUndefined();
    const relayed = router
      .routeAgentRequest(
        'u',
        { ...sampling, params: { ...sampling.params, _meta: { 'dev.diane/call': sentId } } },
        signal(),
      )
      .catch((err: Error) => err.message);
    const step = await router.step(named, { keepSignal: true });
    expect(step).toMatchObject({
      kind: 'input',
      requests: { r1: { params: { _meta: { 'dev.diane/call': 'peer-42' } } } },
    });
    for (const p of pending) p.resolve({ content: [] });
    await later.next();
    expect(await relayed).toMatch(/ended before the agent answered/);
  });

  it('refuses clearly when no agent with the capability has a call in flight there', async () => {
    const { router, pending } = setup();
    await expect(router.routeAgentRequest('u', sampling, signal())).rejects.toThrow(
      /no agent that supports it/,
    );
    const call = router.startCall(
      'tools/call',
      { name: 'u_t' },
      { signal: signal(), capabilities: { elicitation: {} } },
    );
    await expect(router.routeAgentRequest('u', sampling, signal())).rejects.toThrow(/no agent/);
    await expect(
      router.routeAgentRequest(
        'u',
        { method: 'elicitation/create', params: { mode: 'url', url: 'https://x' } },
        signal(),
      ),
    ).rejects.toThrow(/no agent/);
    await expect(router.routeAgentRequest('other', sampling, signal())).rejects.toThrow(/no agent/);
    pending[0]?.resolve({ content: [] });
    await call.next();
  });

  it('expires a call whose agent never comes back, cancelling it upstream', async () => {
    const router = newRouter({ inputTimeoutMs: 30 });
    const up = new FakeUpstream('u');
    up.setCatalog({ tools: [tool('t')] });
    router.add(up);
    let aborted = false;
    up.answer = async (req) => {
      req.opts.signal.addEventListener('abort', () => {
        aborted = true;
      });
      await router.routeAgentRequest('u', sampling, signal()).catch(() => undefined);
      return new Promise((_r, reject) =>
        req.opts.signal.addEventListener('abort', () => reject(new Error('gone'))),
      );
    };
    const call = router.startCall(
      'tools/call',
      { name: 'u_t' },
      { signal: signal(), capabilities: { sampling: {} } },
    );
    expect((await router.step(call, { keepSignal: false })).kind).toBe('input');
    await new Promise((r) => setTimeout(r, 80));
    expect(aborted).toBe(true);
    expect(router.resumeCall(call.id)).toBeUndefined();
  });
});

describe('Router: logging and subscriptions', () => {
  it('sets upstreams to the most verbose level asked and filters per agent', () => {
    const router = newRouter();
    const up = new FakeUpstream('u');
    router.add(up);
    const got: Record<string, string[]> = { a: [], b: [], c: [] };
    const session = (name: string) =>
      router.openSession({ notify: (_m, p) => got[name]!.push(`${p.level}:${p.logger}`) });
    const a = session('a');
    const b = session('b');
    session('c'); // never sets a level: info and above
    router.setLogLevel(a, 'debug');
    router.setLogLevel(b, 'error');
    expect(up.sent.filter((s) => s.method === 'logging/setLevel').map((s) => s.params.level)).toEqual([
      'debug',
    ]);
    up.emit({ type: 'log', params: { level: 'debug', logger: 'inner', data: 'x' } });
    up.emit({ type: 'log', params: { level: 'info', data: 'y' } });
    up.emit({ type: 'log', params: { level: 'error', data: 'z' } });
    expect(got.a).toEqual(['debug:u/inner', 'info:u', 'error:u']);
    expect(got.b).toEqual(['error:u']);
    expect(got.c).toEqual(['info:u', 'error:u']);
    router.closeSession(a);
    expect(up.sent.filter((s) => s.method === 'logging/setLevel').map((s) => s.params.level)).toEqual([
      'debug',
      'info',
    ]);
  });

  it('subscribes upstream once per URI, delivers updates in agent form, and renews after a reconnect', async () => {
    const router = newRouter();
    const up = new FakeUpstream('u');
    router.add(up);
    const updates: string[][] = [[], []];
    const s1 = router.openSession({ notify: (_m, p) => updates[0]!.push(String(p.uri)) });
    const s2 = router.openSession({ notify: (_m, p) => updates[1]!.push(String(p.uri)) });
    await router.subscribeResource(s1, 'diane://u/file:///a', signal());
    await router.subscribeResource(s2, 'diane://u/file:///a', signal());
    const subscribes = () => up.sent.filter((s) => s.method === 'resources/subscribe').length;
    expect(subscribes()).toBe(1);
    up.emit({ type: 'resource-updated', uri: 'file:///a' });
    up.emit({ type: 'resource-updated', uri: 'file:///other' });
    expect(updates).toEqual([['diane://u/file:///a'], ['diane://u/file:///a']]);
    up.setState('backoff');
    up.setState('connected');
    expect(subscribes()).toBe(2);
    await router.unsubscribeResource(s1, 'diane://u/file:///a');
    expect(up.sent.some((s) => s.method === 'resources/unsubscribe')).toBe(false);
    router.closeSession(s2);
    expect(up.sent.filter((s) => s.method === 'resources/unsubscribe').map((s) => s.params.uri)).toEqual([
      'file:///a',
    ]);
  });

  it('refuses a subscription the upstream cannot serve', async () => {
    const router = newRouter();
    const up = new FakeUpstream('u');
    up.capabilities = { resources: {} };
    router.add(up);
    const s = router.openSession({ notify: () => {} });
    await expect(router.subscribeResource(s, 'diane://u/file:///a', signal())).rejects.toThrow(
      /does not support/,
    );
  });

  it('routes completion by prompt name and by template, and passes roots changes on', async () => {
    const router = newRouter();
    const up = new FakeUpstream('u');
    up.setCatalog({ prompts: [{ name: 'p' }] });
    up.answer = async () => ({ completion: { values: ['v'] } });
    router.add(up);
    await router.complete(
      { ref: { type: 'ref/prompt', name: 'u_p' }, argument: { name: 'a', value: '' } },
      signal(),
    );
    await router.complete(
      { ref: { type: 'ref/resource', uri: 'diane://u/file:///{x}' }, argument: { name: 'x', value: '' } },
      signal(),
    );
    expect(up.sent.map((s) => s.params.ref)).toEqual([
      { type: 'ref/prompt', name: 'p' },
      { type: 'ref/resource', uri: 'file:///{x}' },
    ]);
    await expect(router.complete({ ref: { type: 'ref/other' } }, signal())).rejects.toThrow(
      /Unknown completion/,
    );
    router.rootsChanged();
    expect(up.rootsChanged).toBe(1);
  });
});
