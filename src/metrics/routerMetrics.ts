import { Counter, Gauge, type Registry } from 'prom-client';
import type { Router } from '../mcp/router.js';
import type { UpstreamState } from '../mcp/upstream.js';
import type { LabelCaps } from './boundedLabel.js';
import type { MetricsSettings } from './settings.js';

/** The states of a configured server (a slave's `offline` is reported by the link metrics). */
export const SERVER_STATES = [
  'starting',
  'connected',
  'backoff',
  'disabled',
  'stopped',
] as const satisfies readonly UpstreamState[];

export interface RouterMetricsOptions {
  /** Configured servers turned off with `enabled: false` (they are not in the router). */
  disabledServers?: () => readonly string[];
  /** Per-server exposed and hidden entry counts (`expose`/`hide`): what a slave offers its master. */
  exposure?: boolean;
}

/**
 * What the router holds, read on each scrape: the state and restarts of each configured server
 * (slave hosts are left to the link metrics), the sizes of the lists agents see, entries the
 * router refused (name collisions, limits) and, on request, each server's exposed/hidden counts.
 */
export function registerRouterMetrics(
  registry: Registry,
  router: Router,
  labels: LabelCaps,
  settings: MetricsSettings,
  opts: RouterMetricsOptions = {},
): void {
  const prefix = settings.prefix;
  const servers = () => router.statuses().filter((s) => s.kind !== 'slave');
  new Gauge({
    name: `${prefix}upstream_state`,
    help: `State of each configured MCP server: 1 for its current state, 0 for the others (${SERVER_STATES.join(', ')})`,
    labelNames: ['server', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const current = new Map<string, UpstreamState>();
      for (const s of servers()) current.set(s.name, s.state);
      for (const name of opts.disabledServers?.() ?? [])
        if (!current.has(name)) current.set(name, 'disabled');
      for (const [name, state] of current) {
        const server = labels.server.value(name);
        for (const s of SERVER_STATES) this.inc({ server, state: s }, s === state ? 1 : 0);
      }
    },
  });
  new Counter({
    name: `${prefix}upstream_restarts_total`,
    help: 'Restarts of each configured MCP server since it was (re)configured',
    labelNames: ['server'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of servers()) this.inc({ server: labels.server.value(s.name) }, s.restarts);
    },
  });
  new Gauge({
    name: `${prefix}exposed_entries`,
    help: 'Entries in the lists agents see (before scopes), by list',
    labelNames: ['list'],
    registers: [registry],
    collect() {
      const resources = router.resourceListing();
      this.set({ list: 'tools' }, router.toolTable().exposed.length);
      this.set({ list: 'prompts' }, router.promptTable().exposed.length);
      this.set({ list: 'resources' }, resources.resources.length);
      this.set({ list: 'resource_templates' }, resources.resourceTemplates.length);
    },
  });
  new Gauge({
    name: `${prefix}rejected_entries`,
    help: 'Entries the router does not expose (name collisions, names too long, per-upstream limits), by list',
    labelNames: ['list'],
    registers: [registry],
    collect() {
      this.set({ list: 'tools' }, router.toolTable().rejected.length);
      this.set({ list: 'prompts' }, router.promptTable().rejected.length);
      this.set({ list: 'resources' }, router.resourceListing().rejected.length);
    },
  });
  if (!opts.exposure) return;
  new Gauge({
    name: `${prefix}exposure_entries`,
    help: "Each configured server's entries by its owner's expose/hide: exposure=exposed or hidden",
    labelNames: ['server', 'list', 'exposure'],
    registers: [registry],
    collect() {
      this.reset();
      for (const summary of router.exposureSummary()) {
        if (router.get(summary.server)?.kind === 'slave') continue;
        const server = labels.server.value(summary.server);
        const lists = {
          tools: summary.tools,
          prompts: summary.prompts,
          resources: summary.resources,
          resource_templates: summary.resourceTemplates,
        };
        for (const [list, split] of Object.entries(lists)) {
          this.inc({ server, list, exposure: 'exposed' }, split.exposed.length);
          this.inc({ server, list, exposure: 'hidden' }, split.hidden.length);
        }
      }
    },
  });
}
