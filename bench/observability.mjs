#!/usr/bin/env node
// What metrics and tracing (no exporter) cost a call, measured alone: a whole-path A/B of
// `npm run bench` cannot resolve 3 % on a 2-core machine whose run-to-run spread is ±10 %, but the
// work the two add to a call is a fixed set of function calls that can be timed by themselves and
// set against the CPU a routed call costs in all. Run with `npm run bench:observability` (builds
// first). It measures; it asserts nothing.
//
//   BENCH_OBS_CALLS       calls per measurement (default 200,000)
//   BENCH_OBS_HOSTS       distinct hosts the calls are spread over (default 50)
//   BENCH_OBS_CALL_CPU_US CPU of a routed call, master + slave, to compare with (default: from
//                         bench/results.json when a `npm run bench` left one, else 600)
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { contextFromMeta, endHop, hop, metaFromContext, startHop } from '../dist/mcp/tracing.js';
import { LabelCaps } from '../dist/metrics/boundedLabel.js';
import { CallMetrics } from '../dist/metrics/callMetrics.js';
import { newRegistry } from '../dist/metrics/registry.js';
import { DEFAULT_METRICS_SETTINGS } from '../dist/metrics/settings.js';

const CALLS = Number(process.env.BENCH_OBS_CALLS ?? 200_000);
const HOSTS = Number(process.env.BENCH_OBS_HOSTS ?? 50);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** µs per iteration of `fn`, the best of five rounds after a warm-up (the least disturbed one). */
async function perCallUs(fn) {
  for (let i = 0; i < 20_000; i++) await fn(i);
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const start = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) await fn(i);
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / CALLS);
  }
  return best;
}

// --- Metrics: what `Router.onCallFinished` does for CallMetrics, on the master and on the slave.
const listeners = [];
const fakeRouter = {
  onCallFinished: (fn) => {
    listeners.push(fn);
    return () => {};
  },
  onRefused: () => () => {},
  callsInFlight: () => new Map(),
  hostOf: (upstream) => upstream,
};
const registry = newRegistry(DEFAULT_METRICS_SETTINGS, 'master');
const callMetrics = new CallMetrics(
  registry,
  fakeRouter,
  new LabelCaps(DEFAULT_METRICS_SETTINGS),
  DEFAULT_METRICS_SETTINGS,
);
const records = Array.from({ length: HOSTS }, (_, h) => ({
  method: 'tools/call',
  agent: 'owner',
  exposedName: `host${h}_filesystem_read_file`,
  host: `host${h}`,
  server: `host${h}`,
  originalName: 'filesystem_read_file',
  startedAt: Date.now(),
  durationMs: 1.3,
  outcome: 'ok',
  bytesIn: 40,
  bytesOut: 900,
  callId: '00000000-0000-4000-8000-000000000000',
}));
const metricsUs = await perCallUs((i) => callMetrics.finished(records[i % HOSTS]));

// --- Tracing without an exporter: the spans and `_meta` propagation of one routed call.
const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const hopsOfRoutedCall = async (withParent) => {
  // Master: the front reads the agent's context, routes, queues for the link, sends over it.
  const master = contextFromMeta(withParent ? { traceparent } : undefined);
  const front = startHop('diane.front', master, { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'x' });
  const route = startHop('diane.route', front.context, { 'mcp.method.name': 'tools/call' });
  const queued = startHop('diane.queue', route.context, { 'diane.host': 'h' });
  endHop(queued.span);
  const sent = await hop('diane.link', route.context, { 'diane.host': 'h' }, async (ctx) =>
    metaFromContext(ctx),
  );
  // Slave: the same front and route, then the upstream hop.
  const slave = contextFromMeta(sent);
  const slaveFront = startHop('diane.front', slave, { 'mcp.method.name': 'tools/call' });
  const slaveRoute = startHop('diane.route', slaveFront.context, { 'mcp.method.name': 'tools/call' });
  await hop('diane.upstream', slaveRoute.context, { 'diane.server': 's' }, async (ctx) =>
    metaFromContext(ctx),
  );
  endHop(slaveRoute.span);
  endHop(slaveFront.span);
  endHop(route.span);
  endHop(front.span);
};
const tracingNoParentUs = await perCallUs(() => hopsOfRoutedCall(false));
const tracingParentUs = await perCallUs(() => hopsOfRoutedCall(true));

// --- A scrape, off the call path: its cost spread over the calls between two scrapes.
for (let i = 0; i < HOSTS * 20; i++) callMetrics.finished(records[i % HOSTS]);
let scrapeMs = Number.POSITIVE_INFINITY;
for (let i = 0; i < 20; i++) {
  const start = process.hrtime.bigint();
  await registry.metrics();
  scrapeMs = Math.min(scrapeMs, Number(process.hrtime.bigint() - start) / 1e6);
}

function callCpuUs() {
  if (process.env.BENCH_OBS_CALL_CPU_US)
    return { us: Number(process.env.BENCH_OBS_CALL_CPU_US), from: 'BENCH_OBS_CALL_CPU_US' };
  const file = join(root, 'bench', 'results.json');
  if (existsSync(file)) {
    const { results } = JSON.parse(readFileSync(file, 'utf8'));
    const routed = (results ?? []).find((r) => r.path === 'routed');
    const c64 = (routed?.cells ?? []).find((c) => c.concurrency === 64);
    const cpu = c64?.cpu?.perCallUs;
    if (cpu?.master && cpu?.slave)
      return { us: cpu.master + cpu.slave, from: 'bench/results.json (routed, c=64)' };
  }
  return { us: 600, from: 'default (README: a routed call costs master + slave 500-600 µs of CPU at c=64)' };
}

const call = callCpuUs();
// Both ends count a finished call: the master's CallMetrics and the slave's.
const perCall = 2 * metricsUs + tracingParentUs;
const pct = (us) => `${((100 * us) / call.us).toFixed(2)} %`;
const line = (label, us) =>
  console.log(`  ${label.padEnd(52)} ${us.toFixed(2).padStart(7)} µs  ${pct(us).padStart(7)}`);
console.log(`metrics and tracing (no exporter), per routed call — ${CALLS} calls per round, ${HOSTS} hosts`);
console.log(`  a routed call costs ${call.us} µs of CPU (master + slave), from ${call.from}`);
line('metrics: one finished call (counter + histogram)', metricsUs);
line('tracing: 7 hops + 2 _meta injections, no parent', tracingNoParentUs);
line("tracing: the same under an agent's traceparent", tracingParentUs);
line('per routed call (metrics on both ends + tracing)', perCall);
const callsPerScrape = 15 * 1000; // a 15 s scrape interval at 1,000 calls/s
line(
  `a scrape (${scrapeMs.toFixed(2)} ms) spread over 15 s at 1,000 calls/s`,
  (scrapeMs * 1000) / callsPerScrape,
);
console.log(
  `  total share of a routed call's CPU: ${pct(perCall + (scrapeMs * 1000) / callsPerScrape)} (the issue's bound: 3 %)`,
);
