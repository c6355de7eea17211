import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { BusProtocolError } from '../../src/bus/busErrors.js';
import { FrameAssembler, publishJson } from '../../src/bus/busFrames.js';
import {
  BUS_WIRE_VERSION,
  busSubjects,
  CallRequestSchema,
  CallStreamSchema,
  CatalogReplySchema,
  ControlSchema,
  clipText,
  HostNoticeSchema,
  LinkEventSchema,
  MASTER_ID_PATTERN,
  MAX_LEASED_URIS,
  MAX_TEXT,
  PREFIX_PATTERN,
  PresenceEntrySchema,
  presenceBucket,
  WireErrorSchema,
} from '../../src/bus/busWire.js';
import { checkMasterId, loadOrCreateMasterId } from '../../src/bus/masterId.js';
import { makeHome, removeHomes } from '../helpers/home.js';

const call = {
  v: BUS_WIRE_VERSION,
  callId: 'c1',
  from: 'master-a',
  hostId: 'ws1',
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hi' } },
  meta: { 'dev.diane/call': 'c1', 'dev.diane/agent': 'claude', traceparent: '00-abc-def-01' },
  timeoutMs: 1000,
  maxTotalMs: 2000,
};

describe('bus wire contract', () => {
  afterAll(() => removeHomes());

  it('names subjects under the prefix and the presence bucket without dots', () => {
    const s = busSubjects('diane');
    expect(s.call('m1')).toBe('diane.master.m1.call');
    expect(s.control('m1')).toBe('diane.master.m1.ctl');
    expect(s.catalog('m1')).toBe('diane.master.m1.catalog');
    expect(s.hostNotices('m1')).toBe('diane.master.m1.hosts');
    expect(s.linkEvents).toBe('diane.cluster.links');
    expect(presenceBucket('diane')).toBe('diane-presence');
    expect(PREFIX_PATTERN.test('diane')).toBe(true);
    expect(PREFIX_PATTERN.test('a.b')).toBe(false);
    expect(PREFIX_PATTERN.test('a>')).toBe(false);
  });

  it('accepts a call request and refuses unknown methods, fields and versions', () => {
    expect(CallRequestSchema.safeParse(call).success).toBe(true);
    expect(CallRequestSchema.safeParse({ ...call, method: 'tools/list' }).success).toBe(false);
    expect(CallRequestSchema.safeParse({ ...call, extra: 1 }).success).toBe(false);
    expect(CallRequestSchema.safeParse({ ...call, v: 2 }).success).toBe(false);
    // Whose subscription a subscribe changes is part of every request.
    const { from: _from, ...anonymous } = call;
    expect(CallRequestSchema.safeParse(anonymous).success).toBe(false);
    expect(CallRequestSchema.safeParse({ ...call, from: 'Not A Master' }).success).toBe(false);
    expect(CallRequestSchema.safeParse({ ...call, callId: 'x'.repeat(129) }).success).toBe(false);
    expect(CallRequestSchema.safeParse({ ...call, timeoutMs: 0 }).success).toBe(false);
    expect(CallRequestSchema.safeParse({ ...call, meta: { k: 'x'.repeat(4097) } }).success).toBe(false);
  });

  it('parses every stream message and refuses a foreign one', () => {
    for (const m of [
      { t: 'progress', progress: 1, total: 3, message: 'one' },
      { t: 'ask', askId: 1, method: 'sampling/createMessage', params: {} },
      { t: 'alive' },
      { t: 'result', result: { content: [] } },
      { t: 'error', error: { code: 'unavailable', message: 'Host ws1 is not available' } },
      { t: 'error', error: { code: 'protocol', message: 'bad', rpcCode: -32602, data: { x: 1 } } },
    ]) {
      expect(CallStreamSchema.safeParse(m).success, JSON.stringify(m)).toBe(true);
    }
    expect(CallStreamSchema.safeParse({ t: 'ask', askId: 1, method: 'tools/call', params: {} }).success).toBe(
      false,
    );
    expect(CallStreamSchema.safeParse({ t: 'error', error: { code: 'nope', message: '' } }).success).toBe(
      false,
    );
    expect(
      CallStreamSchema.safeParse({ t: 'progress', progress: 1, message: 'x'.repeat(8193) }).success,
    ).toBe(false);
  });

  it('parses subscription leases and roots notices about held hosts, within their limits', () => {
    const lease = {
      t: 'subscriptions',
      v: BUS_WIRE_VERSION,
      from: 'master-a',
      hostId: 'ws1',
      uris: ['file:///x'],
    };
    expect(HostNoticeSchema.safeParse(lease).success).toBe(true);
    expect(HostNoticeSchema.safeParse({ ...lease, uris: [] }).success).toBe(true);
    expect(HostNoticeSchema.safeParse({ ...lease, uris: [''] }).success).toBe(false);
    expect(HostNoticeSchema.safeParse({ ...lease, uris: ['x'.repeat(MAX_TEXT + 1)] }).success).toBe(false);
    expect(
      HostNoticeSchema.safeParse({
        ...lease,
        uris: Array.from({ length: MAX_LEASED_URIS + 1 }, (_, i) => `u${i}`),
      }).success,
    ).toBe(false);
    expect(HostNoticeSchema.safeParse({ ...lease, extra: 1 }).success).toBe(false);
    const roots = { t: 'roots-changed', v: BUS_WIRE_VERSION, from: 'master-a', hostId: 'ws1' };
    expect(HostNoticeSchema.safeParse(roots).success).toBe(true);
    expect(HostNoticeSchema.safeParse({ ...roots, uris: [] }).success).toBe(false);
    expect(HostNoticeSchema.safeParse({ ...roots, t: 'tools-changed' }).success).toBe(false);
    expect(HostNoticeSchema.safeParse({ ...roots, from: '' }).success).toBe(false);
  });

  it('parses control messages', () => {
    expect(ControlSchema.safeParse({ t: 'cancel', callId: 'c1' }).success).toBe(true);
    expect(ControlSchema.safeParse({ t: 'answer', callId: 'c1', askId: 2, result: {} }).success).toBe(true);
    expect(
      ControlSchema.safeParse({ t: 'answer', callId: 'c1', askId: 2, error: { rpcCode: -1, message: 'no' } })
        .success,
    ).toBe(true);
    expect(ControlSchema.safeParse({ t: 'kill', callId: 'c1' }).success).toBe(false);
  });

  it('parses presence entries, catalogues and link events', () => {
    const entry = { v: 1, master: 'm-1', since: new Date().toISOString(), revision: 3, serial: 'ab' };
    expect(PresenceEntrySchema.safeParse(entry).success).toBe(true);
    expect(PresenceEntrySchema.safeParse({ ...entry, master: 'M.1' }).success).toBe(false);
    const catalog = {
      t: 'catalog',
      revision: 1,
      catalog: {
        tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
        prompts: [{ name: 'p' }],
        resources: [{ uri: 'file:///x', name: 'x' }],
        resourceTemplates: [{ uriTemplate: 'file:///{p}', name: 't' }],
      },
      capabilities: { tools: {} },
    };
    expect(CatalogReplySchema.safeParse(catalog).success).toBe(true);
    expect(
      CatalogReplySchema.safeParse({ ...catalog, catalog: { ...catalog.catalog, tools: [{ name: 'x' }] } })
        .success,
    ).toBe(false);
    expect(
      LinkEventSchema.safeParse({ v: 1, kind: 'revoked', hostId: 'ws1', serial: 'ab', from: 'm-1' }).success,
    ).toBe(true);
    expect(LinkEventSchema.safeParse({ v: 1, kind: 'rebooted', hostId: 'ws1', from: 'm-1' }).success).toBe(
      false,
    );
  });

  it('keeps a master id across restarts and refuses a malformed one', () => {
    const home = makeHome('bus');
    const id = loadOrCreateMasterId(home);
    expect(MASTER_ID_PATTERN.test(id)).toBe(true);
    expect(loadOrCreateMasterId(home)).toBe(id);
    expect(loadOrCreateMasterId(home, 'chosen-1')).toBe('chosen-1');
    expect(() => checkMasterId('Bad.Id')).toThrow(/not a valid master id/);
  });
});

describe('bus frames: messages larger than one NATS payload', () => {
  /** A NATS connection that keeps what is published, with a small payload limit. */
  function fakeConnection(maxPayload: number) {
    const sent: Msg[] = [];
    const nc = {
      info: { max_payload: maxPayload },
      publish: (subject: string, data: Uint8Array, opts?: { reply?: string; headers?: MsgHdrs }) => {
        sent.push({ subject, data, reply: opts?.reply ?? '', headers: opts?.headers } as unknown as Msg);
      },
    } as unknown as NatsConnection;
    return { nc, sent };
  }

  it('sends a small message whole and a large one in parts that come back together', () => {
    const { nc, sent } = fakeConnection(8192);
    publishJson(nc, 's', { small: true });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers).toBeUndefined();
    const big = { text: 'é'.repeat(20_000) };
    publishJson(nc, 's', big, 'reply.1');
    expect(sent.length).toBeGreaterThan(5);
    const assembler = new FrameAssembler();
    const values = sent.map((m) => assembler.accept(m));
    expect(values[0]).toEqual({ small: true });
    expect(values.slice(1, -1).every((v) => v === undefined)).toBe(true);
    expect(values.at(-1)).toEqual(big);
  });

  it('refuses parts out of order and what is not JSON', () => {
    const { nc, sent } = fakeConnection(8192);
    publishJson(nc, 's', { text: 'x'.repeat(20_000) }, 'r');
    const assembler = new FrameAssembler();
    expect(() => assembler.accept(sent[1]!)).toThrow(BusProtocolError);
    expect(() =>
      assembler.accept({
        subject: 's',
        reply: '',
        data: new TextEncoder().encode('{nope'),
      } as unknown as Msg),
    ).toThrow(BusProtocolError);
  });

  it('clips long texts to what the schemas accept', () => {
    expect(clipText('short')).toBe('short');
    const clipped = clipText('x'.repeat(MAX_TEXT * 2));
    expect(clipped).toHaveLength(MAX_TEXT);
    expect(WireErrorSchema.safeParse({ code: 'internal', message: clipped }).success).toBe(true);
  });
});
