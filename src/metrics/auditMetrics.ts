import { Counter, Gauge, type Registry } from 'prom-client';
import type { MetricsSettings } from './settings.js';

/** `AuditLog.stats()`, as the metrics read it. */
export interface AuditStatsView {
  queued: number;
  written: number;
  dropped: number;
}

/** The audit trail's writer, read on each scrape: its queue, and what it wrote and lost. */
export function registerAuditMetrics(
  registry: Registry,
  settings: MetricsSettings,
  stats: () => AuditStatsView,
): void {
  const prefix = settings.prefix;
  new Gauge({
    name: `${prefix}audit_queue_length`,
    help: 'Audit events waiting in memory to be written',
    registers: [registry],
    collect() {
      this.set(stats().queued);
    },
  });
  new Counter({
    name: `${prefix}audit_events_written_total`,
    help: 'Audit events written since the process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats().written);
    },
  });
  new Counter({
    name: `${prefix}audit_events_dropped_total`,
    help: 'Audit events lost since the process started (queue full while the database was busy)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats().dropped);
    },
  });
}
