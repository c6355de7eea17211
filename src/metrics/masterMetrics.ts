import { Counter, Gauge, type Registry } from 'prom-client';
import type { Router } from '../mcp/router.js';
import { type AuditStatsView, registerAuditMetrics } from './auditMetrics.js';
import { LabelCaps } from './boundedLabel.js';
import { CallMetrics } from './callMetrics.js';
import { newRegistry } from './registry.js';
import { registerRouterMetrics } from './routerMetrics.js';
import { DEFAULT_METRICS_SETTINGS, type MetricsSettings } from './settings.js';

/** What the metrics read of a paired host (`SlaveRegistry.health()` has these fields). */
export interface SlaveHostView {
  host_id: string;
  status: 'connected' | 'disconnected';
  enabled: boolean;
  cert_expires_at: string;
  /** Why the host's last renewal was refused; cleared by the next successful one. */
  renewal_error?: string;
}

/** The master's state, read on each scrape. Plain functions: the metrics import no service. */
export interface MasterMetricsSources {
  router: Router;
  /** Every paired host (`SlaveRegistry.health()`). */
  slaves: () => readonly SlaveHostView[] | Promise<readonly SlaveHostView[]>;
  /** Pairing requests waiting for a decision. */
  pendingPairings: () => number | Promise<number>;
  /** The notAfter of the CA in use, and of the next one during a rollover. */
  caExpiry: () => { current: Date; next?: Date };
  /** Open 2025-era agent sessions on /mcp. */
  agentSessions: () => number;
  audit: () => AuditStatsView;
  /** Configured servers with `enabled: false`. */
  disabledServers?: () => readonly string[];
}

export type PairingEventKind = 'new' | 'approved' | 'denied' | 'expired';
const PAIRING_DECISIONS = ['approved', 'denied', 'expired'] as const;

/**
 * The Prometheus metrics of `diane serve`. State (links, renewal failures, pairing requests,
 * servers, lists, sessions, the audit queue, the CA) is read when scraped; counters that no state
 * keeps are fed by the daemon's events: finished and refused calls (from the router), pairing
 * events, links established and heartbeats missed (from the hub), renewals (from the renewal
 * service).
 */
export class MasterMetrics {
  readonly registry: Registry;
  private readonly labels: LabelCaps;
  private readonly calls: CallMetrics;
  private readonly pairingRequests: Counter;
  private readonly pairingDecisions: Counter<'outcome'>;
  private readonly linkConnects: Counter<'host'>;
  private readonly heartbeatMisses: Counter<'host'>;
  private readonly renewals: Counter<'host'>;
  private readonly renewalFailures: Counter<'host' | 'reason'>;

  constructor(sources: MasterMetricsSources, settings: MetricsSettings = DEFAULT_METRICS_SETTINGS) {
    const prefix = settings.prefix;
    const registry = newRegistry(settings, 'master');
    this.registry = registry;
    const labels = new LabelCaps(settings);
    this.labels = labels;
    this.calls = new CallMetrics(registry, sources.router, labels, settings);
    registerRouterMetrics(registry, sources.router, labels, settings, {
      ...(sources.disabledServers ? { disabledServers: sources.disabledServers } : {}),
    });
    registerAuditMetrics(registry, settings, sources.audit);
    const slaves = oncePerScrape(sources.slaves);

    new Gauge({
      name: `${prefix}agent_sessions`,
      help: 'Open agent sessions (2025-era Streamable HTTP) on the agent endpoint',
      registers: [registry],
      collect() {
        this.set(sources.agentSessions());
      },
    });

    // ---- slave links ----
    new Gauge({
      name: `${prefix}slave_links_connected`,
      help: 'Paired hosts with a live link',
      registers: [registry],
      async collect() {
        const hosts = await slaves();
        this.set(hosts.filter((s) => s.enabled && s.status === 'connected').length);
      },
    });
    new Gauge({
      name: `${prefix}slave_hosts`,
      help: 'Paired hosts by state: connected, disconnected (enabled, no link) or disabled',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        const hosts = await slaves();
        const counts = { connected: 0, disconnected: 0, disabled: 0 };
        for (const s of hosts) counts[s.enabled ? s.status : 'disabled']++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: `${prefix}slave_link_up`,
      help: `1 when the enabled host has a live link, else 0 (host="${settings.otherLabel}": the number of connected hosts past the label cap)`,
      labelNames: ['host'],
      registers: [registry],
      async collect() {
        const hosts = await slaves();
        this.reset();
        for (const s of hosts) {
          if (s.enabled) this.inc({ host: labels.host.value(s.host_id) }, s.status === 'connected' ? 1 : 0);
        }
      },
    });
    this.linkConnects = new Counter({
      name: `${prefix}slave_link_connects_total`,
      help: 'Links established by each host (its first connection and every reconnection)',
      labelNames: ['host'],
      registers: [registry],
    });
    this.heartbeatMisses = new Counter({
      name: `${prefix}slave_heartbeat_misses_total`,
      help: 'Links dropped because the host did not answer pings within --heartbeat-timeout',
      labelNames: ['host'],
      registers: [registry],
    });

    // ---- certificates ----
    this.renewals = new Counter({
      name: `${prefix}slave_cert_renewals_total`,
      help: 'Certificates issued to hosts by renewal over their link',
      labelNames: ['host'],
      registers: [registry],
    });
    this.renewalFailures = new Counter({
      name: `${prefix}slave_cert_renewal_failures_total`,
      help: 'Renewals refused (reason: the refusal) or failed on the master (reason="error")',
      labelNames: ['host', 'reason'],
      registers: [registry],
    });
    new Gauge({
      name: `${prefix}slave_renewal_failing`,
      help: `1 when the host's last renewal was refused (renewal_error in \`diane slave list\`), else 0 (host="${settings.otherLabel}": how many past the label cap)`,
      labelNames: ['host'],
      registers: [registry],
      async collect() {
        const hosts = await slaves();
        this.reset();
        for (const s of hosts) {
          if (s.enabled) this.inc({ host: labels.host.value(s.host_id) }, s.renewal_error ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: `${prefix}slave_renewal_failing_hosts`,
      help: 'Enabled hosts whose last certificate renewal was refused: alert when above 0',
      registers: [registry],
      async collect() {
        const hosts = await slaves();
        this.set(hosts.filter((s) => s.enabled && s.renewal_error).length);
      },
    });
    new Gauge({
      name: `${prefix}slave_cert_expiry_timestamp_seconds`,
      help: `When each enabled host's current certificate expires, Unix time (host="${settings.otherLabel}": the earliest past the label cap)`,
      labelNames: ['host'],
      registers: [registry],
      async collect() {
        const hosts = await slaves();
        this.reset();
        const earliest = new Map<string, number>();
        for (const s of hosts) {
          if (!s.enabled) continue;
          const host = labels.host.value(s.host_id);
          const at = Date.parse(s.cert_expires_at) / 1000;
          earliest.set(host, Math.min(earliest.get(host) ?? Number.POSITIVE_INFINITY, at));
        }
        for (const [host, at] of earliest) this.set({ host }, at);
      },
    });
    new Gauge({
      name: `${prefix}ca_expiry_timestamp_seconds`,
      help: 'When the slave CA expires, Unix time: ca="current", and ca="next" during a rollover',
      labelNames: ['ca'],
      registers: [registry],
      collect() {
        this.reset();
        const { current, next } = sources.caExpiry();
        this.set({ ca: 'current' }, current.getTime() / 1000);
        if (next) this.set({ ca: 'next' }, next.getTime() / 1000);
      },
    });

    // ---- pairing ----
    new Gauge({
      name: `${prefix}pairing_requests_pending`,
      help: 'Pairing requests waiting for approval',
      registers: [registry],
      async collect() {
        this.set(await sources.pendingPairings());
      },
    });
    this.pairingRequests = new Counter({
      name: `${prefix}pairing_requests_total`,
      help: 'Pairing requests received (and accepted for a decision)',
      registers: [registry],
    });
    this.pairingDecisions = new Counter({
      name: `${prefix}pairing_decisions_total`,
      help: 'Pairing requests decided, by outcome: approved, denied, expired (timed out or displaced)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    for (const outcome of PAIRING_DECISIONS) this.pairingDecisions.inc({ outcome }, 0);
  }

  /** A `PairingService` event. */
  pairingEvent(type: PairingEventKind): void {
    if (type === 'new') this.pairingRequests.inc();
    else this.pairingDecisions.inc({ outcome: type });
  }

  /** The hub handed a host's link to the registry and the MCP handshake finished. */
  linkConnected(host: string): void {
    this.linkConnects.inc({ host: this.labels.host.value(host) });
  }

  heartbeatMissed(host: string): void {
    this.heartbeatMisses.inc({ host: this.labels.host.value(host) });
  }

  renewalIssued(host: string): void {
    this.renewals.inc({ host: this.labels.host.value(host) });
  }

  /** `reason`: one of the renewal refusals of the wire contract, or `error`. */
  renewalFailed(host: string, reason: string): void {
    this.renewalFailures.inc({ host: this.labels.host.value(host), reason });
  }

  close(): void {
    this.calls.close();
    this.registry.clear();
  }
}

/**
 * A source read once per scrape: several gauges need the paired hosts, which come from the
 * database. The value is dropped on the next turn of the event loop.
 */
export function oncePerScrape<T>(read: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (cached) return cached.value;
    cached = { value: read() };
    setImmediate(() => {
      cached = undefined;
    });
    return cached.value;
  };
}
