import type { AuditLog, AuditOutcome } from '../audit/index.js';
import type { CallRecord } from '../mcp/callRecords.js';
import type { Router } from '../mcp/router.js';

const AUDITED_REFUSALS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read']);

/**
 * Feeds a router's finished calls and refusals into an audit log. Both only queue (AuditLog
 * writes in batches off the call path). On a slave the agent is what the master said it is.
 * Returns the unsubscribe.
 */
export function feedAudit(router: Router, audit: AuditLog): () => void {
  const offCalls = router.onCallFinished((record: CallRecord) =>
    audit.record({
      at: new Date(record.startedAt),
      agent: record.peerAgent ?? record.agent ?? null,
      kind: record.method,
      exposedName: record.exposedName,
      host: record.host,
      server: record.server,
      originalName: record.originalName,
      durationMs: record.durationMs,
      outcome: record.outcome,
      error: record.error ?? null,
      bytesIn: record.bytesIn,
      bytesOut: record.bytesOut,
      ...(record.arguments === undefined ? {} : { arguments: record.arguments }),
      callId: record.peerCallId ?? record.callId,
    }),
  );
  const offRefusals = router.onRefused((event) => {
    if (!AUDITED_REFUSALS.has(event.method)) return;
    const outcome: AuditOutcome = event.reason === 'scope' ? 'refused_scope' : 'refused_host';
    audit.record({
      agent: event.agent ?? null,
      kind: event.method as 'tools/call' | 'prompts/get' | 'resources/read',
      exposedName: event.exposedName,
      host: event.host,
      server: event.server,
      originalName: event.name,
      durationMs: 0,
      outcome,
      error: event.reason === 'scope' ? "outside the agent's scope" : 'not exposed by the host (expose/hide)',
      bytesIn: 0,
      bytesOut: 0,
    });
  });
  return () => {
    offCalls();
    offRefusals();
  };
}
