import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
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
  return { upstream, router, records, url: `http://127.0.0.1:${port}/mcp` };
}

/**
 * A real SDK client. One that declares `roots` is served by the SDK path (an upstream might ask
 * it something mid-call); one that declares nothing takes the relay path.
 */
async function connect(url: string, opts: { relay: boolean; token?: string }): Promise<Client> {
  const client = new Client(
    { name: 'agent', version: '1' },
    { capabilities: opts.relay ? {} : { roots: { listChanged: true } } },
  );
  if (!opts.relay) client.setRequestHandler('roots/list', async () => ({ roots: [] }));
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${opts.token ?? TOKEN}` } },
  });
  await client.connect(transport);
  closers.push(() => client.close());
  return client;
}

/** Counts the POSTs the relay served. */
function relayCounter() {
  const served = { count: 0 };
  const original = HttpRelaySession.prototype.tryServe;
  vi.spyOn(HttpRelaySession.prototype, 'tryServe').mockImplementation(function (
    this: HttpRelaySession,
    ...args
  ) {
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
    const { url } = await start();
    const served = relayCounter();
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

  it('routes an upstream question to an agent that declared the capability (SDK path)', async () => {
    const { url } = await start();
    const client = new Client({ name: 'agent', version: '1' }, { capabilities: { sampling: {} } });
    client.setRequestHandler('sampling/createMessage', async () => ({
      role: 'assistant',
      model: 'm',
      content: { type: 'text', text: 'because' },
    }));
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${TOKEN}` } },
      }),
    );
    closers.push(() => client.close());
    const served = relayCounter();
    const result = await client.callTool({ name: 'fx_ask' });
    expect(result.content).toEqual([{ type: 'text', text: 'agent said because' }]);
    expect(served.count).toBe(0);
  });
});

function jsonHeaders() {
  return { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
}
