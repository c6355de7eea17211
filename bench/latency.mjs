#!/usr/bin/env node
// Latency and throughput of `tools/call` through Diane, next to the same call without Diane.
// Run with `npm run bench` (builds first). Prints a table and writes bench/results.json.
// It measures; it asserts nothing.
//
// Paths (all on loopback, ports chosen at run time, every DIANE_HOME a fresh temp directory):
//   direct   SDK Client + StdioClientTransport -> test/fixtures/echo-server.mjs
//   bare     thin HTTP client -> bench/bare-http-server.mjs (bare SDK Streamable HTTP server)
//   local    thin HTTP client -> diane serve -> stdio upstream (echo-server.mjs)
//   routed   thin HTTP client -> diane serve -> diane slave start -> stdio upstream
//   flooded  the routed path again while a second paired slave floods the master (5,000 tools
//            re-announced every 20 ms, test/fixtures/flood-server.mjs): what a rogue host costs
//            the calls to another host
// The thin client sends the master's bearer token (its DIANE_HOME/agent-token), as agents must.
//
// Environment:
//   BENCH_SECONDS     seconds measured per (path, concurrency) cell (default 4)
//   BENCH_WARMUP      warm-up calls before each cell (default 200)
//   BENCH_BIG_CALLS   sequential 1 MiB calls per path (default 30; 0 skips them)
//   BENCH_CONC        concurrency levels, comma separated (default 1,16,64)
//   BENCH_PATHS       which paths, comma separated (default direct,bare,floorlocal,floorrouted,
//                     local,routed,flooded,crossmaster)
//   BENCH_CPU_PROF    a directory: run master, slave and bare server under `node --cpu-prof` there
//   BENCH_VERBOSE=1   echo the daemons' stderr
//   BENCH_AB_ON       with --observability: what the "on" stack turns on (default metrics,tracing)
//   BENCH_AB_PATHS    with --observability: the paths measured (default local,routed)
//   BENCH_AB_NOTRACE=1  with --observability: the agent sends no `traceparent`
//   BENCH_METRICS=1   master and slave also serve Prometheus metrics (--metrics-listen)
//
// `node bench/latency.mjs --observability` (`npm run bench:observability-ab`) measures instead what
// metrics and tracing cost a call: two stacks (master + slave each) run side by side, one with
// both off (`OTEL_SDK_DISABLED=true`, no `--metrics-listen`) and one with both on (metrics served
// and scraped every BENCH_AB_SCRAPE_MS, default 5,000, while it is measured; tracing without an
// exporter, every call under an agent's `traceparent`). The local and routed paths are measured
// at c=64 in BENCH_AB_ROUNDS rounds (default 36) of BENCH_AB_SECONDS (default 2), spread over BENCH_AB_BLOCKS
// blocks (default 3) that each start both stacks afresh and begin with an uncounted round, the order of the two stacks
// alternating each round, so that drift of the machine falls on both alike; the verdict is the
// median of the per-round ratios. Writes bench/results-observability.json.
//
// Profiles: `BENCH_CPU_PROF=/tmp/prof BENCH_PATHS=local BENCH_CONC=64 BENCH_BIG_CALLS=0 node
// bench/latency.mjs`, then `node bench/profile-summary.mjs /tmp/prof/*.cpuprofile`.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import pg from 'pg';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dianeBin = join(root, 'bin', 'diane.js');
const echoServer = join(root, 'test', 'fixtures', 'echo-server.mjs');
const bareServer = join(root, 'bench', 'bare-http-server.mjs');
const floorProxy = join(root, 'bench', 'floor-proxy.mjs');
const resultsFile = join(root, 'bench', 'results.json');

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 200);
const BIG_CALLS = Number(process.env.BENCH_BIG_CALLS ?? 30);
const CONCURRENCY = (process.env.BENCH_CONC ?? '1,16,64').split(',').map(Number);
const PATHS = (
  process.env.BENCH_PATHS ?? 'direct,bare,floorlocal,floorrouted,local,routed,flooded,crossmaster'
)
  .split(',')
  .map((s) => s.trim());
/** The cross-master path's shared store and bus (skipped, with a message, when they do not answer). */
const CROSS_POSTGRES = process.env.BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const CROSS_NATS = process.env.BENCH_NATS ?? 'nats://127.0.0.1:4222';
const CPU_PROF = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const BIG_BYTES = 1024 * 1024;
const PROTOCOL = '2025-06-18';
const ECHO_TEXT = 'bench 0123456789abcdef';

const TARGETS = {
  routedP50Ms: 1,
  routedCallsPerSec: 2500,
  localHopAddsUs: 150,
  bigRoutedMs: 40,
};

const LABELS = {
  direct: 'direct stdio',
  bare: 'bare SDK HTTP',
  local: 'master -> local upstream',
  routed: 'master -> slave -> upstream',
  flooded: 'routed, another slave flooding',
  routedB: 'routed, on a store+bus master',
  crossmaster: 'master A -> NATS -> B -> slave',
  floorlocal: 'floor: bytes-only, 1 hop',
  floorrouted: 'floor: bytes-only, 2 hops',
};

// ---------------------------------------------------------------------------------------------
// Processes and homes: everything started here is tracked and stopped on the way out.

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();
/** pid -> name of the processes started by startChild. */
const childNames = new Map();
const homes = [];

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** process.env without DIANE_* variables, plus `extra`. */
/** BENCH_METRICS=1: master and slave serve metrics (on a free loopback port), for the cost. */
const METRICS_ENV = process.env.BENCH_METRICS === '1' ? { DIANE_METRICS_LISTEN: '127.0.0.1:0' } : {};

function envWith(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('DIANE_')) env[k] = v;
  return { ...env, ...extra };
}

function makeHome(
  name,
  servers = { mcpServers: { echo: { command: process.execPath, args: [echoServer] } } },
) {
  // Short: the admin socket lives in it and Unix socket paths are limited to ~100 bytes.
  const base = os.tmpdir().length > 40 ? '/tmp' : os.tmpdir();
  const home = mkdtempSync(join(base, `diane-bench-${name}-`));
  homes.push(home);
  writeFileSync(join(home, 'mcp-servers.json'), `${JSON.stringify(servers, null, 2)}\n`, { mode: 0o600 });
  return home;
}

/** A long-running child; stderr is kept (last 16 KiB) for error messages. */
function startChild(name, args, env) {
  const proc = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  childNames.set(proc.pid, name);
  let stderr = '';
  let stdout = '';
  proc.stderr.setEncoding('utf8').on('data', (c) => {
    stderr = (stderr + c).slice(-16384);
    if (VERBOSE) process.stderr.write(c.replace(/^(?=.)/gm, `[${name} ${proc.pid}] `));
  });
  proc.stdout.setEncoding('utf8').on('data', (c) => {
    stdout = (stdout + c).slice(-16384);
  });
  const exited = new Promise((r) =>
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      r({ code, signal });
    }),
  );
  return {
    name,
    proc,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    running: () => proc.exitCode === null && proc.signalCode === null,
  };
}

/** SIGTERM, then SIGKILL after `graceMs`. */
async function stopChild(child, graceMs = 10_000) {
  if (!child.running()) return child.exited;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  const status = await child.exited;
  clearTimeout(timer);
  return status;
}

/** Runs one `diane` command to completion. */
function cli(home, args, timeoutMs = 20_000, env = {}) {
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      [dianeBin, ...args],
      {
        cwd: root,
        env: envWith({ DIANE_HOME: home, DIANE_LOG_LEVEL: 'warn', ...env }),
        timeout: timeoutMs,
        // A flooding slave's tool list alone is over execFile's 1 MiB default.
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        resolvePromise({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

async function waitFor(what, check, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolvePromise, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePromise(port));
    });
  });
}

function nodeArgs(script) {
  if (!CPU_PROF) return [script];
  mkdirSync(CPU_PROF, { recursive: true });
  // A sampling interval that is no multiple of a round number keeps the samples from keeping
  // step with a c=1 request loop (about one call per millisecond).
  return ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, '--cpu-prof-interval=251', script];
}

let cleaning;
let interrupted = false;
function cleanup() {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChildProc(c)));
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  })();
  return cleaning;
}

async function stopChildProc(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

process.on('exit', () => {
  for (const proc of children) proc.kill('SIGKILL');
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    log(`${signal}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Thin Streamable HTTP client (2025-era sessions), on node:http with a keep-alive agent.

function parseBody(contentType, text) {
  if (contentType.includes('text/event-stream')) {
    const messages = [];
    let data = [];
    for (const line of text.split('\n')) {
      const l = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (l === '') {
        if (data.length) messages.push(JSON.parse(data.join('\n')));
        data = [];
      } else if (l.startsWith('data:')) {
        data.push(l.slice(l[5] === ' ' ? 6 : 5));
      }
    }
    if (data.length) messages.push(JSON.parse(data.join('\n')));
    return messages;
  }
  if (!text) return [];
  const value = JSON.parse(text);
  return Array.isArray(value) ? value : [value];
}

class HttpSession {
  /** `token`: the bearer token Diane requires of agents (undefined for the bare server). */
  constructor(url, maxSockets, token) {
    this.url = new URL(url);
    this.auth = token ? { authorization: `Bearer ${token}` } : {};
    this.agent = new http.Agent({ keepAlive: true, maxSockets, noDelay: true });
    this.nextId = 1;
    this.sessionId = undefined;
  }

  post(payload) {
    const body = Buffer.from(JSON.stringify(payload));
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'content-length': body.length,
      ...this.auth,
    };
    if (this.sessionId) {
      headers['mcp-session-id'] = this.sessionId;
      headers['mcp-protocol-version'] = PROTOCOL;
    }
    return new Promise((resolvePromise, reject) => {
      const req = http.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path: this.url.pathname,
          method: 'POST',
          headers,
          agent: this.agent,
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolvePromise({
              status: res.statusCode,
              headers: res.headers,
              text: chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async initialize() {
    const res = await this.post({
      jsonrpc: '2.0',
      id: this.nextId++,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
    });
    if (res.status !== 200) throw new Error(`initialize: HTTP ${res.status}: ${res.text}`);
    this.sessionId = res.headers['mcp-session-id'];
    if (!this.sessionId) throw new Error('initialize: no mcp-session-id header');
    const note = await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (note.status !== 202 && note.status !== 200) throw new Error(`initialized: HTTP ${note.status}`);
  }

  /** tools/call (with `_meta` when given); resolves with the first text content of the result. */
  async callTool(name, args, meta) {
    const id = this.nextId++;
    const res = await this.post({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: meta ? { name, arguments: args, _meta: meta } : { name, arguments: args },
    });
    if (res.status !== 200)
      throw new Error(`tools/call ${name}: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
    const reply = parseBody(String(res.headers['content-type'] ?? ''), res.text).find((m) => m.id === id);
    if (!reply) throw new Error(`tools/call ${name}: no response with id ${id}`);
    if (reply.error) throw new Error(`tools/call ${name}: ${reply.error.message}`);
    if (reply.result.isError)
      throw new Error(`tools/call ${name}: tool error ${JSON.stringify(reply.result)}`);
    return reply.result.content[0].text;
  }

  async close() {
    if (this.sessionId) {
      await new Promise((r) => {
        const req = http.request(
          {
            host: this.url.hostname,
            port: this.url.port,
            path: this.url.pathname,
            method: 'DELETE',
            headers: { 'mcp-session-id': this.sessionId, 'mcp-protocol-version': PROTOCOL, ...this.auth },
            agent: this.agent,
          },
          (res) => {
            res.resume();
            res.on('end', r);
          },
        );
        req.on('error', r);
        req.end();
      });
    }
    this.agent.destroy();
  }
}

/** The bench's view of one path: echo and big calls (echo calls carry `meta` as `_meta`). */
function httpTarget(url, prefix, token, meta = undefined) {
  const session = new HttpSession(url, Math.max(...CONCURRENCY, 64) + 4, token);
  return {
    async open() {
      await session.initialize();
    },
    echo: (text) => session.callTool(`${prefix}echo`, { text }, meta),
    big: (bytes) => session.callTool(`${prefix}big`, { bytes }),
    close: () => session.close(),
  };
}

function stdioTarget() {
  const client = new Client({ name: 'bench', version: '1' }, { capabilities: {} });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [echoServer],
    cwd: root,
    env: envWith({}),
    stderr: 'ignore',
  });
  const text = (result) => {
    if (result.isError) throw new Error(`tool error: ${JSON.stringify(result)}`);
    return result.content[0].text;
  };
  return {
    async open() {
      await client.connect(transport);
    },
    echo: async (value) => text(await client.callTool({ name: 'echo', arguments: { text: value } })),
    big: async (bytes) => text(await client.callTool({ name: 'big', arguments: { bytes } })),
    close: () => client.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; silently absent elsewhere): CPU time of this process and of every
// process it started (daemons, their upstreams), and of the whole machine, over a measured
// window. It says where the time goes, and whether something else was using the CPUs.

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** [ppid, cpu ms] of a process from /proc/<pid>/stat, or undefined when it is gone. */
function procStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuMs: (Number(f[11]) + Number(f[12])) * TICK_MS };
  } catch {
    return undefined;
  }
}

function procLabel(pid, parentLabel) {
  const name = childNames.get(pid);
  if (name) return name;
  let script = String(pid);
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    script = (argv.find((a) => /\.m?js$/.test(a)) ?? argv[0]).split('/').pop();
  } catch {}
  return `${parentLabel}/${script}`;
}

/** CPU ms by label for this process and all its descendants, plus the machine's busy ms. */
function cpuSnapshot() {
  const snap = { labels: new Map(), machineBusyMs: Number.NaN };
  const self = process.cpuUsage();
  snap.labels.set('bench', (self.user + self.system) / 1000);
  let pids;
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    snap.machineBusyMs = (cpu.reduce((a, b) => a + b, 0) - cpu[3] - cpu[4]) * TICK_MS;
  } catch {
    return snap;
  }
  const kids = new Map();
  for (const d of pids) {
    const st = procStat(d);
    if (!st) continue;
    if (!kids.has(st.ppid)) kids.set(st.ppid, []);
    kids.get(st.ppid).push({ pid: Number(d), cpuMs: st.cpuMs });
  }
  const walk = (pid, label) => {
    for (const k of kids.get(pid) ?? []) {
      const name = procLabel(k.pid, label);
      snap.labels.set(name, (snap.labels.get(name) ?? 0) + k.cpuMs);
      walk(k.pid, name);
    }
  };
  walk(process.pid, 'bench');
  return snap;
}

/** CPU µs per call of each of our processes, and the share of the machine used by others. */
function cpuDelta(before, after, calls, seconds) {
  const perCallUs = {};
  let ours = 0;
  for (const [label, ms] of after.labels) {
    const d = ms - (before.labels.get(label) ?? 0);
    ours += d;
    if (d > 0) perCallUs[label] = Math.round((d * 1000) / calls);
  }
  const capacityMs = os.cpus().length * seconds * 1000;
  const busy = after.machineBusyMs - before.machineBusyMs;
  return {
    perCallUs,
    machineBusyPct: Math.round((100 * busy) / capacityMs),
    othersPct: Math.max(0, Math.round((100 * (busy - ours)) / capacityMs)),
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements.

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summarize(samplesNs) {
  const sorted = Float64Array.from(samplesNs).sort();
  const ms = (ns) => ns / 1e6;
  return {
    count: sorted.length,
    p50Ms: ms(percentile(sorted, 50)),
    p90Ms: ms(percentile(sorted, 90)),
    p99Ms: ms(percentile(sorted, 99)),
    maxMs: ms(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

async function runEcho(target, concurrency, count) {
  let left = count;
  const worker = async () => {
    while (left-- > 0) {
      const got = await target.echo(ECHO_TEXT);
      if (got !== ECHO_TEXT) throw new Error(`echo returned ${JSON.stringify(got).slice(0, 100)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** `concurrency` workers calling echo back to back for SECONDS; latency of each call. */
async function measureEcho(target, concurrency, seconds = SECONDS) {
  await runEcho(target, concurrency, WARMUP);
  const samples = [];
  const cpuBefore = cpuSnapshot();
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  const worker = async () => {
    for (;;) {
      const t0 = process.hrtime.bigint();
      if (t0 >= deadline) return;
      const got = await target.echo(ECHO_TEXT);
      samples.push(Number(process.hrtime.bigint() - t0));
      if (got !== ECHO_TEXT) throw new Error(`echo returned ${JSON.stringify(got).slice(0, 100)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = cpuDelta(cpuBefore, cpuSnapshot(), samples.length, elapsedS);
  return {
    concurrency,
    seconds: elapsedS,
    callsPerSec: samples.length / elapsedS,
    ...summarize(samples),
    cpu,
  };
}

/** Sequential 1 MiB results; the returned text must be exactly BIG_BYTES long. */
async function measureBig(target) {
  for (let i = 0; i < 3; i++) await target.big(BIG_BYTES);
  const samples = [];
  const cpuBefore = cpuSnapshot();
  const start = process.hrtime.bigint();
  for (let i = 0; i < BIG_CALLS; i++) {
    const t0 = process.hrtime.bigint();
    const text = await target.big(BIG_BYTES);
    samples.push(Number(process.hrtime.bigint() - t0));
    if (text.length !== BIG_BYTES)
      throw new Error(`big returned ${text.length} characters, not ${BIG_BYTES}`);
  }
  const cpu = cpuDelta(cpuBefore, cpuSnapshot(), BIG_CALLS, Number(process.hrtime.bigint() - start) / 1e9);
  return { bytes: BIG_BYTES, ...summarize(samples), cpu };
}

async function benchPath(key, target) {
  const result = { path: key, label: LABELS[key], cells: [], big: undefined };
  await target.open();
  for (const c of CONCURRENCY) {
    const cell = await measureEcho(target, c);
    result.cells.push(cell);
    log(
      `${LABELS[key]} c=${c}: ${cell.callsPerSec.toFixed(0)} calls/s, p50 ${cell.p50Ms.toFixed(3)} ms, p99 ${cell.p99Ms.toFixed(3)} ms`,
    );
  }
  if (BIG_CALLS > 0) result.big = await measureBig(target);
  if (result.big)
    log(`${LABELS[key]} 1 MiB: p50 ${result.big.p50Ms.toFixed(2)} ms, p99 ${result.big.p99Ms.toFixed(2)} ms`);
  await target.close();
  return result;
}

// ---------------------------------------------------------------------------------------------
// Diane setup.

async function startMaster(
  extraArgs = [],
  home = makeHome('m'),
  { env = METRICS_ENV, name = 'master' } = {},
) {
  const mcpPort = await freePort();
  const clusterPort = await freePort();
  const child = startChild(
    name,
    [
      ...nodeArgs(dianeBin),
      'serve',
      '--mcp-listen',
      `127.0.0.1:${mcpPort}`,
      '--listen',
      `127.0.0.1:${clusterPort}`,
      ...extraArgs,
    ],
    envWith({ DIANE_HOME: home, DIANE_LOG_LEVEL: 'warn', ...env }),
  );
  const master = { home, mcpPort, clusterPort, child, url: `http://127.0.0.1:${mcpPort}/mcp` };
  await waitFor('master /healthz', async () => {
    if (!child.running()) throw new Error(`diane serve exited: ${child.stderr()}`);
    const res = await fetch(`http://127.0.0.1:${mcpPort}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status === 200;
  }).catch((err) => {
    throw new Error(`${err.message}\n--- master stderr ---\n${child.stderr()}`);
  });
  // Written before the endpoint listens, so it is there once /healthz answers.
  master.token = readFileSync(join(home, 'agent-token'), 'utf8').trim();
  await waitForTool(master, 'echo_echo');
  return master;
}

async function toolNames(master) {
  const res = await cli(master.home, ['tools', 'list', '--json']);
  if (res.code !== 0) return [];
  return JSON.parse(res.stdout).tools.map((t) => t.name);
}

function waitForTool(master, name) {
  return waitFor(
    `tool ${name} on the master`,
    async () => (await toolNames(master)).includes(name),
    60_000,
    200,
  );
}

async function startSlave(
  master,
  hostId = 'bench',
  servers = undefined,
  readyTool = 'bench_echo_echo',
  { env = METRICS_ENV, name = 'slave' } = {},
) {
  const home = makeHome('s', servers);
  const info = await cli(master.home, ['info', '--json']);
  if (info.code !== 0) throw new Error(`diane info failed: ${info.stderr}`);
  const fingerprint = JSON.parse(info.stdout).ca_fingerprint;
  const pair = startChild(
    'pair',
    [
      dianeBin,
      'slave',
      'pair',
      `--master=https://127.0.0.1:${master.clusterPort}`,
      `--host-id=${hostId}`,
      `--ca-fingerprint=${fingerprint}`,
    ],
    envWith({ DIANE_HOME: home, DIANE_LOG_LEVEL: 'warn', ...env }),
  );
  const request = await waitFor('the pairing request on the master', async () => {
    if (!pair.running()) throw new Error(`slave pair exited early: ${pair.stderr()}`);
    const res = await cli(master.home, ['slave', 'pending', '--json']);
    if (res.code !== 0) return undefined;
    return JSON.parse(res.stdout).pending.find((p) => p.host_id === hostId);
  });
  const approved = await cli(master.home, ['slave', 'approve', hostId, request.pairing_code]);
  if (approved.code !== 0) throw new Error(`slave approve failed: ${approved.stderr}`);
  const paired = await pair.exited;
  if (paired.code !== 0) throw new Error(`slave pair exited ${paired.code}: ${pair.stderr()}`);
  const child = startChild(
    name,
    [...nodeArgs(dianeBin), 'slave', 'start'],
    envWith({ DIANE_HOME: home, DIANE_LOG_LEVEL: 'warn', ...env }),
  );
  await waitForTool(master, readyTool).catch((err) => {
    throw new Error(`${err.message}\n--- slave stderr ---\n${child.stderr()}`);
  });
  return { home, child };
}

function reachable(url, defaultPort) {
  const { hostname, port } = new URL(url);
  return new Promise((resolvePromise) => {
    const socket = net.connect({ host: hostname, port: Number(port || defaultPort) });
    const done = (ok) => {
      socket.destroy();
      resolvePromise(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

/**
 * Two masters sharing a PostgreSQL schema of their own and a NATS subject prefix of their own,
 * one CA (B's, imported into A's home); the slave pairs with and links to B; the agent talks to A.
 */
async function startCrossMaster() {
  if (!(await reachable(CROSS_POSTGRES, 5432)) || !(await reachable(CROSS_NATS, 4222))) {
    log(`cross-master path skipped: PostgreSQL (${CROSS_POSTGRES}) or NATS (${CROSS_NATS}) does not answer`);
    return undefined;
  }
  const tag = `bench${Date.now().toString(36)}`;
  const store = new URL(CROSS_POSTGRES);
  store.searchParams.set('schema', `diane_${tag}`);
  const shared = (id) => [
    '--store',
    store.toString(),
    '--bus',
    CROSS_NATS,
    '--bus-prefix',
    tag,
    '--master-id',
    id,
  ];
  const b = await startMaster(shared('bench-b'));
  const bundle = join(b.home, 'ca.bundle');
  const passphrase = { DIANE_CA_PASSPHRASE: 'bench passphrase, not a secret' };
  const exported = await cli(b.home, ['ca', 'export', '--out', bundle], 60_000, passphrase);
  if (exported.code !== 0) throw new Error(`ca export failed: ${exported.stderr}`);
  const homeA = makeHome('a');
  const imported = await cli(homeA, ['ca', 'import', bundle], 60_000, passphrase);
  if (imported.code !== 0) throw new Error(`ca import failed: ${imported.stderr}`);
  const a = await startMaster(shared('bench-a'), homeA);
  const slave = await startSlave(b, 'xhost', undefined, 'xhost_echo_echo');
  await waitForTool(a, 'xhost_echo_echo');
  return { a, b, slave, schema: `diane_${tag}` };
}

async function dropSchema(schema) {
  const client = new pg.Client(CROSS_POSTGRES);
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } catch (err) {
    log(`could not drop the bench schema ${schema}: ${err.message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** bench/floor-proxy.mjs: the same hops as local or routed, moving bytes and nothing else. */
async function startFloor(mode) {
  const child = startChild(`floor-${mode}`, nodeArgs(floorProxy).concat(mode), envWith({}));
  const port = await waitFor(`the ${mode} floor proxy`, async () => {
    if (!child.running()) throw new Error(`floor proxy exited: ${child.stderr()}`);
    return Number(/listening (\d+)/.exec(child.stdout())?.[1]) || undefined;
  });
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

async function startBare() {
  const child = startChild('bare', nodeArgs(bareServer), envWith({}));
  const port = await waitFor('the bare SDK server', async () => {
    if (!child.running()) throw new Error(`bare server exited: ${child.stderr()}`);
    return Number(/listening (\d+)/.exec(child.stdout())?.[1]) || undefined;
  });
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

// ---------------------------------------------------------------------------------------------
// Report.

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const verdict = (ok) => (ok ? 'PASS' : 'MISS');

function report(results, meta) {
  const by = Object.fromEntries(results.map((r) => [r.path, r]));
  const cell = (key, c) => by[key]?.cells.find((x) => x.concurrency === c);
  const lines = [];
  lines.push('');
  lines.push(
    `Diane tools/call latency — ${meta.cpus} CPU(s) (${meta.cpuModel}), Node ${meta.node}, ${SECONDS} s per cell, ${WARMUP} warm-up calls`,
  );
  lines.push(
    `load average (1 min) before the run (includes the build): ${meta.loadAvgAtStart[0].toFixed(2)}`,
  );
  lines.push('');
  lines.push(
    `${pad('path', 30)}${lpad('conc', 5)}${lpad('calls/s', 10)}${lpad('p50 ms', 9)}${lpad('p90 ms', 9)}${lpad('p99 ms', 9)}${lpad('max ms', 9)}`,
  );
  for (const r of results) {
    for (const x of r.cells) {
      lines.push(
        `${pad(r.label, 30)}${lpad(x.concurrency, 5)}${lpad(x.callsPerSec.toFixed(0), 10)}${lpad(x.p50Ms.toFixed(3), 9)}${lpad(x.p90Ms.toFixed(3), 9)}${lpad(x.p99Ms.toFixed(3), 9)}${lpad(x.maxMs.toFixed(2), 9)}`,
      );
    }
  }
  lines.push('');
  lines.push('CPU time per call in µs (measured window; "others" = CPU share used by processes not ours)');
  const cpuLine = (label, conc, cpu) => {
    const parts = Object.entries(cpu.perCallUs)
      .filter(([, us]) => us > 0)
      .map(([name, us]) => `${name} ${us}`);
    return `${pad(label, 30)}${lpad(conc, 5)}  ${parts.join(', ')}; others ${cpu.othersPct}%`;
  };
  for (const r of results) {
    for (const x of r.cells) lines.push(cpuLine(r.label, x.concurrency, x.cpu));
    if (r.big) lines.push(cpuLine(r.label, '1 MiB', r.big.cpu));
  }
  const noisy = results.flatMap((r) =>
    [...r.cells, ...(r.big ? [{ ...r.big, concurrency: '1 MiB' }] : [])]
      .filter((x) => x.cpu.othersPct > 10)
      .map((x) => `${r.label} c=${x.concurrency} (${x.cpu.othersPct}%)`),
  );
  if (noisy.length) {
    lines.push(`WARNING: other processes used more than 10% of the CPUs during: ${noisy.join(', ')}`);
    lines.push('         those figures are distorted; rerun on a quiet machine.');
  }
  lines.push('');
  const bigPart = results
    .filter((r) => r.big)
    .map((r) => `${r.label} ${r.big.p50Ms.toFixed(2)} ms (p99 ${r.big.p99Ms.toFixed(2)})`);
  lines.push(`1 MiB result, ${BIG_CALLS} sequential calls, p50: ${bigPart.join(', ')}`);

  const targets = [];
  const local1 = cell('local', 1);
  const bare1 = cell('bare', 1);
  let hopUs;
  if (local1 && bare1) {
    hopUs = (local1.p50Ms - bare1.p50Ms) * 1000;
    lines.push(
      `master-local hop adds ${hopUs.toFixed(0)} µs p50 over bare SDK HTTP (c=1: ${local1.p50Ms.toFixed(3)} vs ${bare1.p50Ms.toFixed(3)} ms)`,
    );
  }
  // The performance issue's targets, as ratios to the bare SDK server (B) of the same run.
  const bare64 = cell('bare', 64);
  const ratio = (label, value, limit, higherIsBetter) => {
    if (value === undefined || !Number.isFinite(value)) return;
    const pass = higherIsBetter ? value >= limit : value <= limit;
    targets.push({
      target: `${label} ${higherIsBetter ? '>=' : '<='} ${limit} x B`,
      value: `${value.toFixed(2)} x B`,
      pass,
      miss: 'see README, Performance',
    });
  };
  if (bare1) {
    ratio('local p50 (c=1)', cell('local', 1)?.p50Ms / bare1.p50Ms, 1.1, false);
    ratio('routed p50 (c=1)', cell('routed', 1)?.p50Ms / bare1.p50Ms, 1.5, false);
  }
  if (bare64) {
    ratio('local calls/s (c=64)', cell('local', 64)?.callsPerSec / bare64.callsPerSec, 1.0, true);
    ratio('routed calls/s (c=64)', cell('routed', 64)?.callsPerSec / bare64.callsPerSec, 0.9, true);
  }
  if (by.bare?.big && by.routed?.big)
    ratio('1 MiB routed p50', by.routed.big.p50Ms / by.bare.big.p50Ms, 2, false);
  const routedMasterCpu = cell('routed', 64)?.cpu.perCallUs.master;
  if (routedMasterCpu !== undefined) {
    targets.push({
      target: 'master CPU per routed call (c=64) <= 200 µs',
      value: `${routedMasterCpu} µs`,
      pass: routedMasterCpu <= 200,
      miss: `${(routedMasterCpu / 200).toFixed(2)}x the target`,
    });
  }
  const crossB1 = cell('routedB', 1);
  const cross1 = cell('crossmaster', 1);
  if (crossB1 && cross1) {
    const busUs = (cross1.p50Ms - crossB1.p50Ms) * 1000;
    lines.push(
      `the bus hop adds ${busUs.toFixed(0)} µs p50 (c=1: A -> NATS -> B ${cross1.p50Ms.toFixed(3)} ms vs on B ${crossB1.p50Ms.toFixed(3)} ms)`,
    );
    targets.push({
      target: 'bus hop adds <= 300 µs p50 (c=1)',
      value: `${busUs.toFixed(0)} µs`,
      pass: busUs <= 300,
      miss: `${(busUs / 300).toFixed(2)}x the target`,
    });
  }
  const routed1 = cell('routed', 1);
  const routed64 = cell('routed', 64);
  if (routed1) {
    targets.push({
      target: `routed p50 <= ${TARGETS.routedP50Ms} ms (c=1)`,
      value: `${routed1.p50Ms.toFixed(3)} ms`,
      pass: routed1.p50Ms <= TARGETS.routedP50Ms,
      miss: `${(routed1.p50Ms / TARGETS.routedP50Ms).toFixed(2)}x the target`,
    });
  }
  if (routed64) {
    targets.push({
      target: `routed >= ${TARGETS.routedCallsPerSec} calls/s (c=64)`,
      value: `${routed64.callsPerSec.toFixed(0)} calls/s`,
      pass: routed64.callsPerSec >= TARGETS.routedCallsPerSec,
      miss: `${((100 * (TARGETS.routedCallsPerSec - routed64.callsPerSec)) / TARGETS.routedCallsPerSec).toFixed(0)}% short`,
    });
  }
  if (hopUs !== undefined) {
    targets.push({
      target: `master-local hop adds <= ${TARGETS.localHopAddsUs} µs p50`,
      value: `${hopUs.toFixed(0)} µs`,
      pass: hopUs <= TARGETS.localHopAddsUs,
      miss: `${(hopUs / TARGETS.localHopAddsUs).toFixed(1)}x the target`,
    });
  }
  if (by.routed?.big) {
    targets.push({
      target: `1 MiB result routed <= ${TARGETS.bigRoutedMs} ms (p50)`,
      value: `${by.routed.big.p50Ms.toFixed(2)} ms`,
      pass: by.routed.big.p50Ms <= TARGETS.bigRoutedMs,
      miss: `${(by.routed.big.p50Ms / TARGETS.bigRoutedMs).toFixed(2)}x the target`,
    });
  }
  // What the hops cost by themselves (bench/floor-proxy.mjs moves bytes and nothing else), and
  // what Diane adds on top of the same hops: the part of a miss that Diane's own code can win back.
  for (const [diane, floor] of [
    ['local', 'floorlocal'],
    ['routed', 'floorrouted'],
  ]) {
    const d1 = cell(diane, 1);
    const f1 = cell(floor, 1);
    if (!d1 || !f1) continue;
    const parts = [
      `c=1 p50 +${((d1.p50Ms - f1.p50Ms) * 1000).toFixed(0)} µs (floor ${(f1.p50Ms / (bare1?.p50Ms ?? Number.NaN)).toFixed(2)} x B)`,
    ];
    const d64 = cell(diane, 64);
    const f64 = cell(floor, 64);
    if (d64 && f64)
      parts.push(`c=64 ${(d64.callsPerSec / f64.callsPerSec).toFixed(2)} x the floor's calls/s`);
    if (by[diane]?.big && by[floor]?.big)
      parts.push(
        `1 MiB +${(by[diane].big.p50Ms - by[floor].big.p50Ms).toFixed(2)} ms (floor ${(by[floor].big.p50Ms / (by.bare?.big?.p50Ms ?? Number.NaN)).toFixed(2)} x B)`,
      );
    lines.push(`Diane over the bytes-only floor, ${LABELS[diane]}: ${parts.join(', ')}`);
  }
  lines.push('');
  // p50 is judged at c=1: at c=64 the p50 is bound to be about 64 / (calls/s) (Little's law),
  // i.e. 25 ms at the throughput target, so "p50 <= 1 ms" can only mean the unloaded latency.
  lines.push('targets (routed p50 at c=1; throughput at c=64):');
  for (const t of targets) {
    const by = t.pass ? '' : `  (${t.miss})`;
    lines.push(`  ${verdict(t.pass)}  ${pad(t.target, 42)} measured ${t.value}${by}`);
  }
  lines.push('');
  process.stdout.write(`${lines.join('\n')}\n`);
  return { targets, localHopAddsUs: hopUs };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const meta = {
    date: new Date().toISOString(),
    node: process.versions.node,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    platform: `${os.platform()} ${os.release()}`,
    seconds: SECONDS,
    warmup: WARMUP,
    bigCalls: BIG_CALLS,
    concurrency: CONCURRENCY,
    echoText: ECHO_TEXT,
    loadAvgAtStart: os.loadavg(),
  };
  const results = [];
  const started = Date.now();

  if (PATHS.includes('direct')) {
    log('direct stdio: SDK Client -> echo-server.mjs');
    results.push(await benchPath('direct', stdioTarget()));
  }
  if (PATHS.includes('bare')) {
    const bare = await startBare();
    log(`bare SDK HTTP: ${bare.url} (pid ${bare.child.proc.pid})`);
    results.push(await benchPath('bare', httpTarget(bare.url, '')));
    await stopChild(bare.child);
  }
  for (const mode of ['local', 'routed']) {
    if (!PATHS.includes(`floor${mode}`)) continue;
    const floor = await startFloor(mode);
    log(`floor ${mode}: ${floor.url} (pid ${floor.child.proc.pid})`);
    results.push(await benchPath(`floor${mode}`, httpTarget(floor.url, '')));
    await stopChild(floor.child);
  }
  if (PATHS.includes('local') || PATHS.includes('routed') || PATHS.includes('flooded')) {
    const master = await startMaster();
    log(`master: ${master.url} (pid ${master.child.proc.pid}), cluster port ${master.clusterPort}`);
    let slave;
    if (PATHS.includes('routed') || PATHS.includes('flooded')) {
      slave = await startSlave(master);
      log(`slave paired and connected (pid ${slave.child.proc.pid})`);
    }
    // Both daemons run while either path is measured, so the two figures share conditions.
    if (PATHS.includes('local'))
      results.push(await benchPath('local', httpTarget(master.url, 'echo_', master.token)));
    if (slave && PATHS.includes('routed'))
      results.push(await benchPath('routed', httpTarget(master.url, 'bench_echo_', master.token)));
    if (slave && PATHS.includes('flooded')) {
      const flood = { command: process.execPath, args: [join(root, 'test', 'fixtures', 'flood-server.mjs')] };
      const rogue = await startSlave(master, 'rogue', { mcpServers: { flood } }, 'rogue_flood_tool_0');
      log(`rogue slave flooding the master (pid ${rogue.child.proc.pid})`);
      results.push(await benchPath('flooded', httpTarget(master.url, 'bench_echo_', master.token)));
      await stopChild(rogue.child);
    }
    if (slave) await stopChild(slave.child);
    await stopChild(master.child);
  }
  if (PATHS.includes('crossmaster')) {
    const cross = await startCrossMaster();
    if (cross) {
      log(`masters A (pid ${cross.a.child.proc.pid}) and B (pid ${cross.b.child.proc.pid}) on ${CROSS_NATS}`);
      // The single-master routed path again, on B, in the same conditions, for the bus hop's cost.
      results.push(await benchPath('routedB', httpTarget(cross.b.url, 'xhost_echo_', cross.b.token)));
      results.push(await benchPath('crossmaster', httpTarget(cross.a.url, 'xhost_echo_', cross.a.token)));
      await stopChild(cross.slave.child);
      await Promise.all([stopChild(cross.a.child), stopChild(cross.b.child)]);
      await dropSchema(cross.schema);
    }
  }

  meta.wallSeconds = (Date.now() - started) / 1000;
  meta.loadAvgAtEnd = os.loadavg();
  const summary = report(results, meta);
  writeFileSync(resultsFile, `${JSON.stringify({ meta, targets: TARGETS, results, ...summary }, null, 2)}\n`);
  log(`raw numbers in ${resultsFile}; ${meta.wallSeconds.toFixed(0)} s in total`);
  if (CPU_PROF) log(`CPU profiles in ${CPU_PROF}`);
}

// ---------------------------------------------------------------------------------------------
// What metrics and tracing cost (--observability).

const AB_ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 36);
const AB_SECONDS = Number(process.env.BENCH_AB_SECONDS ?? 2);
const AB_BLOCKS = Number(process.env.BENCH_AB_BLOCKS ?? 3);
const AB_SCRAPE_MS = Number(process.env.BENCH_AB_SCRAPE_MS ?? 5000);
const AB_CONCURRENCY = 64;
/** What the "on" stack turns on (BENCH_AB_ON, default both): to tell the two costs apart. */
const AB_ON = new Set((process.env.BENCH_AB_ON ?? 'metrics,tracing').split(','));
const AB_PATHS = (process.env.BENCH_AB_PATHS ?? 'local,routed').split(',');
const AB_BOUND = 0.03;
/** The agent's trace context every call of both stacks carries (only the observed one reads it). */
const AGENT_META = process.env.BENCH_AB_NOTRACE
  ? undefined
  : { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };

/** A master and a slave, both off or both on; returns the targets and a scraper for `on`. */
async function startObservedStack(on) {
  const tag = on ? 'on' : 'off';
  const daemonEnv = async () => ({
    ...(on && AB_ON.has('metrics') ? { DIANE_METRICS_LISTEN: `127.0.0.1:${await freePort()}` } : {}),
    ...(on && AB_ON.has('tracing') ? {} : { OTEL_SDK_DISABLED: 'true' }),
  });
  const masterEnv = await daemonEnv();
  const slaveEnv = await daemonEnv();
  const master = await startMaster([], makeHome(`m${tag}`), { env: masterEnv, name: `master-${tag}` });
  const slave = await startSlave(master, 'bench', undefined, 'bench_echo_echo', {
    env: slaveEnv,
    name: `slave-${tag}`,
  });
  const scrapeUrls = masterEnv.DIANE_METRICS_LISTEN
    ? [masterEnv, slaveEnv].map((e) => `http://${e.DIANE_METRICS_LISTEN}/metrics`)
    : [];
  let scrapes = 0;
  const scrapeAll = async () => {
    for (const url of scrapeUrls) {
      const res = await fetch(url);
      const text = await res.text();
      if (res.status !== 200 || !text.includes('diane_calls_total'))
        throw new Error(`scrape of ${url}: HTTP ${res.status}`);
      scrapes++;
    }
  };
  const targets = {
    local: httpTarget(master.url, 'echo_', master.token, AGENT_META),
    routed: httpTarget(master.url, 'bench_echo_', master.token, AGENT_META),
  };
  for (const t of Object.values(targets)) await t.open();
  return {
    tag,
    master,
    slave,
    targets,
    scrapes: () => scrapes,
    /** Scrapes every AB_SCRAPE_MS while `fn` runs (a Prometheus at a short interval). */
    async whileScraped(fn) {
      if (scrapeUrls.length === 0) return fn();
      let failure;
      const timer = setInterval(() => scrapeAll().catch((err) => (failure = err)), AB_SCRAPE_MS);
      await scrapeAll();
      const result = await fn().finally(() => clearInterval(timer));
      if (failure) throw failure;
      return result;
    },
  };
}

/** CPU µs per call of one stack's processes (its master, slave and their upstreams). */
function stackCpuUs(cpu, tag) {
  let sum = 0;
  for (const [label, us] of Object.entries(cpu.perCallUs))
    if (label.startsWith(`master-${tag}`) || label.startsWith(`slave-${tag}`)) sum += us;
  return sum;
}

/** 95 % interval of the median of `values`, by bootstrap (2,000 resamples, a fixed seed). */
function medianInterval(values) {
  let seed = 0x9e3779b9;
  const random = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const medians = Array.from({ length: 2000 }, () =>
    median(Array.from(values, () => values[Math.floor(random() * values.length)])),
  ).sort((a, b) => a - b);
  return [medians[50], medians[1949]];
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function observabilityAB() {
  const started = Date.now();
  const meta = {
    date: new Date().toISOString(),
    node: process.versions.node,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    seconds: AB_SECONDS,
    rounds: AB_ROUNDS,
    blocks: AB_BLOCKS,
    scrapeMs: AB_SCRAPE_MS,
    concurrency: AB_CONCURRENCY,
    loadAvgAtStart: os.loadavg(),
  };
  const paths = AB_PATHS;
  const rounds = Object.fromEntries(paths.map((p) => [p, []]));
  let scrapes = 0;
  // Fresh stacks per block, started in turn order: a stack's own luck (where its processes run,
  // how its heap grew) would otherwise count as the cost of what it has on.
  for (let block = 0; block < AB_BLOCKS; block++) {
    const [first, second] = block % 2 === 0 ? [false, true] : [true, false];
    const stacks = [await startObservedStack(first), await startObservedStack(second)];
    const off = stacks.find((st) => st.tag === 'off');
    const on = stacks.find((st) => st.tag === 'on');
    log(
      `block ${block + 1}/${AB_BLOCKS}: stacks up, off (master ${off.master.child.proc.pid}), on (master ${on.master.child.proc.pid})`,
    );
    // A round of each, not counted: the first measured round of a fresh process runs partly
    // unoptimised code, and would always fall on the stack measured first.
    for (const path of paths)
      for (const stack of [off, on]) await measureEcho(stack.targets[path], AB_CONCURRENCY, AB_SECONDS);
    const blockRounds = Math.ceil(AB_ROUNDS / AB_BLOCKS);
    for (let round = 0; round < blockRounds; round++) {
      for (const path of paths) {
        const order = round % 2 === 0 ? [off, on] : [on, off];
        const cell = {};
        for (const stack of order) {
          const got = await stack.whileScraped(() =>
            measureEcho(stack.targets[path], AB_CONCURRENCY, AB_SECONDS),
          );
          cell[stack.tag] = {
            callsPerSec: got.callsPerSec,
            p50Ms: got.p50Ms,
            daemonCpuUs: stackCpuUs(got.cpu, stack.tag),
            cpuByProcessUs: Object.fromEntries(
              Object.entries(got.cpu.perCallUs).filter(([label]) => /^(master|slave)-/.test(label)),
            ),
            othersPct: got.cpu.othersPct,
          };
        }
        cell.ratio = cell.on.callsPerSec / cell.off.callsPerSec;
        cell.block = block;
        rounds[path].push(cell);
        log(
          `block ${block + 1} round ${round + 1}/${blockRounds} ${path}: off ${cell.off.callsPerSec.toFixed(0)}, on ${cell.on.callsPerSec.toFixed(0)} calls/s (on/off ${cell.ratio.toFixed(3)}); daemon CPU ${cell.off.daemonCpuUs} → ${cell.on.daemonCpuUs} µs/call`,
        );
      }
    }
    scrapes += on.scrapes();
    for (const stack of stacks) {
      for (const t of Object.values(stack.targets)) await t.close();
      await stopChild(stack.slave.child);
      await stopChild(stack.master.child);
    }
  }
  meta.scrapes = scrapes;
  meta.wallSeconds = (Date.now() - started) / 1000;
  meta.loadAvgAtEnd = os.loadavg();

  const summary = {};
  const lines = [
    '',
    `${[...AB_ON].join(' and ')} on against both off: c=${AB_CONCURRENCY}, ${AB_ROUNDS} alternated rounds of ${AB_SECONDS} s per path in ${AB_BLOCKS} blocks of fresh stacks, ${meta.scrapes} scrapes`,
    '',
    `${pad('path', 8)}${lpad('off calls/s', 13)}${lpad('on calls/s', 12)}${lpad('on/off median', 15)}${lpad('95 % interval', 15)}${lpad('CPU µs off→on', 16)}${lpad('cost', 8)}  bound ${AB_BOUND * 100} %`,
  ];
  for (const path of paths) {
    const cells = rounds[path];
    const ratio = median(cells.map((c) => c.ratio));
    const cost = 1 - ratio;
    const [low, high] = medianInterval(cells.map((c) => c.ratio));
    const cpuOff = median(cells.map((c) => c.off.daemonCpuUs));
    const cpuOn = median(cells.map((c) => c.on.daemonCpuUs));
    // Calls per CPU-second of the daemons, on against off, per round: what a CPU-bound server
    // can serve is in inverse proportion to what a call costs it.
    const capacity = cells.map((c) => c.off.daemonCpuUs / c.on.daemonCpuUs);
    const [capLow, capHigh] = medianInterval(capacity);
    const byProcess = (tag, role) => median(cells.map((c) => c[tag].cpuByProcessUs[`${role}-${tag}`] ?? 0));
    summary[path] = {
      offCallsPerSec: median(cells.map((c) => c.off.callsPerSec)),
      onCallsPerSec: median(cells.map((c) => c.on.callsPerSec)),
      ratioMedian: ratio,
      ratioInterval95: [low, high],
      costInterval95: [1 - high, 1 - low],
      daemonCpuUsOff: cpuOff,
      daemonCpuUsOn: cpuOn,
      cpuCapacityRatioMedian: median(capacity),
      cpuCapacityRatioInterval95: [capLow, capHigh],
      masterCpuUs: [byProcess('off', 'master'), byProcess('on', 'master')],
      slaveCpuUs: [byProcess('off', 'slave'), byProcess('on', 'slave')],
      cost,
      blockRatios: Array.from({ length: AB_BLOCKS }, (_, b) =>
        median(cells.filter((c) => c.block === b).map((c) => c.ratio)),
      ),
      verdict: verdict(cost <= AB_BOUND),
    };
    const r = summary[path];
    lines.push(
      `${pad(path, 8)}${lpad(r.offCallsPerSec.toFixed(0), 13)}${lpad(r.onCallsPerSec.toFixed(0), 12)}${lpad(ratio.toFixed(3), 15)}${lpad(`${low.toFixed(3)}–${high.toFixed(3)}`, 15)}${lpad(`${cpuOff}→${cpuOn}`, 16)}${lpad(`${(cost * 100).toFixed(1)} %`, 8)}  ${r.verdict}   blocks ${r.blockRatios.map((x) => x.toFixed(3)).join(' ')}`,
    );
  }
  lines.push(
    '',
    `${pad('path', 8)}${lpad('calls per daemon CPU-second, on/off', 38)}${lpad('95 % interval', 15)}${lpad('master µs', 12)}${lpad('slave µs', 12)}`,
  );
  for (const path of paths) {
    const r = summary[path];
    const [low, high] = r.cpuCapacityRatioInterval95;
    lines.push(
      `${pad(path, 8)}${lpad(r.cpuCapacityRatioMedian.toFixed(3), 38)}${lpad(`${low.toFixed(3)}–${high.toFixed(3)}`, 15)}${lpad(r.masterCpuUs.join('→'), 12)}${lpad(r.slaveCpuUs.join('→'), 12)}`,
    );
  }
  lines.push(
    '',
    'cost = 1 − the median of the per-round on/off throughput ratios (95 % interval by bootstrap); CPU: master + slave + their upstreams, median µs per call.',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  const file = join(root, 'bench', 'results-observability.json');
  writeFileSync(file, `${JSON.stringify({ meta, bound: AB_BOUND, summary, rounds }, null, 2)}\n`);
  log(`raw numbers in ${file}; ${meta.wallSeconds.toFixed(0)} s in total`);
}

try {
  await (process.argv.includes('--observability') ? observabilityAB() : main());
} catch (err) {
  if (!interrupted) log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
