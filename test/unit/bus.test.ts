import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BusSettings } from '../../src/bus/busSettings.js';
import type { RemoteHostUpstream } from '../../src/bus/remoteHostUpstream.js';
import { CloseCode } from '../../src/cluster/webSocketTransport.js';
import type { JsonObject, ProgressUpdate } from '../../src/mcp/upstream.js';
import { UpstreamTimeoutError } from '../../src/mcp/upstream.js';
import {
  dropTestBucket,
  FAST_BUS,
  FakeLinkedSlave,
  startTestMaster,
  type TestMaster,
} from '../helpers/busMasters.js';
import { tool } from '../helpers/fakeUpstream.js';
import { testNatsUrl, uniquePrefix } from '../helpers/nats.js';
import { waitFor } from '../helpers/wait.js';

const url = await testNatsUrl();

/**
 * Two masters in one process, each with its own bus connection, on a real NATS server: "b"
 * holds the link of host ws1 (a fake slave), "a" serves it through a RemoteHostUpstream.
 */
describe.skipIf(!url)('the bus between masters', () => {
  let prefix: string;
  let masters: TestMaster[] = [];
  let a: TestMaster;
  let b: TestMaster;
  let slave: FakeLinkedSlave;

  beforeAll(() => {
    expect(url).toBeDefined();
  });

  async function twoMasters(aSettings: Partial<BusSettings> = {}): Promise<RemoteHostUpstream> {
    prefix = uniquePrefix();
    a = await startTestMaster('master-a', url!, prefix, aSettings);
    b = await startTestMaster('master-b', url!, prefix);
    masters = [a, b];
    slave = new FakeLinkedSlave('ws1');
    slave.catalogNow = { ...slave.catalogNow, tools: [tool('echo')] };
    b.registry.link(slave);
    return waitFor(
      () => {
        const remote = a.registry.remotes.get('ws1') as RemoteHostUpstream | undefined;
        return remote?.catalog().tools.length === 1 && remote;
      },
      { what: 'ws1 on master a', timeoutMs: 5_000 },
    );
  }

  const callOpts = (
    signal = new AbortController().signal,
    more: Partial<Parameters<RemoteHostUpstream['request']>[2]> = {},
  ) => ({
    signal,
    timeoutMs: 10_000,
    maxTotalMs: 10_000,
    meta: { 'dev.diane/call': `call-${Math.random()}`, 'dev.diane/agent': 'claude' },
    ...more,
  });

  afterEach(async () => {
    await Promise.all(masters.map((m) => m.bus.close().catch(() => {})));
    masters = [];
    if (prefix) await dropTestBucket(url!, prefix);
  });

  it("serves the holder's host in the other master's namespace, and a call crosses with its progress in order", async () => {
    const remote = await twoMasters();
    expect(a.router.toolTable().byName.has('ws1_echo')).toBe(true);
    expect(remote.status().state).toBe('connected');
    slave.answer = async (req) => {
      for (let i = 1; i <= 5; i++) req.opts.onprogress?.({ progress: i, total: 5, message: `step ${i}` });
      return { content: [{ type: 'text', text: `echo ${JSON.stringify(req.params.arguments)}` }] };
    };
    const progress: ProgressUpdate[] = [];
    const result = await remote.request(
      'tools/call',
      { name: 'echo', arguments: { text: 'hi' } },
      callOpts(undefined, { onprogress: (p) => progress.push(p) }),
    );
    expect(result).toEqual({ content: [{ type: 'text', text: 'echo {"text":"hi"}' }] });
    expect(progress.map((p) => p.progress)).toEqual([1, 2, 3, 4, 5]);
    expect(progress[4]).toEqual({ progress: 5, total: 5, message: 'step 5' });
    // The holder ran it on the slave's upstream, with the agent's name and the caller's call id.
    expect(slave.sent).toHaveLength(1);
    expect(slave.sent[0]!.params).toEqual({ name: 'echo', arguments: { text: 'hi' } });
    expect(slave.sent[0]!.opts.meta?.['dev.diane/agent']).toBe('claude');
    expect(String(slave.sent[0]!.opts.meta?.['dev.diane/call'])).toMatch(/^call-/);
    // And through master a's router, by the exposed name.
    const viaRouter = await a.router.callTool('ws1_echo', { text: 'again' }, new AbortController().signal);
    expect(viaRouter).toEqual({ content: [{ type: 'text', text: 'echo {"text":"again"}' }] });
  });

  it('relays protocol errors with their code, and a result larger than one NATS message', async () => {
    const remote = await twoMasters();
    const big = 'x'.repeat(3 * 1024 * 1024);
    slave.answer = async (req) => {
      if (req.params.name === 'big') return { content: [{ type: 'text', text: big }] };
      const { ProtocolError } = await import('@modelcontextprotocol/client');
      throw new ProtocolError(-32602, 'bad arguments', { field: 'text' });
    };
    const result = await remote.request('tools/call', { name: 'big' }, callOpts());
    expect(((result.content as JsonObject[])[0]!.text as string).length).toBe(big.length);
    await expect(remote.request('tools/call', { name: 'echo' }, callOpts())).rejects.toMatchObject({
      code: -32602,
      message: 'bad arguments',
      data: { field: 'text' },
    });
  });

  it("carries cancellation to the holder's upstream", async () => {
    const remote = await twoMasters();
    let holderSignal: AbortSignal | undefined;
    slave.answer = (req) =>
      new Promise((_resolve, reject) => {
        holderSignal = req.opts.signal;
        req.opts.signal.addEventListener('abort', () => reject(new Error('aborted')));
      });
    const abort = new AbortController();
    const calling = remote.request('tools/call', { name: 'echo' }, callOpts(abort.signal));
    await waitFor(() => holderSignal, { what: 'the call on the holder' });
    abort.abort(new Error('the agent cancelled'));
    await expect(calling).rejects.toThrow('the agent cancelled');
    await waitFor(() => holderSignal?.aborted, { what: 'the holder to cancel', timeoutMs: 1_000 });
  });

  it("times out on the caller's cap and cancels on the holder", async () => {
    const remote = await twoMasters();
    let holderSignal: AbortSignal | undefined;
    slave.answer = (req) =>
      new Promise(() => {
        holderSignal = req.opts.signal;
      });
    const started = Date.now();
    await expect(
      remote.request(
        'tools/call',
        { name: 'echo' },
        callOpts(undefined, { maxTotalMs: 400, timeoutMs: 400 }),
      ),
    ).rejects.toBeInstanceOf(UpstreamTimeoutError);
    expect(Date.now() - started).toBeLessThan(1_500);
    // The holder was given the caller's cap, and the cancel besides.
    expect(slave.sent[0]!.opts.maxTotalMs).toBeLessThanOrEqual(400);
    await waitFor(() => holderSignal?.aborted, { what: 'the holder to cancel', timeoutMs: 1_000 });
  });

  it('relays a server-to-agent request to the calling master and its answer back', async () => {
    const remote = await twoMasters();
    const asked: JsonObject[] = [];
    remote.agentRequests = async (request) => {
      asked.push(request.params);
      return { role: 'assistant', content: { type: 'text', text: '42' }, model: 'test' };
    };
    slave.answer = async (req) => {
      // A Diane slave echoes the call id it was given: that is how the holder finds the call.
      const answer = await slave.agentRequests!(
        {
          method: 'sampling/createMessage',
          params: {
            messages: [],
            maxTokens: 5,
            _meta: { 'dev.diane/call': req.opts.meta!['dev.diane/call'] },
          },
        },
        new AbortController().signal,
      );
      return { content: [{ type: 'text', text: JSON.stringify(answer.content) }] };
    };
    const result = await remote.request('tools/call', { name: 'echo' }, callOpts());
    expect(result).toEqual({ content: [{ type: 'text', text: '{"type":"text","text":"42"}' }] });
    expect(asked).toHaveLength(1);
    expect(asked[0]!.maxTokens).toBe(5);
  });

  it('fails a call promptly with "Host X is not available" when the holder dies mid-call', async () => {
    const remote = await twoMasters();
    let started = false;
    slave.answer = () =>
      new Promise(() => {
        started = true;
      });
    const calling = remote.request('tools/call', { name: 'echo' }, callOpts());
    const outcome = calling.catch((err: Error) => err);
    await waitFor(() => started, { what: 'the call on the holder' });
    const diedAt = Date.now();
    await b.crash();
    const err = await outcome;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('Host ws1 is not available');
    // The keepalive window of these tests is 1 s (3.5 s by default).
    expect(Date.now() - diedAt).toBeLessThan(2_000);
  });

  it('takes a host offline when its presence entry expires, with the usual offline error', async () => {
    const remote = await twoMasters();
    await b.crash();
    await waitFor(() => remote.status().state === 'offline', { what: 'ws1 offline on a', timeoutMs: 4_000 });
    expect(remote.catalog().tools).toEqual([]);
    await expect(remote.request('tools/call', { name: 'echo' }, callOpts())).rejects.toThrow(
      'Host ws1 is not available',
    );
    const viaRouter = await a.router.callTool('ws1_echo', {}, new AbortController().signal);
    expect(viaRouter).toEqual({
      content: [{ type: 'text', text: 'Host ws1 is not available' }],
      isError: true,
    });
  });

  it("relays the host's log messages and resource updates, and leaves its log level to the holder", async () => {
    const remote = await twoMasters();
    const seen: string[] = [];
    remote.subscribe((event) => {
      if (event.type === 'log') seen.push(`log ${String(event.params.data)}`);
      if (event.type === 'resource-updated') seen.push(`updated ${event.uri}`);
    });
    slave.emit({ type: 'log', params: { level: 'info', data: 'hello' } });
    slave.emit({ type: 'resource-updated', uri: 'file:///x' });
    await waitFor(() => seen.length === 2, { what: 'both events on a', timeoutMs: 1_000, intervalMs: 10 });
    expect(seen).toEqual(['log hello', 'updated file:///x']);
    expect(await remote.request('logging/setLevel', { level: 'debug' }, callOpts())).toEqual({});
    expect(slave.sent).toEqual([]);
  });

  it('tells callers the host is unavailable when the holder shuts down mid-call', async () => {
    const remote = await twoMasters();
    let started = false;
    slave.answer = (req) =>
      new Promise((_resolve, reject) => {
        started = true;
        req.opts.signal.addEventListener('abort', () => reject(new Error('aborted')));
      });
    const outcome = remote.request('tools/call', { name: 'echo' }, callOpts()).catch((err: Error) => err);
    await waitFor(() => started, { what: 'the call on the holder' });
    await b.bus.close();
    expect(((await outcome) as Error).message).toBe('Host ws1 is not available');
  });

  it('withdraws a host when its link closes on the holder', async () => {
    const remote = await twoMasters();
    await slave.detach(1001);
    await waitFor(() => remote.status().state === 'offline', { what: 'ws1 offline on a', timeoutMs: 1_000 });
  });

  it("tells the other master's agents of a catalogue change within a second", async () => {
    await twoMasters();
    const changes: string[] = [];
    a.router.onListChanged((kind) => changes.push(kind));
    const changedAt = Date.now();
    slave.setCatalog({ tools: [tool('echo'), tool('grep')] });
    await waitFor(() => changes.includes('tools') && a.router.toolTable().byName.has('ws1_grep'), {
      what: 'the new tool on a',
      timeoutMs: 1_000,
      intervalMs: 10,
    });
    expect(Date.now() - changedAt).toBeLessThan(1_000);
  });

  it("cuts the holder's link within a second when another master revokes the host", async () => {
    const remote = await twoMasters();
    const at = Date.now();
    a.bus.announce('revoked', 'ws1', 'serial-1');
    await waitFor(() => slave.detachedWith, { what: 'the link cut on b', timeoutMs: 1_000, intervalMs: 10 });
    expect(slave.detachedWith).toBe(CloseCode.revoked);
    expect(b.registry.removed).toEqual([{ hostId: 'ws1', code: CloseCode.revoked }]);
    expect(b.registry.syncs).toBeGreaterThan(0);
    expect(Date.now() - at).toBeLessThan(1_000);
    await waitFor(() => remote.status().state === 'offline', { what: 'ws1 offline on a', timeoutMs: 1_000 });
  });

  it('cuts a link whose serial a re-pair on another master superseded', async () => {
    await twoMasters();
    a.bus.announce('superseded', 'ws1', 'serial-1');
    await sleep(200);
    expect(slave.detachedWith).toBeUndefined();
    a.bus.announce('superseded', 'ws1', 'serial-2');
    await waitFor(() => slave.detachedWith, { what: 'the link cut on b', timeoutMs: 1_000, intervalMs: 10 });
    expect(slave.detachedWith).toBe(CloseCode.superseded);
  });

  it('closes the older of two links of one host held by two masters', async () => {
    await twoMasters();
    const newer = new FakeLinkedSlave('ws1');
    newer.catalogNow = slave.catalogNow;
    a.registry.link(newer);
    await waitFor(() => slave.detachedWith, {
      what: 'the older link cut on b',
      timeoutMs: 2_000,
      intervalMs: 10,
    });
    expect(slave.detachedWith).toBe(CloseCode.replaced);
    expect(newer.detachedWith).toBeUndefined();
  });

  describe('resource subscriptions and roots across masters', () => {
    const X = 'diane://ws1/file:///x';

    /** An agent session on a master's router that records the resource updates it is told of. */
    function agentOn(m: TestMaster) {
      const updates: string[] = [];
      const session = m.router.openSession({
        notify: (method, params) => {
          if (method === 'notifications/resources/updated') updates.push(String(params?.uri));
        },
      });
      return {
        updates,
        subscribe: () => m.router.subscribeResource(session, X, new AbortController().signal),
        unsubscribe: () => m.router.unsubscribeResource(session, X),
      };
    }

    /** The slave sends an update; every session that should hear of it has, and only those. */
    async function updateReaches(
      link: FakeLinkedSlave,
      expected: { updates: string[] }[],
      not: { updates: string[] }[],
    ) {
      const before = [...expected, ...not].map((agent) => agent.updates.length);
      link.emit({ type: 'resource-updated', uri: 'file:///x' });
      await waitFor(() => expected.every((agent, i) => agent.updates.length === before[i]! + 1), {
        what: 'the update at every subscribed agent',
        timeoutMs: 2_000,
        intervalMs: 10,
      });
      // Anything on its way to the others would have come with the rest.
      await sleep(100);
      not.forEach((agent, i) => {
        expect(agent.updates.length).toBe(before[expected.length + i]);
      });
    }

    async function threeMasters(aSettings: Partial<BusSettings> = {}): Promise<TestMaster> {
      await twoMasters(aSettings);
      const c = await startTestMaster('master-c', url!, prefix);
      masters.push(c);
      await waitFor(() => (c.registry.remotes.get('ws1') as RemoteHostUpstream | undefined)?.connected, {
        what: 'ws1 on master c',
        timeoutMs: 5_000,
      });
      return c;
    }

    it("keeps one subscription on the link while any master's agent wants it; one master's unsubscribe ends no other's", async () => {
      const c = await threeMasters();
      const onA = agentOn(a);
      const onB = agentOn(b);
      const onC = agentOn(c);
      await onA.subscribe();
      await onC.subscribe();
      await onB.subscribe();
      expect(slave.subscriptionLog()).toEqual(['+file:///x']);
      await updateReaches(slave, [onA, onB, onC], []);

      await onA.unsubscribe();
      await sleep(200);
      expect(slave.subscriptionLog()).toEqual(['+file:///x']);
      await updateReaches(slave, [onB, onC], [onA]);

      // The holder's own agent letting go ends nothing for master c either.
      await onB.unsubscribe();
      await sleep(200);
      expect(slave.subscriptionLog()).toEqual(['+file:///x']);
      await updateReaches(slave, [onC], [onA, onB]);

      await onC.unsubscribe();
      await waitFor(() => slave.subscriptionLog().length === 2, { what: 'the unsubscribe on the link' });
      expect(slave.subscriptionLog()).toEqual(['+file:///x', '-file:///x']);
    });

    it("keeps a live master's subscriptions past the lease time, and drops a crashed master's", async () => {
      await twoMasters();
      const onA = agentOn(a);
      await onA.subscribe();
      // Two lease times: renewed all along.
      await sleep(2 * FAST_BUS.presenceTtlMs);
      expect(slave.subscriptionLog()).toEqual(['+file:///x']);
      await a.crash();
      const crashedAt = Date.now();
      await waitFor(() => slave.subscriptionLog().length === 2, {
        what: "the crashed master's subscription dropped",
        timeoutMs: 3 * FAST_BUS.presenceTtlMs,
        intervalMs: 20,
      });
      expect(slave.subscriptionLog()).toEqual(['+file:///x', '-file:///x']);
      expect(Date.now() - crashedAt).toBeGreaterThanOrEqual(
        FAST_BUS.presenceTtlMs - FAST_BUS.presenceHeartbeatMs,
      );
    });

    it("drops a master's subscriptions at once when it shuts down", async () => {
      await twoMasters();
      const onA = agentOn(a);
      await onA.subscribe();
      const closedAt = Date.now();
      await a.bus.close();
      await waitFor(() => slave.subscriptionLog().length === 2, {
        what: 'the subscription dropped',
        timeoutMs: FAST_BUS.presenceTtlMs,
        intervalMs: 10,
      });
      expect(Date.now() - closedAt).toBeLessThan(FAST_BUS.presenceTtlMs / 2);
    });

    it('subscribes again on the master the host moves to, and the updates come from there', async () => {
      // No lease renewal from a during the test: the move alone must carry its subscription.
      const c = await threeMasters({ presenceHeartbeatMs: 60_000 });
      const onA = agentOn(a);
      await onA.subscribe();
      expect(slave.subscriptionLog()).toEqual(['+file:///x']);
      // The slave links to master c while b still holds its older link: the presence entry is
      // replaced without lapsing, so a's router hears of no reconnect.
      const moved = new FakeLinkedSlave('ws1');
      moved.catalogNow = slave.catalogNow;
      c.registry.link(moved);
      await waitFor(() => slave.detachedWith, { what: 'the older link closed on b', timeoutMs: 2_000 });
      await waitFor(() => moved.subscriptionLog().includes('+file:///x'), {
        what: "a's subscription renewed on c",
        timeoutMs: 2_000,
        intervalMs: 10,
      });
      await updateReaches(moved, [onA], []);
      // Master b is still alive but holds nothing: an update of its old link's object says nothing.
      await onA.unsubscribe();
      await waitFor(() => moved.subscriptionLog().includes('-file:///x'), {
        what: "a's unsubscribe on c",
        timeoutMs: 2_000,
      });
      expect(moved.subscriptionLog()).toEqual(['+file:///x', '-file:///x']);
    });

    it("subscribes again on the next holder after the dead holder's entry lapsed", async () => {
      const c = await threeMasters({ presenceHeartbeatMs: 60_000 });
      const onA = agentOn(a);
      await onA.subscribe();
      const remote = a.registry.remotes.get('ws1') as RemoteHostUpstream;
      await b.crash();
      await waitFor(() => remote.status().state === 'offline', {
        what: 'ws1 offline on a',
        timeoutMs: 3 * FAST_BUS.presenceTtlMs,
      });
      const moved = new FakeLinkedSlave('ws1');
      moved.catalogNow = slave.catalogNow;
      c.registry.link(moved);
      // a's router sees the host come back and subscribes again, as for a local upstream.
      await waitFor(() => moved.subscriptionLog().includes('+file:///x'), {
        what: "a's subscription renewed on c",
        timeoutMs: 2_000,
        intervalMs: 10,
      });
      await updateReaches(moved, [onA], []);
    });

    it("tells the host of an agent's roots change on another master, through its holder", async () => {
      await twoMasters();
      a.router.rootsChanged();
      await waitFor(() => slave.rootsChanges === 1, {
        what: 'roots list_changed on the link',
        timeoutMs: 1_000,
      });
      b.router.rootsChanged();
      await waitFor(() => slave.rootsChanges === 2, { what: "the holder's own", timeoutMs: 1_000 });
    });
  });
});
