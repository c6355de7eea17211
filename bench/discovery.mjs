#!/usr/bin/env node
// The discovery index at scale: build time, one upstream's update, search latency, and what
// discovery mode saves in tools/list bytes. Run with `npm run bench:discovery` (builds first).
// It measures; it asserts nothing. One process, no daemons.
//
// The catalogue is test/fixtures/discovery/catalogue.json's distinct tool definitions cycled
// over BENCH_HOSTS slave hosts (host0000, host0001, ...), BENCH_TOOLS_PER_HOST each, exposed as
// <host>_<server>_<tool> like a slave's tools; the queries are test/fixtures/discovery/queries.json.
//
// Environment:
//   BENCH_HOSTS           hosts (default 1000)
//   BENCH_TOOLS_PER_HOST  tools per host (default 20)
//   BENCH_ROUNDS          times the 30 queries are run per measured series (default 30)
//   BENCH_UPDATES         single-upstream updates measured (default 500)
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = join(root, 'test', 'fixtures', 'discovery');
const { ToolIndex } = await import(join(root, 'dist', 'mcp', 'discovery', 'toolIndex.js'));
const { META_TOOLS, definitionBytes } = await import(join(root, 'dist', 'mcp', 'discovery', 'metaTools.js'));

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const PER_HOST = Number(process.env.BENCH_TOOLS_PER_HOST ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const UPDATES = Number(process.env.BENCH_UPDATES ?? 500);
const TARGET_SEARCH_P50_MS = 20;

const catalogue = JSON.parse(readFileSync(join(fixtures, 'catalogue.json'), 'utf8'));
const queries = JSON.parse(readFileSync(join(fixtures, 'queries.json'), 'utf8')).queries.map((q) => q.query);
/** Every distinct definition once, with its server. */
const distinct = Object.entries(catalogue.servers).flatMap(([server, tools]) =>
  tools.map((tool) => ({ server, tool })),
);

function hostName(i) {
  return `host${String(i).padStart(4, '0')}`;
}

/** The tools of host i: PER_HOST consecutive definitions, cycling; `shift` varies an update. */
function hostEntries(i, shift = 0) {
  const host = hostName(i);
  const entries = [];
  for (let j = 0; j < PER_HOST; j++) {
    const { server, tool } = distinct[(i * PER_HOST + j + shift) % distinct.length];
    entries.push({
      name: `${host}_${server}_${tool.name}`,
      host,
      server,
      originalName: tool.name,
      ...(tool.title ? { title: tool.title } : {}),
      ...(tool.description ? { description: tool.description } : {}),
      inputSchema: tool.inputSchema,
    });
  }
  return entries;
}

/** What a tools/list of the whole catalogue would carry: each definition under its exposed name. */
function fullDefinitions(hostCount) {
  const tools = [];
  for (let i = 0; i < hostCount; i++) {
    for (let j = 0; j < PER_HOST; j++) {
      const { server, tool } = distinct[(i * PER_HOST + j) % distinct.length];
      tools.push({ ...tool, name: `${hostName(i)}_${server}_${tool.name}` });
    }
  }
  return tools;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summarize(samplesMs) {
  const sorted = Float64Array.from(samplesMs).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1],
  };
}

function time(fn) {
  const start = process.hrtime.bigint();
  const value = fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

function searchSeries(index, options) {
  for (const query of queries) index.search({ query, limit: 10, ...options }); // warm-up
  const samples = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const query of queries) samples.push(time(() => index.search({ query, limit: 10, ...options })).ms);
  }
  return summarize(samples);
}

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const ms = (x) => (x < 10 ? x.toFixed(3) : x.toFixed(1));

// ---------------------------------------------------------------------------------------------

const hostData = Array.from({ length: HOSTS }, (_, i) => hostEntries(i));
const heapBefore = process.memoryUsage().heapUsed;

const builds = [];
let index;
for (let attempt = 0; attempt < 3; attempt++) {
  index = undefined;
  globalThis.gc?.();
  const fresh = new ToolIndex();
  const build = () => {
    for (let i = 0; i < HOSTS; i++) fresh.upsertUpstream(hostName(i), hostData[i]);
  };
  builds.push(time(build).ms);
  index = fresh;
}
globalThis.gc?.();
const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;

const updates = [];
for (let k = 0; k < UPDATES; k++) {
  const i = (k * 7919) % HOSTS;
  const entries = hostEntries(i, 1 + (k % 5));
  updates.push(time(() => index.upsertUpstream(hostName(i), entries)).ms);
  index.upsertUpstream(hostName(i), hostData[i]);
}
const update = summarize(updates);
const offline = summarize(
  Array.from({ length: 200 }, (_, k) => time(() => index.setOnline(hostName(k % HOSTS), k % 2 === 1)).ms),
);
const joinLeave = summarize(
  Array.from({ length: 200 }, (_, k) => {
    const i = (k * 104729) % HOSTS;
    const removed = time(() => index.removeUpstream(hostName(i))).ms;
    return removed + time(() => index.upsertUpstream(hostName(i), hostData[i])).ms;
  }),
);

const plain = searchSeries(index, {});
const halfScope = (_name, host) => Number(host.slice(4)) % 2 === 0;
const scoped = searchSeries(index, { filter: halfScope });
const oneHost = searchSeries(index, { host: hostName(42) });
const ungrouped = searchSeries(index, { groupCopies: false });

const full = fullDefinitions(HOSTS);
const fullBytes = definitionBytes(full);
const metaBytes = definitionBytes(META_TOOLS);
const fixtureTools = Object.entries(catalogue.hosts).flatMap(([host, servers]) =>
  servers.flatMap((server) =>
    catalogue.servers[server].map((tool) => ({
      ...tool,
      name: host === 'local' ? `${server}_${tool.name}` : `${host}_${server}_${tool.name}`,
    })),
  ),
);
const fixtureBytes = definitionBytes(fixtureTools);

const lines = [];
lines.push('');
lines.push(
  `Diane discovery index — ${os.cpus().length} CPU(s) (${os.cpus()[0]?.model ?? '?'}), Node ${process.versions.node}, ` +
    `load average ${os.loadavg()[0].toFixed(2)}`,
);
lines.push(
  `${index.size} tools: ${HOSTS} hosts × ${PER_HOST} tools cycled from ${distinct.length} distinct definitions`,
);
lines.push('');
lines.push(
  `build (all upstreams, fresh index): ${builds.map((b) => `${b.toFixed(0)} ms`).join(', ')}; heap ≈ ${heapMiB.toFixed(0)} MiB`,
);
lines.push('');
lines.push(
  `${pad('operation', 52)}${lpad('n', 6)}${lpad('p50 ms', 10)}${lpad('p90 ms', 10)}${lpad('p99 ms', 10)}${lpad('max ms', 10)}`,
);
const row = (label, s) =>
  lines.push(
    `${pad(label, 52)}${lpad(s.count, 6)}${lpad(ms(s.p50), 10)}${lpad(ms(s.p90), 10)}${lpad(ms(s.p99), 10)}${lpad(ms(s.max), 10)}`,
  );
row(`update one upstream (${PER_HOST} tools replaced)`, update);
row('host leaves and comes back (remove + upsert)', joinLeave);
row('setOnline', offline);
row('search, 30 queries, limit 10', plain);
row('search with a filter (agent sees half the hosts)', scoped);
row('search restricted to one host', oneHost);
row('search without folding copies', ungrouped);
lines.push('');
lines.push(
  `search p50 ${ms(plain.p50)} ms (target < ${TARGET_SEARCH_P50_MS} ms): ${plain.p50 < TARGET_SEARCH_P50_MS ? 'met' : 'NOT met'}`,
);
lines.push('');
lines.push(
  'tools/list size (JSON bytes of the result; tokens ≈ bytes / 4, a rough rule for English and JSON)',
);
lines.push(`  meta-tools (discovery mode)          ${lpad(metaBytes.toLocaleString('en'), 14)} bytes`);
lines.push(
  `  fixture catalogue, ${fixtureTools.length} tools        ${lpad(fixtureBytes.toLocaleString('en'), 14)} bytes  (${(fixtureBytes / metaBytes).toFixed(0)}× the meta-tools)`,
);
lines.push(
  `  bench catalogue, ${full.length} tools       ${lpad(fullBytes.toLocaleString('en'), 14)} bytes  (${(fullBytes / metaBytes).toFixed(0)}× the meta-tools)`,
);
process.stdout.write(`${lines.join('\n')}\n`);
