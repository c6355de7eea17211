import { Counter, Gauge, type Registry } from 'prom-client';
import type { Router } from '../mcp/router.js';
import { type AuditStatsView, registerAuditMetrics } from './auditMetrics.js';
import { LabelCaps } from './boundedLabel.js';
import { CallMetrics } from './callMetrics.js';
import { newRegistry } from './registry.js';
import { registerRouterMetrics } from './routerMetrics.js';
import { DEFAULT_METRICS_SETTINGS, type MetricsSettings } from './settings.js';

/** What the metrics read of the slave's status (`SlaveStatus` has these fields). */
export interface SlaveLinkView {
  /** `connected` while the link to the master is up. */
  state: string;
  host_id: string;
  cert_expires_at: string;
  next_renewal_at?: string;
  renewal_error?: string;
}

export interface SlaveMetricsSources {
  router: Router;
  /** The slave's latest status; undefined before the first. */
  status: () => SlaveLinkView | undefined;
  audit: () => AuditStatsView;
  disabledServers?: () => readonly string[];
}

export type SlaveRenewalOutcome = 'renewed' | 'failed' | 'refused';
const RENEWAL_OUTCOMES: readonly SlaveRenewalOutcome[] = ['renewed', 'failed', 'refused'];

/**
 * The Prometheus metrics of `diane slave start`: the calls the master had this machine run, its
 * servers and what they expose, the link to the master and the certificate's renewal.
 */
export class SlaveMetrics {
  readonly registry: Registry;
  private readonly calls: CallMetrics;
  private readonly connects: Counter;
  private readonly heartbeatMisses: Counter;
  private readonly renewals: Counter<'outcome'>;
  private lastState?: string;

  constructor(sources: SlaveMetricsSources, settings: MetricsSettings = DEFAULT_METRICS_SETTINGS) {
    const prefix = settings.prefix;
    const registry = newRegistry(settings, 'slave');
    this.registry = registry;
    const labels = new LabelCaps(settings);
    this.calls = new CallMetrics(registry, sources.router, labels, settings);
    registerRouterMetrics(registry, sources.router, labels, settings, {
      exposure: true,
      ...(sources.disabledServers ? { disabledServers: sources.disabledServers } : {}),
    });
    registerAuditMetrics(registry, settings, sources.audit);

    new Gauge({
      name: `${prefix}master_link_up`,
      help: '1 while the link to the master is up, else 0',
      registers: [registry],
      collect() {
        this.set(sources.status()?.state === 'connected' ? 1 : 0);
      },
    });
    this.connects = new Counter({
      name: `${prefix}master_link_connects_total`,
      help: 'Links to the master established (the first one and every reconnection)',
      registers: [registry],
    });
    this.heartbeatMisses = new Counter({
      name: `${prefix}master_heartbeat_misses_total`,
      help: 'Links dropped because the master did not answer pings within --heartbeat-timeout',
      registers: [registry],
    });
    this.renewals = new Counter({
      name: `${prefix}cert_renewals_total`,
      help: 'Certificate renewal attempts by outcome: renewed, failed (retried), refused (final)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    for (const outcome of RENEWAL_OUTCOMES) this.renewals.inc({ outcome }, 0);
    new Gauge({
      name: `${prefix}cert_renewal_failing`,
      help: "1 when the certificate's last renewal attempt failed, else 0",
      registers: [registry],
      collect() {
        this.set(sources.status()?.renewal_error ? 1 : 0);
      },
    });
    new Gauge({
      name: `${prefix}cert_expiry_timestamp_seconds`,
      help: "When this host's certificate expires, Unix time",
      labelNames: ['host'],
      registers: [registry],
      collect() {
        this.reset();
        const status = sources.status();
        if (status) this.set({ host: status.host_id }, Date.parse(status.cert_expires_at) / 1000);
      },
    });
    new Gauge({
      name: `${prefix}cert_next_renewal_timestamp_seconds`,
      help: 'When the certificate is renewed next (over the link), Unix time; absent when no renewal is scheduled',
      labelNames: ['host'],
      registers: [registry],
      collect() {
        this.reset();
        const status = sources.status();
        if (status?.next_renewal_at) {
          this.set({ host: status.host_id }, Date.parse(status.next_renewal_at) / 1000);
        }
      },
    });
  }

  /** Every status the slave agent reports: a change to `connected` is a link established. */
  linkStatus(status: { state: string }): void {
    if (status.state === 'connected' && this.lastState !== 'connected') this.connects.inc();
    this.lastState = status.state;
  }

  heartbeatMissed(): void {
    this.heartbeatMisses.inc();
  }

  renewal(outcome: SlaveRenewalOutcome): void {
    this.renewals.inc({ outcome });
  }

  close(): void {
    this.calls.close();
    this.registry.clear();
  }
}
