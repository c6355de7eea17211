import type { AuditQuery, AuditRow, StoredAuditEvent } from '../store/index.js';

/**
 * What the audit trail records: every request an agent made that reached (or was refused before
 * reaching) an upstream, and every request an upstream made back to an agent. `audit/dropped` is
 * the audit log's own row saying that events were lost because its queue was full.
 */
export const AUDIT_KINDS = [
  'tools/call',
  'prompts/get',
  'resources/read',
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
  'audit/dropped',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/**
 * How a call ended. `tool_error`: the tool answered with `isError`. `protocol_error`: a JSON-RPC
 * error (from the upstream or Diane). `refused_scope`: the agent's scope does not allow the name;
 * `refused_host`: the host did not consent. `dropped`: only on `audit/dropped` rows.
 */
export const AUDIT_OUTCOMES = [
  'ok',
  'tool_error',
  'protocol_error',
  'timeout',
  'cancelled',
  'refused_scope',
  'refused_host',
  'dropped',
] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** What a caller hands to `AuditLog.record`. Everything but kind and outcome may be left out. */
export interface AuditEvent {
  /** When the call started; default: when it was recorded. */
  at?: Date;
  agent?: string | null;
  kind: AuditKind;
  /** The name (or Diane URI) the agent used. */
  exposedName?: string | null;
  /** The slave host that served it; null or absent for the master's own servers. */
  host?: string | null;
  /** The MCP server that served it, and its own name for the tool, prompt or resource. */
  server?: string | null;
  originalName?: string | null;
  durationMs?: number | null;
  outcome: AuditOutcome;
  /** A short message for anything but `ok`; cut to a few hundred characters. */
  error?: string | null;
  bytesIn?: number | null;
  bytesOut?: number | null;
  /**
   * The call's arguments, only when the agent has argument recording on: stored redacted and
   * capped (see redact.ts). Leave out otherwise.
   */
  arguments?: unknown;
  /** The router's call id, to match the rows of one call (its sampling, elicitation...). */
  callId?: string | null;
}

/**
 * An audit row on the admin API and in `--json` output (one object per line): the stored
 * columns, with the redacted arguments parsed back from their JSON text.
 */
export type AuditEventJson = Omit<AuditRow, 'arguments'> & { arguments: unknown };

export function auditEventToJson(e: StoredAuditEvent): AuditEventJson {
  return {
    id: e.id,
    at: e.at.toISOString(),
    agent: e.agent,
    kind: e.kind,
    exposed_name: e.exposedName,
    host: e.host,
    server: e.server,
    original_name: e.originalName,
    duration_ms: e.durationMs,
    outcome: e.outcome,
    error: e.error,
    bytes_in: e.bytesIn,
    bytes_out: e.bytesOut,
    arguments: parseStoredArguments(e.arguments),
    call_id: e.callId,
  };
}

/** The stored text is JSON by construction; anything else is shown as the text it is. */
function parseStoredArguments(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Whether a written row passes a query's filters (all but the id window and the limit): what a
 * live follower applies to the rows it is handed, so that it shows what the query would.
 */
export function matchesAuditQuery(e: StoredAuditEvent, q: AuditQuery): boolean {
  return (
    (q.agent === undefined || e.agent === q.agent) &&
    (q.host === undefined || e.host === q.host) &&
    (q.outcome === undefined || e.outcome === q.outcome) &&
    (q.kind === undefined || e.kind === q.kind) &&
    (q.since === undefined || e.at.getTime() >= q.since.getTime()) &&
    (q.until === undefined || e.at.getTime() < q.until.getTime()) &&
    (q.afterId === undefined || e.id > q.afterId)
  );
}
