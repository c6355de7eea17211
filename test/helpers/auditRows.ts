import type { AuditRecord, StoredAuditEvent } from '../../src/store/index.js';

/** An audit record of a `tools/call` with every optional column empty, changed by `overrides`. */
export function auditRecord(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    at: new Date(),
    agent: null,
    kind: 'tools/call',
    exposedName: 'tool',
    host: null,
    server: null,
    originalName: null,
    durationMs: null,
    outcome: 'ok',
    error: null,
    bytesIn: null,
    bytesOut: null,
    arguments: null,
    callId: null,
    ...overrides,
  };
}

/** The same as the store hands it back, with its id; the exposed name is `t<id>` unless overridden. */
export function storedAuditRow(id: number, overrides: Partial<AuditRecord> = {}): StoredAuditEvent {
  return { id, ...auditRecord({ exposedName: `t${id}`, ...overrides }) };
}
