import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { AgentDirectory, AgentIdentity } from '../../src/mcp/agentIdentity.js';
import type { CallRecord } from '../../src/mcp/callRecords.js';
import { HttpFront } from '../../src/mcp/httpFront.js';
import { HttpRelaySession } from '../../src/mcp/relay/httpRelay.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import { Scope } from '../../src/mcp/scope.js';
import { SdkUpstream } from '../helpers/sdkUpstream.js';

const TOKEN = 'a'.repeat(43);
const SCOPED_TOKEN = 'b'.repeat(43);

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {});
  vi.restoreAllMocks();
  sdkSessions.clear();
});

function directory(): AgentDirectory {
  const owner: AgentIdentity = { name: 'owner', scope: Scope.full(), recordArguments: false };
  const scoped: AgentIdentity = {
    name: 'scoped',
    scope: Scope.parse({ allow: ['fx_echo', 'fx_progress'], deny: [] }),
    recordArguments: false,
  };
  return {
    authenticate: (token) => (token === TOKEN ? owner : token === SCOPED_TOKEN ? scoped : undefined),
  };
}

async function start(settings = DEFAULT_ROUTER_SETTINGS) {
  const served = relayCounter();
  const upstream = await new SdkUpstream('fx').start();
  closers.push(() => upstream.stop());
  const router = new Router(settings, silentLogger);
  router.add(upstream);
  const records: CallRecord[] = [];
  router.onCallFinished((r) => records.push(r));
  const front = new HttpFront({
    router,
    info: { name: 'diane-test', version: '0' },
    host: '127.0.0.1',
    port: 0,
    agents: directory(),
    logger: silentLogger,
    maxRequestBytes: 4 * 1024 * 1024,
    sessions: { maxPerCredential: 10, reclaimIdleMs: 60_000 },
    health: () => ({}),
  });
  closers.push(() => front.close());
  const { port } = await front.listen();
  return { upstream, router, records, served, url: `http://127.0.0.1:${port}/mcp` };
}

/** Sessions made to take the SDK path: the relay's `tryServe` declines their POSTs. */
const sdkSessions = new Set<string>();

/**
 * A real SDK client, on the relay path or made to take the SDK path. `agent` registers handlers
 * for the questions an upstream may ask (and declares those capabilities).
 */
async function connect(
  url: string,
  opts: { relay: boolean; token?: string; agent?: (client: Client) => void },
): Promise<Client> {
  const client = new Client(
    { name: 'agent', version: '1' },
    { capabilities: opts.agent ? { sampling: {}, elicitation: {}, roots: { listChanged: true } } : {} },
  );
  opts.agent?.(client);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${opts.token ?? TOKEN}` } },
  });
  await client.connect(transport);
  if (!opts.relay) sdkSessions.add(transport.sessionId!);
  closers.push(() => client.close());
  return client;
}

/** Counts the POSTs the relay served; the SDK-path sessions' POSTs all go to the SDK transport. */
function relayCounter() {
  const served = { count: 0 };
  const original = HttpRelaySession.prototype.tryServe;
  vi.spyOn(HttpRelaySession.prototype, 'tryServe').mockImplementation(function (
    this: HttpRelaySession,
    ...args
  ) {
    if (sdkSessions.has(String(args[0].headers['mcp-session-id']))) return false;
    const taken = original.apply(this, args);
    if (taken) served.count++;
    return taken;
  });
  return served;
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value }),
    (error) => ({ error: { code: error.code, message: error.message, data: error.data } }),
  );

describe('HTTP front relay path, against a real SDK client', () => {
  it('answers hot requests exactly as the SDK path does', async () => {
    const { url, served } = await start();
    const lean = await connect(url, { relay: true });
    const sdk = await connect(url, { relay: false });
    const calls = [
      (c: Client) => c.callTool({ name: 'fx_echo', arguments: { text: 'héllo "q"\n' } }),
      (c: Client) => c.callTool({ name: 'fx_toolError' }),
      (c: Client) => c.callTool({ name: 'fx_fail' }),
      (c: Client) => c.callTool({ name: 'nope_tool' }),
      (c: Client) => c.callTool({ name: 'fx_big', arguments: { bytes: 200_000 } }),
      (c: Client) => c.getPrompt({ name: 'fx_greet', arguments: { who: 'ann' } }),
      (c: Client) => c.readResource({ uri: 'diane://fx/file:///a.txt' }),
      (c: Client) => c.readResource({ uri: 'diane://fx/file:///missing' }),
      (c: Client) => c.readResource({ uri: 'diane://nowhere/x' }),
    ];
    for (const call of calls) {
      const before = served.count;
      const viaRelay = await settle(call(lean));
      expect(served.count).toBe(before + 1);
      const viaSdk = await settle(call(sdk));
      expect(served.count).toBe(before + 1);
      expect(JSON.stringify(viaRelay)).toBe(JSON.stringify(viaSdk));
    }
  });

  it('answers every list, page by page, exactly as the SDK path does', async () => {
    const { url, served } = await start({ ...DEFAULT_ROUTER_SETTINGS, listPageSize: 2 });
    for (const token of [TOKEN, SCOPED_TOKEN]) {
      const lean = await connect(url, { relay: true, token });
      const sdk = await connect(url, { relay: false, token });
      // One page at a time (the SDK's list helpers page through everything by themselves).
      const page = (method: string) => (c: Client, cursor?: string) =>
        c.request({ method, params: cursor === undefined ? {} : { cursor } } as never) as Promise<{
          nextCursor?: string;
        }>;
      const lists = ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list'].map(page);
      let pages = 0;
      for (const list of lists) {
        let cursor: string | undefined;
        do {
          // The SDK client may list on its own after connecting: those POSTs count too.
          const before = served.count;
          const viaRelay = await list(lean, cursor);
          const after = served.count;
          expect(after).toBeGreaterThan(before);
          const viaSdk = await list(sdk, cursor);
          expect(served.count).toBe(after);
          expect(JSON.stringify(viaRelay)).toBe(JSON.stringify(viaSdk));
          cursor = viaRelay.nextCursor;
          pages++;
        } while (cursor !== undefined);
        const badRelay = await settle(list(lean, 'not-a-cursor'));
        expect(badRelay).toEqual(await settle(list(sdk, 'not-a-cursor')));
        expect(badRelay).toMatchObject({ error: { code: -32602 } });
      }
      // Paging happened for the full scope: the fixture has more than two tools.
      if (token === TOKEN) expect(pages).toBeGreaterThan(lists.length);
    }
  });

  it('refuses out-of-scope names exactly like unknown ones, and audits the same', async () => {
    const { url, records } = await start();
    const lean = await connect(url, { relay: true, token: SCOPED_TOKEN });
    const sdk = await connect(url, { relay: false, token: SCOPED_TOKEN });
    const hidden = await settle(lean.callTool({ name: 'fx_fail' }));
    expect(hidden).toEqual(await settle(sdk.callTool({ name: 'fx_fail' })));
    const unknown = await settle(lean.callTool({ name: 'fx_unknown' }));
    expect(JSON.stringify(hidden).replace('fx_fail', 'fx_unknown')).toBe(JSON.stringify(unknown));
    await lean.callTool({ name: 'fx_echo', arguments: { text: 'x' } });
    await sdk.callTool({ name: 'fx_echo', arguments: { text: 'x' } });
    await expect.poll(() => records.length).toBe(2);
    const strip = ({ durationMs: _d, startedAt: _s, callId: _c, ...rest }: CallRecord) => rest;
    expect(strip(records[0]!)).toEqual(strip(records[1]!));
    expect(records[0]!.agent).toBe('scoped');
  });

  it('streams progress in order before the result, as an event stream', async () => {
    const { url } = await start();
    const lean = await connect(url, { relay: true });
    const seen: string[] = [];
    const result = await lean.callTool(
      { name: 'fx_progress', arguments: { steps: 4 } },
      { onprogress: (p) => seen.push(`${p.progress}/${p.total}`) },
    );
    seen.push('result');
    expect(result.content).toEqual([{ type: 'text', text: 'done' }]);
    expect(seen).toEqual(['1/4', '2/4', '3/4', '4/4', 'result']);
  });

  it('answers application/json when the result comes first, an event stream once progress does', async () => {
    const { url } = await start();
    await connect(url, { relay: true });
    const init = await fetch(url, {
      method: 'POST',
      headers: { ...jsonHeaders(), authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
      }),
    });
    await init.text();
    const session = init.headers.get('mcp-session-id')!;
    const post = (body: object) =>
      fetch(url, {
        method: 'POST',
        headers: { ...jsonHeaders(), authorization: `Bearer ${TOKEN}`, 'mcp-session-id': session },
        body: JSON.stringify(body),
      });
    await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).text();
    const plain = await post({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'fx_echo', arguments: { text: 't' } },
    });
    expect(plain.headers.get('content-type')).toBe('application/json');
    expect(plain.headers.get('mcp-session-id')).toBe(session);
    expect(await plain.json()).toMatchObject({ jsonrpc: '2.0', id: 7, result: { content: [{ text: 't' }] } });
    const streamed = await post({
      jsonrpc: '2.0',
      id: 'p',
      method: 'tools/call',
      params: { name: 'fx_progress', arguments: { steps: 2 }, _meta: { progressToken: 'tok' } },
    });
    expect(streamed.headers.get('content-type')).toBe('text/event-stream');
    const events = (await streamed.text())
      .split('\n\n')
      .filter(Boolean)
      .map((e) => JSON.parse(e.split('data: ')[1]!));
    expect(events.map((e) => e.method ?? `result ${e.id}`)).toEqual([
      'notifications/progress',
      'notifications/progress',
      'result p',
    ]);
    expect(events[0].params).toEqual({ progress: 1, total: 2, message: 'step 1', progressToken: 'tok' });
  });

  it('relays cancellation to the upstream', async () => {
    const { url, upstream } = await start();
    const lean = await connect(url, { relay: true });
    const abort = new AbortController();
    const pending = lean.callTool({ name: 'fx_wait' }, { signal: abort.signal });
    await expect
      .poll(() => upstream.wire.received.some((m) => 'method' in m && m.method === 'tools/call'))
      .toBe(true);
    abort.abort(new Error('stop'));
    await expect(pending).rejects.toThrow();
    await expect.poll(() => upstream.wire.cancelled).toEqual(['wait']);
  });

  it('times out as the SDK path does', async () => {
    const { url } = await start({ ...DEFAULT_ROUTER_SETTINGS, callTimeoutMs: 100 });
    const lean = await connect(url, { relay: true });
    const sdk = await connect(url, { relay: false });
    const viaRelay = await lean.callTool({ name: 'fx_wait' });
    expect(viaRelay).toEqual(await sdk.callTool({ name: 'fx_wait' }));
    expect(viaRelay.isError).toBe(true);
  });

  it('keeps concurrent calls of one session apart', async () => {
    const { url } = await start();
    const lean = await connect(url, { relay: true });
    const texts = Array.from({ length: 30 }, (_, i) => `c${i}`);
    const results = await Promise.all(
      texts.map((text) => lean.callTool({ name: 'fx_echo', arguments: { text } })),
    );
    expect(results.map((r) => (r.content as { text: string }[])[0]!.text)).toEqual(texts);
  });

  it('leaves requests of unknown sessions to the refusal they always got', async () => {
    const { url } = await start();
    const res = await fetch(url, {
      method: 'POST',
      headers: { ...jsonHeaders(), authorization: `Bearer ${TOKEN}`, 'mcp-session-id': 'not-a-session' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'fx_echo' } }),
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      jsonrpc: '2.0',
      error: { code: -32001, message: 'Session not found' },
      id: null,
    });
  });
});

type Hook = (signal: AbortSignal) => Promise<unknown>;

/**
 * An agent that answers every question an upstream asks (sampling, elicitation, roots) and logs
 * what it was asked; `hooks` replace an answer.
 */
function answering(log: unknown[], hooks: { sampling?: Hook } = {}) {
  const seen = (request: { method: string; params?: Record<string, unknown> }) => {
    const meta = request.params?._meta as Record<string, unknown> | undefined;
    // The SDK server's own request ids, which count differently on both paths' sessions.
    log.push({
      method: request.method,
      params: {
        ...request.params,
        ...(meta ? { _meta: { ...meta, progressToken: typeof meta.progressToken } } : {}),
      },
    });
  };
  return (client: Client) => {
    client.setRequestHandler('sampling/createMessage', async (request, ctx) => {
      seen(request);
      if (hooks.sampling) return (await hooks.sampling(ctx.mcpReq.signal)) as never;
      return { role: 'assistant', model: 'm', content: { type: 'text', text: 'because' } };
    });
    client.setRequestHandler('elicitation/create', async (request) => {
      seen(request);
      return { action: 'accept', content: { name: 'ann' } };
    });
    client.setRequestHandler('roots/list', async (request) => {
      seen(request);
      return { roots: [{ uri: 'file:///r', name: 'r' }] };
    });
  };
}

/** POSTs that reached the SDK transport, by session. */
function sdkTransportPosts() {
  const posts: string[] = [];
  const original = NodeStreamableHTTPServerTransport.prototype.handleRequest;
  vi.spyOn(NodeStreamableHTTPServerTransport.prototype, 'handleRequest').mockImplementation(function (
    this: NodeStreamableHTTPServerTransport,
    ...args
  ) {
    if (args[0].method === 'POST') posts.push(String(args[0].headers['mcp-session-id']));
    return original.apply(this, args);
  });
  return posts;
}

const sessionOf = (client: Client) => (client.transport as StreamableHTTPClientTransport).sessionId!;

describe('HTTP front relay path: questions of an upstream mid-call', () => {
  it('asks them on the stream of the call and takes the answers, exactly as the SDK path does', async () => {
    const { url, served } = await start();
    const relayLog: unknown[] = [];
    const sdkLog: unknown[] = [];
    const lean = await connect(url, { relay: true, agent: answering(relayLog) });
    const sdk = await connect(url, { relay: false, agent: answering(sdkLog) });
    const posts = sdkTransportPosts();
    const cases = [
      { questions: ['roots'] },
      { questions: ['sampling'] },
      { questions: ['elicit'] },
      { questions: ['roots', 'sampling', 'elicit'] },
      { questions: ['sampling', 'roots', 'elicit'], together: true },
    ];
    for (const args of cases) {
      const before = served.count;
      const viaRelay = await settle(lean.callTool({ name: 'fx_ask', arguments: args }));
      // The call and each answer.
      expect(served.count).toBe(before + 1 + args.questions.length);
      const viaSdk = await settle(sdk.callTool({ name: 'fx_ask', arguments: args }));
      expect(JSON.stringify(viaRelay)).toBe(JSON.stringify(viaSdk));
      expect(relayLog).toEqual(sdkLog);
    }
    expect(relayLog).toHaveLength(9);
    expect(posts.filter((s) => s === sessionOf(lean))).toEqual([]);
    expect(posts.filter((s) => s === sessionOf(sdk)).length).toBeGreaterThan(0);
    const last = await lean.callTool({
      name: 'fx_ask',
      arguments: { questions: ['roots', 'sampling', 'elicit'] },
    });
    expect(last.content).toEqual([
      { type: 'text', text: 'roots file:///r; agent said because; elicited accept {"name":"ann"}' },
    ]);
  });

  it('fails the call as the SDK path does when the handler of the agent fails', async () => {
    const { url } = await start();
    const failing = { sampling: async () => Promise.reject(new Error('no model here')) };
    const lean = await connect(url, { relay: true, agent: answering([], failing) });
    const sdk = await connect(url, { relay: false, agent: answering([], failing) });
    const args = { questions: ['roots', 'sampling'] };
    const viaRelay = await settle(lean.callTool({ name: 'fx_ask', arguments: args }));
    expect(JSON.stringify(viaRelay)).toBe(
      JSON.stringify(await settle(sdk.callTool({ name: 'fx_ask', arguments: args }))),
    );
    expect(JSON.stringify(viaRelay)).toContain("Fulfilling input required by 'tools/call' failed");
    expect(JSON.stringify(viaRelay)).toContain('no model here');
  });

  it('stops after as many rounds as the SDK path', async () => {
    const { url } = await start();
    const lean = await connect(url, { relay: true, agent: answering([]) });
    const sdk = await connect(url, { relay: false, agent: answering([]) });
    const args = { questions: Array.from({ length: 65 }, () => 'roots') };
    const viaRelay = await settle(lean.callTool({ name: 'fx_ask', arguments: args }));
    expect(JSON.stringify(viaRelay)).toBe(
      JSON.stringify(await settle(sdk.callTool({ name: 'fx_ask', arguments: args }))),
    );
    expect(JSON.stringify(viaRelay)).toContain('still required input after 64 rounds');
  });

  it('cancels the call and its pending question as the SDK path does', async () => {
    const { url, upstream } = await start();
    const outcome = async (relay: boolean) => {
      let asked = false;
      let handlerAborted = false;
      const hang: Hook = (signal) =>
        new Promise((_resolve, reject) => {
          asked = true;
          signal.addEventListener('abort', () => {
            handlerAborted = true;
            reject(new Error('aborted'));
          });
        });
      const client = await connect(url, { relay, agent: answering([], { sampling: hang }) });
      const cancelledBefore = upstream.wire.received.filter(isCancel).length;
      const abort = new AbortController();
      const pending = settle(client.callTool({ name: 'fx_ask' }, { signal: abort.signal }));
      await expect.poll(() => asked).toBe(true);
      abort.abort(new Error('stop'));
      const result = await pending;
      await expect.poll(() => upstream.wire.received.filter(isCancel).length).toBe(cancelledBefore + 1);
      await expect.poll(() => handlerAborted).toBe(true);
      return result;
    };
    expect(await outcome(true)).toEqual(await outcome(false));
  });

  it('gives up on an agent that answers after the input timeout, as the SDK path does', async () => {
    const { url, upstream } = await start({ ...DEFAULT_ROUTER_SETTINGS, inputTimeoutMs: 100 });
    const late = {
      sampling: async () => {
        await new Promise((r) => setTimeout(r, 300));
        return { role: 'assistant', model: 'm', content: { type: 'text', text: 'late' } };
      },
    };
    const lean = await connect(url, { relay: true, agent: answering([], late) });
    const sdk = await connect(url, { relay: false, agent: answering([], late) });
    const viaRelay = await settle(lean.callTool({ name: 'fx_ask' }));
    expect(upstream.wire.received.filter(isCancel)).toHaveLength(1);
    expect(viaRelay).toEqual(await settle(sdk.callTool({ name: 'fx_ask' })));
    expect(upstream.wire.received.filter(isCancel)).toHaveLength(2);
  });

  it('keeps the questions of concurrent calls apart', async () => {
    const { url } = await start();
    let release!: () => void;
    const bothAsked = new Promise<void>((resolve) => {
      release = resolve;
    });
    let asked = 0;
    const gate = async () => {
      if (++asked === 2) release();
      await bothAsked;
    };
    const lean = await connect(url, {
      relay: true,
      agent: (client) => {
        client.setRequestHandler('sampling/createMessage', async () => {
          await gate();
          return { role: 'assistant', model: 'm', content: { type: 'text', text: 'because' } };
        });
        client.setRequestHandler('roots/list', async () => {
          await gate();
          return { roots: [{ uri: 'file:///r' }] };
        });
      },
    });
    const [a, b] = await Promise.all([
      lean.callTool({ name: 'fx_ask', arguments: { questions: ['sampling'] } }),
      lean.callTool({ name: 'fx_ask', arguments: { questions: ['roots'] } }),
    ]);
    expect(a.content).toEqual([{ type: 'text', text: 'agent said because' }]);
    expect(b.content).toEqual([{ type: 'text', text: 'roots file:///r' }]);
  });

  it('writes the question on the stream of the call and acknowledges answers with 202', async () => {
    const { url, upstream } = await start();
    const { post } = await rawSession(url, { sampling: {} });
    const call = await post({ jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'fx_ask' } });
    expect(call.headers.get('content-type')).toBe('text/event-stream');
    const events = sseEvents(call.body!);
    const question = (await events.next()).value;
    expect(question).toMatchObject({
      jsonrpc: '2.0',
      method: 'sampling/createMessage',
      params: { maxTokens: 10, _meta: { progressToken: question.id } },
    });
    expect(typeof question.id).toBe('number');
    // An answer to an id nobody asked goes where it always went: the SDK transport's 202.
    const stray = await post({ jsonrpc: '2.0', id: 999, result: {} });
    expect(stray.status).toBe(202);
    const answer = await post({
      jsonrpc: '2.0',
      id: question.id,
      result: { role: 'assistant', model: 'm', content: { type: 'text', text: 'raw' } },
    });
    expect(answer.status).toBe(202);
    expect(await answer.text()).toBe('');
    expect((await events.next()).value).toEqual({
      jsonrpc: '2.0',
      id: 'c1',
      result: { content: [{ type: 'text', text: 'agent said raw' }] },
    });
    expect(upstream.wire.received.filter(isCancel)).toEqual([]);
  });

  it('cancels the call when the agent hangs up its stream while a question is pending', async () => {
    const { url, upstream } = await start();
    const { post } = await rawSession(url, { sampling: {} });
    const abort = new AbortController();
    const call = await post(
      { jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'fx_ask' } },
      abort.signal,
    );
    const events = sseEvents(call.body!);
    expect((await events.next()).value.method).toBe('sampling/createMessage');
    abort.abort();
    await expect.poll(() => upstream.wire.received.filter(isCancel).length).toBe(1);
  });
});

const isCancel = (m: unknown) => (m as { method?: string }).method === 'notifications/cancelled';

/** A 2025-06-18 session opened by hand, for what an SDK client does not show. */
async function rawSession(url: string, capabilities: object) {
  const headers = { ...jsonHeaders(), authorization: `Bearer ${TOKEN}` };
  const init = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  await init.text();
  const session = init.headers.get('mcp-session-id')!;
  const post = (body: object, signal?: AbortSignal) =>
    fetch(url, {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': session },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).text();
  return { post };
}

/** The JSON-RPC messages of an event stream, one by one. */
async function* sseEvents(body: ReadableStream<Uint8Array>) {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const data = buffer
        .slice(0, end)
        .split('\n')
        .find((line) => line.startsWith('data: '));
      buffer = buffer.slice(end + 2);
      if (data) yield JSON.parse(data.slice(6));
      end = buffer.indexOf('\n\n');
    }
  }
}

function jsonHeaders() {
  return { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
}
