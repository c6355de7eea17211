import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { VERSION } from '../version.js';
import type { MetricsSettings } from './settings.js';

/**
 * A registry of this process's own (never prom-client's global one), with prom-client's process
 * metrics under the same prefix (CPU, RSS, heap, open file descriptors, event-loop delay
 * percentiles, GC) and `diane_build_info`.
 */
export function newRegistry(settings: MetricsSettings, role: 'master' | 'slave'): Registry {
  const registry = new Registry();
  collectDefaultMetrics({
    register: registry,
    prefix: settings.prefix,
    eventLoopMonitoringPrecision: settings.eventLoopPrecisionMs,
  });
  new Gauge({
    name: `${settings.prefix}build_info`,
    help: 'Always 1: the Diane version and whether this process is a master or a slave',
    labelNames: ['version', 'role'],
    registers: [registry],
  }).set({ version: VERSION, role }, 1);
  return registry;
}
