import { InMemoryTransport } from '@modelcontextprotocol/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/log.js';
import { ClientSession } from '../../src/mcp/clientSession.js';
import { createFront } from '../../src/mcp/frontServer.js';
import { relayHotRequests } from '../../src/mcp/relay/transportRelay.js';
import { CALL_META_KEY } from '../../src/mcp/resourceUris.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import type { AgentRequest, CallOptions, ForwardedMethod, JsonObject } from '../../src/mcp/upstream.js';
import { SdkUpstream, tap, type Wire } from '../helpers/sdkUpstream.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {});
});

type Answer = (request: AgentRequest) => Promise<JsonObject>;

/**
 * The slave's end of a link (its router over the fixture server, an SDK front, the relay when
 * `relay`) and the master's end (a ClientSession, as in SlaveUpstream), over an in-memory pair.
 */
async function link(opts: { relay: boolean; answer?: Answer }) {
  const upstream = await new SdkUpstream('fx').start();
  closers.push(() => upstream.stop());
  const router = new Router(DEFAULT_ROUTER_SETTINGS, silentLogger);
  router.add(upstream);
  const front = createFront(router, { name: 'slave', version: '0' }, { persistent: true });
  const [masterSide, slaveSide] = InMemoryTransport.createLinkedPair();
  const linkWire: Wire = { received: [], sent: [], cancelled: [] };
  tap(slaveSide, masterSide, linkWire);
  if (opts.relay) {
    relayHotRequests(router, front, slaveSide);
    // Proof that the relay serves them: the SDK front's own handlers would fail the test.
    for (const method of ['tools/call', 'prompts/get', 'resources/read'] as const)
      front.server.setRequestHandler(method, () => {
        throw new Error(`${method} reached the SDK front`);
      });
  }
  await front.server.connect(slaveSide);
  const asked: AgentRequest[] = [];
  const master = await ClientSession.open(masterSide, {
    clientName: 'master',
    clientVersion: '0',
    logger: createLogger('fatal'),
    connectTimeoutMs: 5000,
    onCatalogChanged: () => {},
    onClosed: () => {},
    onAgentRequest: async (request) => {
      asked.push(request);
      if (!opts.answer) throw new Error('no agent here');
      return opts.answer(request);
    },
  });
  closers.push(() => master.close());
  const call = (method: ForwardedMethod, params: JsonObject, over: Partial<CallOptions> = {}) =>
    master.request(
      method,
      params,
      {
        signal: new AbortController().signal,
        timeoutMs: 5000,
        maxTotalMs: 5000,
        meta: { [CALL_META_KEY]: 'master-call-1' },
        ...over,
      },
      'slave not available',
    );
  return { upstream, call, asked, linkWire };
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value }),
    (error) => ({ error: { code: error.code, message: error.message, data: error.data } }),
  );

const because: Answer = async () => ({
  role: 'assistant',
  model: 'm',
  content: { type: 'text', text: 'because' },
});

describe('slave link relay, against the SDK front', () => {
  it('answers every hot request as the SDK front does, without the SDK front', async () => {
    const relayed = await link({ relay: true, answer: because });
    const plain = await link({ relay: false, answer: because });
    const requests: [ForwardedMethod, JsonObject][] = [
      ['tools/call', { name: 'fx_echo', arguments: { text: 'é "q"' } }],
      ['tools/call', { name: 'fx_toolError' }],
      ['tools/call', { name: 'fx_fail' }],
      ['tools/call', { name: 'fx_nope' }],
      ['tools/call', { name: 'fx_big', arguments: { bytes: 300_000 } }],
      ['tools/call', { name: 'fx_ask' }],
      ['prompts/get', { name: 'fx_greet', arguments: { who: 'bo' } }],
      ['resources/read', { uri: 'diane://fx/file:///a.txt' }],
      ['resources/read', { uri: 'diane://fx/file:///missing' }],
    ];
    for (const [method, params] of requests) {
      const a = await settle(relayed.call(method, params));
      const b = await settle(plain.call(method, params));
      expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    }
    expect(relayed.asked).toHaveLength(1);
    // Asked as the SDK shim asks: with the call's id and the shim's progress token.
    expect(relayed.asked).toEqual(plain.asked);
    expect(relayed.asked[0]!.params._meta).toMatchObject({ [CALL_META_KEY]: 'master-call-1' });
  });

  it('fails a call whose question the master cannot answer, as the SDK shim does', async () => {
    const relayed = await link({ relay: true });
    const plain = await link({ relay: false });
    const a = await settle(relayed.call('tools/call', { name: 'fx_ask' }));
    const b = await settle(plain.call('tools/call', { name: 'fx_ask' }));
    expect(a).toEqual(b);
  });

  it('relays progress in order before the result', async () => {
    const { call } = await link({ relay: true });
    const seen: string[] = [];
    await call(
      'tools/call',
      { name: 'fx_progress', arguments: { steps: 6 } },
      { onprogress: (p) => seen.push(String(p.progress)) },
    );
    seen.push('result');
    expect(seen).toEqual(['1', '2', '3', '4', '5', '6', 'result']);
  });

  it('relays cancellation from the master to the upstream', async () => {
    const { call, upstream } = await link({ relay: true });
    const abort = new AbortController();
    const pending = call('tools/call', { name: 'fx_wait' }, { signal: abort.signal });
    await expect
      .poll(() => upstream.wire.received.some((m) => 'method' in m && m.method === 'tools/call'))
      .toBe(true);
    abort.abort(new Error('agent gone'));
    await expect(pending).rejects.toThrow(/agent gone/);
    await expect.poll(() => upstream.wire.cancelled).toEqual(['wait']);
  });

  it('keeps concurrent calls apart across both hops', async () => {
    const { call, linkWire } = await link({ relay: true });
    const texts = Array.from({ length: 30 }, (_, i) => `t${i}`);
    const results = await Promise.all(
      texts.map((text) => call('tools/call', { name: 'fx_echo', arguments: { text } })),
    );
    expect(results.map((r) => (r.content as { text: string }[])[0]!.text)).toEqual(texts);
    const ids = linkWire.received
      .filter((m) => 'method' in m && m.method === 'tools/call')
      .map((m) => (m as { id: unknown }).id);
    expect(new Set(ids).size).toBe(30);
  });

  it('leaves a hot request before the handshake to the SDK front, which answers as always', async () => {
    const answers: unknown[] = [];
    for (const relay of [true, false]) {
      const upstream = await new SdkUpstream('fx').start();
      closers.push(() => upstream.stop());
      const router = new Router(DEFAULT_ROUTER_SETTINGS, silentLogger);
      router.add(upstream);
      const front = createFront(router, { name: 'slave', version: '0' }, { persistent: true });
      const [masterSide, slaveSide] = InMemoryTransport.createLinkedPair();
      if (relay) relayHotRequests(router, front, slaveSide);
      await front.server.connect(slaveSide);
      closers.push(() => front.server.close());
      const received: unknown[] = [];
      // Only the answer: the router may tell the new session of list changes meanwhile.
      masterSide.onmessage = (message) => {
        if ('id' in message) received.push(message);
      };
      await masterSide.start();
      await masterSide.send({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'fx_echo', arguments: { text: 'x' } },
      });
      await expect.poll(() => received.length).toBe(1);
      answers.push(received[0]);
    }
    expect(answers[0]).toEqual(answers[1]);
  });
});
