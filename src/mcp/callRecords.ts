import { ProtocolError } from '@modelcontextprotocol/client';
import type { JsonObject } from './upstream.js';

/** The `_meta` key under which a Diane tells the next hop which agent a call is for. */
export const AGENT_META_KEY = 'dev.diane/agent';

/** How a call (or a server's request to an agent) ended, as the audit trail records it. */
export type CallOutcome = 'ok' | 'tool_error' | 'protocol_error' | 'timeout' | 'cancelled';

export type RecordedMethod =
  | 'tools/call'
  | 'prompts/get'
  | 'resources/read'
  | 'sampling/createMessage'
  | 'elicitation/create'
  | 'roots/list';

/**
 * One finished call, for the audit trail. `agent` is the caller's identity on this Diane; on a
 * slave, what the master said (`peerAgent`), which the slave cannot verify. `callId` is the
 * call's id on this Diane, and `peerCallId` the id the previous hop gave it, so the master's and
 * the slave's rows of one call can be joined.
 */
export interface CallRecord {
  method: RecordedMethod;
  agent?: string;
  peerAgent?: string;
  exposedName: string;
  host: string;
  /** The upstream that ran it: a configured server, or a slave host on the master. */
  server: string;
  /** The name (or URI) the upstream knows it by. */
  originalName: string;
  startedAt: number;
  durationMs: number;
  outcome: CallOutcome;
  error?: string;
  bytesIn: number;
  bytesOut: number;
  /** Only for agents that record arguments. */
  arguments?: unknown;
  callId: string;
  peerCallId?: string;
}

/** The outcome of a result: a tool result flagged `isError` is the tool's failure, not the call's. */
export function resultOutcome(method: RecordedMethod, result: JsonObject): CallOutcome {
  return method === 'tools/call' && result.isError === true ? 'tool_error' : 'ok';
}

/** A call that ended in an error: its idle timeout, the agent's cancellation, or anything else. */
export function errorOutcome(timedOut: boolean, cancelled: boolean): CallOutcome {
  if (timedOut) return 'timeout';
  if (cancelled) return 'cancelled';
  return 'protocol_error';
}

export function errorText(err: unknown): string {
  const message = err instanceof ProtocolError || err instanceof Error ? err.message : String(err);
  return message.length > 500 ? `${message.slice(0, 500)}…` : message;
}

/**
 * About how many bytes a JSON value takes, without serialising it: the audit needs an order of
 * magnitude per call, and a `JSON.stringify` of a 1 MiB result on the call path would cost what
 * the audit must not. Strings count their UTF-16 length plus quotes; depth is capped.
 */
export function approximateJsonBytes(value: unknown, depth = 0): number {
  if (value === null || value === undefined) return 4;
  switch (typeof value) {
    case 'string':
      return value.length + 2;
    case 'number':
    case 'boolean':
      return 8;
    case 'object': {
      if (depth > 32) return 0;
      let total = 2;
      if (Array.isArray(value)) {
        for (const item of value) total += approximateJsonBytes(item, depth + 1) + 1;
        return total;
      }
      for (const [key, item] of Object.entries(value)) {
        total += key.length + 4 + approximateJsonBytes(item, depth + 1);
      }
      return total;
    }
    default:
      return 0;
  }
}
