import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AdminClient, AdminRequestError } from '../../src/admin/adminClient.js';
import { AdminServer } from '../../src/admin/adminServer.js';
import { registerAuditRoutes } from '../../src/admin/auditRoutes.js';
import type { AuditEventJson } from '../../src/admin/types.js';
import {
  type AuditEvent,
  type AuditListener,
  AuditLog,
  AuditTail,
  DEFAULT_AUDIT_SETTINGS,
} from '../../src/audit/index.js';
import { silentLogger } from '../../src/log.js';
import { type AuditQuery, type AuditRepo, openStore, type Store } from '../../src/store/index.js';
import { storedAuditRow } from '../helpers/auditRows.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let store: Store;
let log: AuditLog;
let server: AdminServer;
let client: AdminClient;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'diane-audit-api-'));
  store = openStore(join(dir, 'diane.db'));
  log = new AuditLog(store, { ...DEFAULT_AUDIT_SETTINGS, flushIntervalMs: 10 }, silentLogger);
  server = new AdminServer(join(dir, 'diane.sock'), silentLogger);
  registerAuditRoutes(server, { audit: log, events: store.auditEvents });
  server.ready();
  await server.listen();
  client = new AdminClient(join(dir, 'diane.sock'), dir);
});

afterEach(async () => {
  await server.close();
  log.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function record(n: number, overrides: Partial<AuditEvent> = {}): void {
  log.record({
    kind: 'tools/call',
    outcome: 'ok',
    agent: n % 2 ? 'odd' : 'even',
    exposedName: `tool_${n}`,
    host: 'ws1',
    durationMs: n,
    ...overrides,
  });
}

function recordMany(from: number, to: number, overrides: Partial<AuditEvent> = {}): void {
  for (let n = from; n <= to; n++) record(n, overrides);
  log.flush();
}

const names = (events: AuditEventJson[]) => events.map((e) => e.exposed_name);

function rawGet(path: string): Promise<{ status: number; body: { error?: string; code?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(dir, 'diane.sock'), path, method: 'GET' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /api/audit', () => {
  it('answers the newest rows, oldest first, with every field', async () => {
    record(1, {
      arguments: { path: '/x', token: 'secret' },
      error: 'boom',
      outcome: 'tool_error',
      server: 'fs',
      originalName: 'read',
      bytesIn: 12,
      bytesOut: 3400,
      callId: 'c-1',
      at: new Date('2025-03-01T10:00:00.000Z'),
    });
    log.flush();
    const answer = await client.audit();
    expect(answer).toEqual({
      events: [
        {
          id: 1,
          at: '2025-03-01T10:00:00.000Z',
          agent: 'odd',
          kind: 'tools/call',
          exposed_name: 'tool_1',
          host: 'ws1',
          server: 'fs',
          original_name: 'read',
          duration_ms: 1,
          outcome: 'tool_error',
          error: 'boom',
          bytes_in: 12,
          bytes_out: 3400,
          arguments: { path: '/x', token: '[redacted]' },
          call_id: 'c-1',
        },
      ],
      more: false,
      last_id: 1,
    });
  });

  it('filters, limits to the newest, and pages forward from an id', async () => {
    recordMany(1, 10);
    recordMany(11, 12, { outcome: 'refused_scope', host: 'ws2' });
    expect(names((await client.audit({ limit: 3 })).events)).toEqual(['tool_10', 'tool_11', 'tool_12']);
    expect(await client.audit({ limit: 3 })).toMatchObject({ more: true, last_id: 12 });
    expect(await client.audit({ limit: 12 })).toMatchObject({ more: false });
    expect(names((await client.audit({ agent: 'odd', limit: 2 })).events)).toEqual(['tool_9', 'tool_11']);
    expect(names((await client.audit({ outcome: 'refused_scope' })).events)).toEqual(['tool_11', 'tool_12']);
    expect(names((await client.audit({ host: 'ws2', agent: 'even' })).events)).toEqual(['tool_12']);
    expect(names((await client.audit({ kind: 'prompts/get' })).events)).toEqual([]);
    const forward = await client.audit({ after_id: 4, limit: 3 });
    expect(names(forward.events)).toEqual(['tool_5', 'tool_6', 'tool_7']);
    expect(forward.more).toBe(true);
    expect((await client.audit({ after_id: 10, limit: 3 })).more).toBe(false);
  });

  it('takes since and until as ISO times or as durations back from now', async () => {
    recordMany(1, 1, { at: new Date(Date.now() - 3 * 3_600_000) });
    recordMany(2, 2, { at: new Date(Date.now() - 30 * 60_000) });
    expect(names((await client.audit({ since: '1h' })).events)).toEqual(['tool_2']);
    expect(names((await client.audit({ until: '1h' })).events)).toEqual(['tool_1']);
    const since = new Date(Date.now() - 4 * 3_600_000).toISOString();
    expect(names((await client.audit({ since })).events)).toEqual(['tool_1', 'tool_2']);
  });

  it.each([
    ['outcome=nope', /^invalid request: outcome: Invalid option: expected one of "ok"\|/],
    ['kind=tools%2Flist', /^invalid request: kind: Invalid option/],
    ['limit=0', /^invalid request: limit: expected at least 1$/],
    ['limit=10001', /^invalid request: limit: expected at most 10000$/],
    ['limit=ten', /^invalid request: limit: expected a whole number$/],
    ['after_id=-1', /^invalid request: after_id: expected a whole number$/],
    ['since=yesterday', /^invalid request: since: expected an ISO-8601 time .* got "yesterday"$/],
    ['since=2025-13-45', /^invalid request: since: expected an ISO-8601 time/],
    ['since=99999999d', /^invalid request: since: invalid duration/],
    ['agent=', /^invalid request: agent: /],
    ['color=red', /^invalid request: Unrecognized key: "color"$/],
    ['agent=a&agent=b', /^invalid request: agent: given more than once$/],
    ['follow=maybe', /^invalid request: follow: Invalid option/],
  ])('answers 400 to %s', async (query, message) => {
    const answer = await rawGet(`/api/audit?${query}`);
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe('bad-request');
    expect(answer.body.error).toMatch(message);
  });

  it('reports a refusal to the typed client as an AdminRequestError', async () => {
    const err = await client.audit({ outcome: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminRequestError);
    expect((err as AdminRequestError).status).toBe(400);
    const streamErr = await client.followAudit({ outcome: 'nope' }, () => {}).catch((e: unknown) => e);
    expect(streamErr).toBeInstanceOf(AdminRequestError);
    expect((streamErr as Error).message).toMatch(/outcome: Invalid option/);
  });
});

describe('GET /api/audit?follow=1', () => {
  async function follow(params: Parameters<AdminClient['followAudit']>[0]) {
    const seen: AuditEventJson[] = [];
    const stop = new AbortController();
    let opened = false;
    const done = client.followAudit(
      params,
      (e) => seen.push(e),
      stop.signal,
      () => {
        opened = true;
      },
    );
    await waitFor(() => opened, { what: 'the stream to open' });
    return { seen, stop, done };
  }

  it('streams each row once written, with its id, and only what the filters let through', async () => {
    recordMany(1, 2);
    const { seen, stop, done } = await follow({ agent: 'odd' });
    recordMany(3, 6);
    await waitFor(() => seen.length === 2, { what: 'two live rows' });
    expect(seen.map((e) => [e.id, e.exposed_name])).toEqual([
      [3, 'tool_3'],
      [5, 'tool_5'],
    ]);
    record(7);
    await waitFor(() => seen.length === 3, { what: 'a row written by the timer' });
    expect(seen[2]).toMatchObject({ id: 7, agent: 'odd' });
    stop.abort();
    await done;
  });

  it('first catches up from after_id, across pages, then goes live without a gap or a repeat', async () => {
    recordMany(1, 1200);
    const { seen, stop, done } = await follow({ after_id: 100 });
    await waitFor(() => seen.length === 1100, { what: 'the catch-up' });
    recordMany(1201, 1203);
    await waitFor(() => seen.length === 1103, { what: 'the live rows' });
    expect(seen.map((e) => e.id)).toEqual(Array.from({ length: 1103 }, (_, i) => i + 101));
    stop.abort();
    await done;
  });

  it('tells the client when the daemon ends the stream', async () => {
    const { done } = await follow({});
    await server.close();
    await expect(done).rejects.toThrow(/ended the audit stream/);
  });

  it('loses and repeats nothing written while it catches up', async () => {
    recordMany(1, 1500);
    const { seen, stop, done } = await follow({ after_id: 0 });
    // Written in small batches while the catch-up pages through the first 1,500.
    for (let n = 1501; n <= 1600; n += 10) recordMany(n, n + 9);
    await waitFor(() => seen.length >= 1600, { what: 'every row' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen.map((e) => e.id)).toEqual(Array.from({ length: 1600 }, (_, i) => i + 1));
    stop.abort();
    await done;
  });
});

describe('GET /api/audit?follow=1 over a shared table (AuditTail)', () => {
  it("streams the rows of every writer of the table, each once, in id order, this master's and others'", async () => {
    // Another master's writer on the same table: nothing of it reaches this master's AuditLog.
    const other = new AuditLog(store, { ...DEFAULT_AUDIT_SETTINGS, flushIntervalMs: 10 }, silentLogger);
    const tail = new AuditTail(store.auditEvents, { pollMs: 20, pageRows: 50 }, silentLogger, (read) =>
      log.subscribe(read),
    );
    const socket = join(dir, 'cluster.sock');
    const clusterServer = new AdminServer(socket, silentLogger);
    registerAuditRoutes(clusterServer, { audit: tail, events: store.auditEvents });
    clusterServer.ready();
    await clusterServer.listen();
    const clusterClient = new AdminClient(socket, dir);
    const seen: AuditEventJson[] = [];
    const stop = new AbortController();
    let opened = false;
    const done = clusterClient.followAudit(
      {},
      (e) => seen.push(e),
      stop.signal,
      () => {
        opened = true;
      },
    );
    try {
      await waitFor(() => opened, { what: 'the stream to open' });
      for (let n = 1; n <= 120; n++) {
        (n % 3 === 0 ? other : log).record({ kind: 'tools/call', outcome: 'ok', exposedName: `tool_${n}` });
        if (n % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await Promise.all([log.flush(), other.flush()]);
      await waitFor(() => seen.length >= 120, { what: 'every row of both writers' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const ids = seen.map((e) => e.id);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(new Set(ids).size).toBe(120);
      expect(new Set(seen.map((e) => e.exposed_name)).size).toBe(120);
      expect(seen.filter((e) => Number(e.exposed_name?.slice(5)) % 3 === 0)).toHaveLength(40);
    } finally {
      stop.abort();
      await done;
      tail.close();
      await other.close();
      await clusterServer.close();
    }
  });

  it('keeps a row handed over live between the last catch-up read and the end of the catch-up', async () => {
    const row = (id: number) =>
      storedAuditRow(id, {
        agent: 'owner',
        exposedName: `tool_${id}`,
        durationMs: 1,
        bytesIn: 0,
        bytesOut: 0,
      });
    const table = [row(1), row(2)];
    const listeners = new Set<AuditListener>();
    let late = false;
    const events = {
      maxId: async () => table.length,
      // The last page is read before row 3 commits; row 3 is handed over live before that page
      // reaches the follower, which is not caught up yet.
      query: async (q: AuditQuery) => {
        const page = table.filter((r) => r.id > (q.afterId ?? 0)).slice(0, q.limit);
        if (!late) {
          late = true;
          table.push(row(3));
          for (const l of listeners) l(row(3));
        }
        return page;
      },
    } as unknown as AuditRepo;
    const live = {
      subscribe: (l: AuditListener) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    };
    const socket = join(dir, 'handoff.sock');
    const handoff = new AdminServer(socket, silentLogger);
    registerAuditRoutes(handoff, { audit: live, events });
    handoff.ready();
    await handoff.listen();
    const seen: AuditEventJson[] = [];
    const stop = new AbortController();
    const done = new AdminClient(socket, dir).followAudit({ after_id: 0 }, (e) => seen.push(e), stop.signal);
    try {
      await waitFor(() => seen.length >= 3, { what: 'rows 1 to 3', timeoutMs: 2_000 });
      expect(seen.map((e) => e.id)).toEqual([1, 2, 3]);
    } finally {
      stop.abort();
      await done;
      await handoff.close();
    }
  });
});
