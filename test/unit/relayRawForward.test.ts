import { join } from 'node:path';
import {
  Client,
  InMemoryTransport,
  ProtocolError,
  type StandardSchemaV1,
} from '@modelcontextprotocol/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { ClientSession } from '../../src/mcp/clientSession.js';
import { StdioProcessTransport } from '../../src/mcp/stdioProcessTransport.js';
import type { CallOptions, JsonObject, ProgressUpdate } from '../../src/mcp/upstream.js';
import { UpstreamTimeoutError, UpstreamUnavailableError } from '../../src/mcp/upstream.js';
import { fixtureServer, SdkUpstream, type Wire } from '../helpers/sdkUpstream.js';

const upstreams: SdkUpstream[] = [];
afterEach(async () => {
  for (const u of upstreams.splice(0)) await u.stop();
});

async function upstream(): Promise<SdkUpstream> {
  const u = await new SdkUpstream('fx').start();
  upstreams.push(u);
  return u;
}

function opts(over: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, timeoutMs: 5000, maxTotalMs: 5000, ...over };
}

const ANY: StandardSchemaV1<unknown, JsonObject> = {
  '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value: value as JsonObject }) },
};

/** The same fixture behind a plain SDK client: what the SDK path makes of each answer. */
async function sdkClient(): Promise<Client> {
  const wire: Wire = { received: [], sent: [], cancelled: [] };
  const server = fixtureServer(wire);
  const [c, s] = InMemoryTransport.createLinkedPair();
  await server.connect(s);
  const client = new Client({ name: 'sdk', version: '1' });
  await client.connect(c);
  return client;
}

/** The response frame the upstream sent for a raw-forwarded request. */
function responseFrame(u: SdkUpstream): { id: unknown; result?: unknown; error?: unknown } {
  const frames = u.wire.sent.filter((m) => 'id' in m && !('method' in m));
  return frames[frames.length - 1] as never;
}

describe('raw forward of hot requests (ClientSession → SDK server)', () => {
  it('passes the result through byte for byte, with its own string id', async () => {
    const u = await upstream();
    const result = await u.request('tools/call', { name: 'echo', arguments: { text: 'héllo "x"' } }, opts());
    const frame = responseFrame(u);
    expect(frame.id).toMatch(/^diane-\d+$/);
    expect(JSON.stringify(result)).toBe(JSON.stringify(frame.result));
    const prompt = await u.request('prompts/get', { name: 'greet', arguments: { who: 'ann' } }, opts());
    expect(JSON.stringify(prompt)).toBe(JSON.stringify(responseFrame(u).result));
    const read = await u.request('resources/read', { uri: 'file:///a.txt' }, opts());
    expect(JSON.stringify(read)).toBe(JSON.stringify(responseFrame(u).result));
  });

  it('fails with the JSON-RPC error as the SDK client reports it', async () => {
    const u = await upstream();
    const sdk = await sdkClient();
    const viaSdk = await sdk
      .request({ method: 'tools/call', params: { name: 'fail' } } as never, ANY)
      .catch((e) => e);
    const viaRaw = await u.request('tools/call', { name: 'fail' }, opts()).catch((e) => e);
    expect(viaSdk).toBeInstanceOf(ProtocolError);
    expect(viaRaw).toBeInstanceOf(ProtocolError);
    expect({ code: viaRaw.code, message: viaRaw.message, data: viaRaw.data }).toEqual({
      code: viaSdk.code,
      message: viaSdk.message,
      data: viaSdk.data,
    });
    const notFound = await u.request('resources/read', { uri: 'file:///nope' }, opts()).catch((e) => e);
    const notFoundSdk = await sdk
      .request({ method: 'resources/read', params: { uri: 'file:///nope' } } as never, ANY)
      .catch((e) => e);
    expect([notFound.code, notFound.message]).toEqual([notFoundSdk.code, notFoundSdk.message]);
    await sdk.close();
  });

  it('passes a tool error result through as a result', async () => {
    const u = await upstream();
    const result = await u.request('tools/call', { name: 'toolError' }, opts());
    expect(result).toEqual({ content: [{ type: 'text', text: 'bad input' }], isError: true });
  });

  it('delivers progress in order, all before the result', async () => {
    const u = await upstream();
    const seen: string[] = [];
    const result = await u.request(
      'tools/call',
      { name: 'progress', arguments: { steps: 5 } },
      opts({ onprogress: (p: ProgressUpdate) => seen.push(`p${p.progress}/${p.total}:${p.message}`) }),
    );
    seen.push('result');
    expect(result).toEqual({ content: [{ type: 'text', text: 'done' }] });
    expect(seen).toEqual([
      'p1/5:step 1',
      'p2/5:step 2',
      'p3/5:step 3',
      'p4/5:step 4',
      'p5/5:step 5',
      'result',
    ]);
  });

  it('sends notifications/cancelled upstream when the caller aborts', async () => {
    const u = await upstream();
    const abort = new AbortController();
    const pending = u.request('tools/call', { name: 'wait' }, opts({ signal: abort.signal }));
    await expect
      .poll(() => u.wire.received.some((m) => 'method' in m && m.method === 'tools/call'))
      .toBe(true);
    abort.abort(new Error('agent left'));
    await expect(pending).rejects.toThrow(/agent left/);
    const cancel = u.wire.received.find((m) => 'method' in m && m.method === 'notifications/cancelled');
    expect(cancel).toMatchObject({
      params: { requestId: expect.stringMatching(/^diane-/), reason: 'Error: agent left' },
    });
    await expect.poll(() => u.wire.cancelled).toEqual(['wait']);
  });

  it('times out, cancelling upstream, as an UpstreamTimeoutError', async () => {
    const u = await upstream();
    const err = await u
      .request('tools/call', { name: 'wait' }, opts({ timeoutMs: 50, maxTotalMs: 50 }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamTimeoutError);
    await expect.poll(() => u.wire.cancelled).toEqual(['wait']);
  });

  it('keeps concurrent calls apart by their remapped ids', async () => {
    const u = await upstream();
    const texts = Array.from({ length: 40 }, (_, i) => `call ${i}`);
    const results = await Promise.all(
      texts.map((text) => u.request('tools/call', { name: 'echo', arguments: { text } }, opts())),
    );
    expect(results.map((r) => (r.content as { text: string }[])[0]!.text)).toEqual(texts);
    const ids = u.wire.received
      .filter((m) => 'method' in m && m.method === 'tools/call')
      .map((m) => (m as { id: unknown }).id);
    expect(new Set(ids).size).toBe(40);
  });

  it('fails calls in flight as unavailable when the connection closes', async () => {
    const u = await upstream();
    const pending = u.request('tools/call', { name: 'wait' }, opts());
    await expect
      .poll(() => u.wire.received.some((m) => 'method' in m && m.method === 'tools/call'))
      .toBe(true);
    await u.server!.close();
    await expect(pending).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });

  it('leaves the other methods to the SDK client', async () => {
    const u = await upstream();
    await u
      .request(
        'completion/complete',
        { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: 'a' } },
        opts(),
      )
      .catch(() => {});
    const complete = u.wire.received.find((m) => 'method' in m && m.method === 'completion/complete');
    expect(typeof (complete as { id: unknown }).id).toBe('number');
  });

  it('refuses a result over the transport limit: the connection is closed, the call unavailable (as on the SDK path)', async () => {
    const transport = new StdioProcessTransport({
      command: process.execPath,
      args: [join(import.meta.dirname, '../fixtures/echo-server.mjs')],
      env: { PATH: process.env.PATH ?? '' },
      maxMessageBytes: 64 * 1024,
    });
    const errors: string[] = [];
    const session = await ClientSession.open(transport, {
      clientName: 'test',
      clientVersion: '1',
      logger: createLogger('fatal'),
      connectTimeoutMs: 10_000,
      onCatalogChanged: () => {},
      onClosed: () => {},
    });
    transport.onerror = ((previous) => (err: Error) => {
      errors.push(err.message);
      previous?.(err);
    })(transport.onerror);
    try {
      const call = (name: string, args: JsonObject, timeoutMs = 5000) =>
        session.request(
          'tools/call',
          { name, arguments: args },
          opts({ timeoutMs, maxTotalMs: timeoutMs }),
          'gone',
        );
      await expect(call('echo', { text: 'fine' })).resolves.toBeDefined();
      await expect(call('big', { bytes: 200_000 })).rejects.toBeInstanceOf(UpstreamUnavailableError);
      expect(errors.some((e) => /over 65536 bytes/.test(e))).toBe(true);
      expect(session.closed).toBe(true);
    } finally {
      await session.close();
    }
  });
});
