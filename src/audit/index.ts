export {
  AUDIT_KINDS,
  AUDIT_OUTCOMES,
  type AuditEvent,
  type AuditEventJson,
  type AuditKind,
  type AuditOutcome,
  auditEventToJson,
  matchesAuditQuery,
} from './auditEvent.js';
export {
  type AuditListener,
  AuditLog,
  type AuditSettings,
  type AuditStats,
  DEFAULT_AUDIT_SETTINGS,
} from './auditLog.js';
export {
  type AuditLiveSource,
  AuditTail,
  type AuditTailSettings,
  DEFAULT_AUDIT_TAIL_SETTINGS,
} from './auditTail.js';
export {
  DEFAULT_REDACTION_LIMITS,
  isSecretKey,
  REDACTED,
  type RedactionLimits,
  redactArguments,
  TOO_DEEP,
  TRUNCATED_KEY,
} from './redact.js';
