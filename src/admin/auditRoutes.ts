import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import {
  AUDIT_KINDS,
  AUDIT_OUTCOMES,
  type AuditLiveSource,
  auditEventToJson,
  matchesAuditQuery,
} from '../audit/index.js';
import { parseDuration } from '../config/duration.js';
import type { AuditQuery, AuditRepo, StoredAuditEvent } from '../store/index.js';
import type { AdminServer } from './adminServer.js';
import { parseQuery } from './adminServer.js';
import type { AuditResponse } from './types.js';

export const MAX_AUDIT_LIMIT = 10_000;
const DEFAULT_AUDIT_LIMIT = 100;
/** Rows per query while a follower catches up with what was written before it arrived. */
const CATCH_UP_PAGE = 500;
/** A follower that reads slower than this much unread output is cut off (it may reconnect). */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;
/**
 * Live rows kept while a follower catches up; past this they are let go and the catch-up reads
 * once more (they are in the store by then).
 */
const MAX_HELD_ROWS = 10_000;
const SSE_KEEPALIVE_MS = 15_000;

const name = z.string().min(1).max(512);

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,16}$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `expected at least ${min}`).max(max, `expected at most ${max}`));

/** An ISO-8601 time, or a duration back from now (`1h`: the last hour). */
const time = z.string().transform((text, ctx) => {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(text)) {
    try {
      return new Date(Date.now() - parseDuration(text));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  }
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? new Date(text) : new Date(Number.NaN);
  if (Number.isNaN(at.getTime())) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an ISO-8601 time (2025-03-01T10:00:00Z) or a duration back from now (1h, 7d), got ${JSON.stringify(text.slice(0, 64))}`,
    });
    return z.NEVER;
  }
  return at;
});

const AuditParams = z
  .object({
    agent: name.optional(),
    host: name.optional(),
    outcome: z.enum(AUDIT_OUTCOMES).optional(),
    kind: z.enum(AUDIT_KINDS).optional(),
    since: time.optional(),
    until: time.optional(),
    limit: wholeNumber(1, MAX_AUDIT_LIMIT).optional(),
    after_id: wholeNumber(0, Number.MAX_SAFE_INTEGER).optional(),
    follow: z.enum(['0', '1', 'true', 'false']).optional(),
  })
  .strict();

export interface AuditRouteDeps {
  /**
   * Rows as they are written: this master's AuditLog (SQLite: the only writer), or an
   * AuditTail over the shared PostgreSQL table (every master's rows).
   */
  audit: AuditLiveSource;
  events: AuditRepo;
}

/**
 * `GET /api/audit`: the audit trail, filtered. Without `after_id`: the newest `limit` rows; with
 * it: the oldest `limit` rows after that id (paging forward). Either way oldest first, with `more`
 * when the limit cut rows off and `last_id`, the newest id in the trail, where a follower starts.
 * `follow=1`: a server-sent event stream (`event: audit`), first of the rows after `after_id` (or
 * none, without it), then of each row as it is written.
 */
export function registerAuditRoutes(admin: AdminServer, deps: AuditRouteDeps): void {
  admin.handle('GET', '/api/audit', async ({ query, raw, res }) => {
    const params = parseQuery(AuditParams, query);
    const filter: AuditQuery = {
      ...(params.agent === undefined ? {} : { agent: params.agent }),
      ...(params.host === undefined ? {} : { host: params.host }),
      ...(params.outcome === undefined ? {} : { outcome: params.outcome }),
      ...(params.kind === undefined ? {} : { kind: params.kind }),
      ...(params.since === undefined ? {} : { since: params.since }),
      ...(params.until === undefined ? {} : { until: params.until }),
    };
    if (params.follow === '1' || params.follow === 'true') {
      follow(deps, filter, params.after_id, raw.socket, res);
      return undefined;
    }
    const limit = params.limit ?? DEFAULT_AUDIT_LIMIT;
    const forward = params.after_id !== undefined;
    const rows = await deps.events.query({
      ...filter,
      ...(forward ? { afterId: params.after_id } : { newest: true }),
      limit: limit + 1,
    });
    const more = rows.length > limit;
    const page = more ? (forward ? rows.slice(0, limit) : rows.slice(1)) : rows;
    const answer: AuditResponse = {
      events: page.map(auditEventToJson),
      more,
      last_id: await deps.events.maxId(),
    };
    return answer;
  });
}

function follow(
  deps: AuditRouteDeps,
  filter: AuditQuery,
  afterId: number | undefined,
  socket: NodeJS.EventEmitter,
  res: ServerResponse,
): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.write(': connected\n\n');
  // The id of the last row sent: live rows at or below it were.
  let lastId = afterId ?? 0;
  let caughtUp = false;
  let closed = false;
  /** Live rows that came during the catch-up; sent after it, past what it sent. */
  let held: StoredAuditEvent[] = [];
  let letGo = false;
  const send = (row: StoredAuditEvent) => {
    res.write(`event: audit\ndata: ${JSON.stringify(auditEventToJson(row))}\n\n`);
    lastId = row.id;
  };
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
  const gone = new AbortController();
  // Subscribed before the catch-up reads anything: a row written meanwhile is either in a
  // catch-up page or handed over here (or both; the id sorts that out), never in neither.
  const unsubscribe = deps.audit.subscribe((row) => {
    if (closed || row.id <= lastId || !matchesAuditQuery(row, filter)) return;
    if (!caughtUp) {
      if (held.length < MAX_HELD_ROWS) held.push(row);
      else letGo = true;
      return;
    }
    send(row);
    if (res.writableLength > MAX_UNREAD_BYTES) {
      const error = `the audit stream fell behind its reader; reconnect with after_id=${lastId}`;
      res.end(`event: error\ndata: ${JSON.stringify({ error, last_id: lastId })}\n\n`);
      stop();
    }
  });
  function stop(): void {
    closed = true;
    clearInterval(keepalive);
    unsubscribe();
    gone.abort();
  }
  socket.once('close', stop);
  void (async () => {
    await deps.audit.ready?.();
    if (afterId === undefined) lastId = await deps.events.maxId();
    for (;;) {
      if (closed) return;
      letGo = false;
      const page = await deps.events.query({ ...filter, afterId: lastId, limit: CATCH_UP_PAGE });
      for (const row of page) send(row);
      if (res.writableNeedDrain) await once(res, 'drain', { signal: gone.signal });
      if (closed) return;
      if (page.length < CATCH_UP_PAGE && !letGo) break;
    }
    caughtUp = true;
    const pending = held;
    held = [];
    for (const row of pending) if (row.id > lastId) send(row);
  })().catch(() => {
    res.destroy();
    stop();
  });
}
