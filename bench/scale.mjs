#!/usr/bin/env node
// A master with thousands of slaves: `npm run bench:scale` (builds first). It measures; it
// asserts nothing. Prints a table and writes bench/scale-results.json (not committed).
//
// A real master (`node bin/diane.js serve`, its own DIANE_HOME in a temp directory, loopback
// ports chosen at run time, --metrics-listen for its event-loop lag) and BENCH_SLAVES simulated
// slaves in one child process (bench/scale-slaves.mjs) that speak the real link protocol over
// mutual TLS. The slaves are paired by issuing their certificates with the master's own CA and
// recording them in its store while it is stopped, as an approval would; each dials from its own
// loopback address (127.1.x.y), because the cluster listener takes at most 32 connections from
// one address.
//
// Measured: connecting all slaves at once (wall time until the master has read every list of
// every link, master CPU from /proc/<pid>/stat, event-loop lag p99 and max from the master's
// `diane_nodejs_eventloop_lag_*` metrics over the storm, RSS peak), then from an agent the first
// `tools/list` page and the whole list over every page, a routed `tools/call`, idle RSS, and the
// time for every slave to be back after `kill -9` of the master and a restart.
//
// Environment:
//   BENCH_SLAVES     simulated slaves (default 1000)
//   BENCH_TOOLS      tools per slave (default 20)
//   BENCH_CPU_PROF   a directory: run the master under `node --cpu-prof` there (first run only)
//   BENCH_VERBOSE=1  echo the master's stderr
import { fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { homePaths } from '../dist/config/paths.js';
import { issueSlaveCertificate, loadCa, makeCsr, validateCsr } from '../dist/pki/index.js';
import { openStore } from '../dist/store/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dianeBin = join(root, 'bin', 'diane.js');
const slavesScript = join(root, 'bench', 'scale-slaves.mjs');
const resultsFile = join(root, 'bench', 'scale-results.json');

const SLAVES = Number(process.env.BENCH_SLAVES ?? 1000);
const TOOLS = Number(process.env.BENCH_TOOLS ?? 20);
const CPU_PROF = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const PROTOCOL = '2025-06-18';
const TICK_MS = 10; // USER_HZ is 100 on Linux

const TARGETS = {
  firstPageP50Ms: 20,
  allPagesMs: 150,
  connectCpuS: 3,
  lagP99Ms: 50,
  idleRssMb: 250,
  peakRssMb: 400,
  backAfterKillS: 30,
};

const children = new Set();
let home;

function log(message) {
  process.stderr.write(`[bench:scale] ${message}\n`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function envWith(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('DIANE_')) env[k] = v;
  return { ...env, ...extra };
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

async function waitFor(what, check, timeoutMs = 60_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** CPU ms (user + system) and RSS MB of a process, from /proc. */
function procUsage(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuMs: (Number(f[11]) + Number(f[12])) * TICK_MS, rssMb: rssKb / 1024 };
  } catch {
    return undefined;
  }
}

/** CPU ms of the whole machine (all cores) and its idle part, from /proc/stat. */
function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0) * TICK_MS;
  return { total, idle: (f[3] + f[4]) * TICK_MS };
}

// ---------------------------------------------------------------------------------------------
// The master.

function startMaster(ports, { profile = false } = {}) {
  const args = [
    ...(profile && CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, '--cpu-prof-interval=997'] : []),
    dianeBin,
    'serve',
    '--mcp-listen',
    `127.0.0.1:${ports.mcp}`,
    '--listen',
    `127.0.0.1:${ports.cluster}`,
    '--metrics-listen',
    `127.0.0.1:${ports.metrics}`,
  ];
  const proc = spawn(process.execPath, args, {
    cwd: root,
    env: envWith({ DIANE_HOME: home, DIANE_LOG_LEVEL: 'warn' }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(proc);
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (c) => {
    stderr = (stderr + c).slice(-16384);
    if (VERBOSE) process.stderr.write(c.replace(/^(?=.)/gm, `[master ${proc.pid}] `));
  });
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  exited.then(() => children.delete(proc));
  return {
    proc,
    pid: proc.pid,
    exited,
    stderr: () => stderr,
    running: () => proc.exitCode === null && proc.signalCode === null,
  };
}

async function waitHealthy(master, ports) {
  await waitFor(
    'master /healthz',
    async () => {
      if (!master.running()) throw new Error(`diane serve exited: ${master.stderr()}`);
      const res = await fetch(`http://127.0.0.1:${ports.mcp}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return res.status === 200;
    },
    60_000,
  ).catch((err) => {
    throw new Error(`${err.message}\n--- master stderr ---\n${master.stderr()}`);
  });
}

async function stopMaster(master) {
  if (!master.running()) return;
  master.proc.kill('SIGTERM');
  const timer = setTimeout(() => master.proc.kill('SIGKILL'), 20_000);
  await master.exited;
  clearTimeout(timer);
}

/** The master's event-loop lag since the previous scrape (prom-client resets its histogram). */
async function scrapeLag(ports) {
  const text = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
  const read = (name) =>
    Number(
      new RegExp(`^diane_nodejs_eventloop_lag_${name}_seconds(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1],
    ) * 1000;
  return { p99Ms: read('p99'), maxMs: read('max') };
}

// ---------------------------------------------------------------------------------------------
// Pairing, as an approval would record it.

async function enrolSlaves(count) {
  const paths = homePaths(home);
  const ca = await loadCa({ certPath: paths.caCert, keyPath: paths.caKey });
  const slaves = new Array(count);
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const hostId = `bench-${String(i).padStart(5, '0')}`;
      const { csrPem, keyPem } = await makeCsr(hostId);
      const csr = await validateCsr(csrPem, hostId);
      const issued = await issueSlaveCertificate(ca, csr, hostId);
      slaves[i] = {
        hostId,
        cert: issued.certPem,
        key: keyPem,
        localAddress: `127.1.${(i + 1) >> 8}.${(i + 1) & 255}`,
        enrolment: {
          hostId,
          certSerial: issued.serialHex,
          issuedAt: issued.notBefore,
          expiresAt: issued.notAfter,
          keyFingerprint: issued.keyFingerprint,
          caFingerprint: ca.fingerprint,
        },
      };
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const store = openStore(paths.db);
  await store.transaction(async (tx) => {
    for (const s of slaves) await tx.slaveServers.upsertEnrollment(s.enrolment);
  });
  await store.close();
  log(`enrolled ${count} slaves in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { ca: ca.certPem, slaves: slaves.map(({ enrolment: _e, ...s }) => s) };
}

// ---------------------------------------------------------------------------------------------
// The simulated slaves' process.

function startSlaves(specFile) {
  const proc = fork(slavesScript, [specFile], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const up = new Map();
  const listeners = new Set();
  proc.on('message', (m) => {
    if (m.type === 'up') up.set(m.hostId, m.at);
    if (m.type === 'down') up.delete(m.hostId);
    for (const l of listeners) l(m);
  });
  const ready = new Promise((r) => proc.on('message', (m) => m.type === 'ready' && r()));
  return {
    proc,
    ready,
    up,
    connect: () => proc.send({ type: 'connect' }),
    stop: () => {
      proc.send({ type: 'stop' });
      return new Promise((r) => proc.once('exit', r));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A thin agent: one 2025-era Streamable HTTP session on node:http (see bench/latency.mjs).

class Agent {
  constructor(port, token) {
    this.port = port;
    this.auth = { authorization: `Bearer ${token}` };
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1, noDelay: true });
    this.nextId = 1;
  }

  post(payload) {
    const body = Buffer.from(JSON.stringify(payload));
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'content-length': body.length,
      ...this.auth,
      ...(this.sessionId ? { 'mcp-session-id': this.sessionId, 'mcp-protocol-version': PROTOCOL } : {}),
    };
    return new Promise((resolvePromise, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: this.port, path: '/mcp', method: 'POST', headers, agent: this.agent },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolvePromise({
              status: res.statusCode,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async request(method, params) {
    const id = this.nextId++;
    const res = await this.post({ jsonrpc: '2.0', id, method, params });
    if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
    const contentType = String(res.headers['content-type'] ?? '');
    let text = res.text;
    if (contentType.includes('text/event-stream')) {
      text = text
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .find((d) => d.includes(`"id":${id}`));
    }
    const reply = JSON.parse(text);
    if (reply.error) throw new Error(`${method}: ${reply.error.message}`);
    return reply.result;
  }

  async initialize() {
    const res = await this.post({
      jsonrpc: '2.0',
      id: this.nextId++,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL,
        capabilities: {},
        clientInfo: { name: 'bench-scale', version: '1' },
      },
    });
    if (res.status !== 200) throw new Error(`initialize: HTTP ${res.status}: ${res.text}`);
    this.sessionId = res.headers['mcp-session-id'];
    await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  /** Every page of tools/list: the number of tools and how many pages. */
  async allTools() {
    let cursor;
    let tools = 0;
    let pages = 0;
    do {
      const page = await this.request('tools/list', cursor ? { cursor } : {});
      tools += page.tools.length;
      pages++;
      cursor = page.nextCursor;
    } while (cursor);
    return { tools, pages };
  }

  close() {
    this.agent.destroy();
  }
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

async function timed(fn) {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const fdNeed = SLAVES + 256;
  const fdLimit = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]);
  if (fdLimit && fdLimit < 2 * fdNeed) {
    log(
      `warning: ulimit -n is ${fdLimit}; ${SLAVES} slaves want about ${2 * fdNeed} (the listener takes half)`,
    );
  }
  const base = os.tmpdir().length > 40 ? '/tmp' : os.tmpdir();
  home = mkdtempSync(join(base, 'diane-scale-'));
  if (CPU_PROF) mkdirSync(CPU_PROF, { recursive: true });
  const ports = { mcp: await freePort(), cluster: await freePort(), metrics: await freePort() };

  // First start: creates the CA, the server certificate and the store.
  let master = startMaster(ports);
  await waitHealthy(master, ports);
  await stopMaster(master);
  const { ca, slaves } = await enrolSlaves(SLAVES);
  const specFile = join(home, 'bench-slaves.json');
  writeFileSync(
    specFile,
    JSON.stringify({ wsUrl: `wss://127.0.0.1:${ports.cluster}/slave/connect`, ca, tools: TOOLS, slaves }),
    {
      mode: 0o600,
    },
  );

  master = startMaster(ports, { profile: true });
  await waitHealthy(master, ports);
  const token = readFileSync(join(home, 'agent-token'), 'utf8').trim();
  const sim = startSlaves(specFile);
  await sim.ready;
  await sleep(1500);
  const idleBefore = procUsage(master.pid);
  await scrapeLag(ports); // resets the lag histogram: the next scrape covers the storm
  const lagWindowStart = Date.now();

  // ---- the storm: every slave dials at once ----
  log(`connecting ${SLAVES} slaves x ${TOOLS} tools`);
  let peakRss = idleBefore.rssMb;
  const sampler = setInterval(() => {
    const u = procUsage(master.pid);
    if (u) peakRss = Math.max(peakRss, u.rssMb);
  }, 50);
  const cpu0 = procUsage(master.pid).cpuMs;
  const machine0 = machineCpu();
  const t0 = Date.now();
  sim.connect();
  const progress = setInterval(
    () => log(`${sim.up.size} up after ${((Date.now() - t0) / 1000).toFixed(0)} s`),
    5000,
  );
  await waitFor(`${SLAVES} slaves up`, async () => sim.up.size >= SLAVES, 300_000, 20).finally(() =>
    clearInterval(progress),
  );
  const connectMs = Date.now() - t0;
  const connectCpuMs = procUsage(master.pid).cpuMs - cpu0;
  const machine1 = machineCpu();
  const machineBusyPct = (1 - (machine1.idle - machine0.idle) / (machine1.total - machine0.total)) * 100;
  await sleep(Math.max(0, 1100 - (Date.now() - lagWindowStart)));
  const stormLag = await scrapeLag(ports);
  log(`all up in ${(connectMs / 1000).toFixed(2)} s, master CPU ${(connectCpuMs / 1000).toFixed(2)} s`);

  // ---- an agent's view ----
  const agent = new Agent(ports.mcp, token);
  await agent.initialize();
  const expected = SLAVES * TOOLS;
  const whole = await waitFor(
    `${expected} tools listed`,
    async () => {
      const all = await agent.allTools();
      return all.tools >= expected ? all : undefined;
    },
    60_000,
    200,
  );
  const firstPage = [];
  for (let i = 0; i < 30; i++) firstPage.push((await timed(() => agent.request('tools/list', {}))).ms);
  const allPages = [];
  for (let i = 0; i < 7; i++) allPages.push((await timed(() => agent.allTools())).ms);
  const calls = [];
  for (let i = 0; i < 300; i++) {
    const host = slaves[(i * 7919) % SLAVES].hostId;
    const tool = `${host}_sim_tool_${String(i % TOOLS).padStart(2, '0')}`;
    const call = await timed(() => agent.request('tools/call', { name: tool, arguments: { path: '/x' } }));
    if (i === 0 && !JSON.stringify(call.value).includes('ok tool_'))
      throw new Error(`unexpected result ${JSON.stringify(call.value)}`);
    calls.push(call.ms);
  }
  agent.close();
  await sleep(5000);
  const idleAfter = procUsage(master.pid);
  clearInterval(sampler);

  if (CPU_PROF) {
    // A profile is written only by a process that exits: the profiled master stops cleanly, and
    // an unprofiled one takes its place for the kill.
    await stopMaster(master);
    await waitFor('every link down', async () => sim.up.size === 0, 60_000, 20);
    master = startMaster(ports);
    await waitHealthy(master, ports);
    await waitFor(`${SLAVES} slaves back`, async () => sim.up.size >= SLAVES, 300_000, 20);
  }

  // ---- kill -9 and restart ----
  log('kill -9 of the master, then a restart');
  const killedAt = Date.now();
  master.proc.kill('SIGKILL');
  await master.exited;
  await waitFor('every link down', async () => sim.up.size === 0, 60_000, 20);
  master = startMaster(ports);
  const restartedAt = Date.now();
  await waitHealthy(master, ports);
  const healthyAt = Date.now();
  const reCpu0 = procUsage(master.pid)?.cpuMs ?? 0;
  await scrapeLag(ports).catch(() => undefined);
  const reLagStart = Date.now();
  await waitFor(`${SLAVES} slaves back`, async () => sim.up.size >= SLAVES, 300_000, 20);
  const backAt = Date.now();
  const reconnectCpuMs = (procUsage(master.pid)?.cpuMs ?? 0) - reCpu0;
  await sleep(Math.max(0, 1100 - (Date.now() - reLagStart)));
  const reconnectLag = await scrapeLag(ports);

  await sim.stop();
  await stopMaster(master);

  const results = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    /** Other processes share the machine: the figures are as loaded as this says. */
    loadAverage: os.loadavg(),
    slaves: SLAVES,
    toolsPerSlave: TOOLS,
    tools: whole.tools,
    pages: whole.pages,
    connect: {
      wallMs: connectMs,
      masterCpuMs: connectCpuMs,
      machineBusyPct,
      lagP99Ms: stormLag.p99Ms,
      lagMaxMs: stormLag.maxMs,
    },
    toolsList: {
      firstPageP50Ms: percentile(firstPage, 50),
      firstPageP99Ms: percentile(firstPage, 99),
      allPagesP50Ms: percentile(allPages, 50),
      allPagesMaxMs: Math.max(...allPages),
    },
    routedCall: { p50Ms: percentile(calls, 50), p99Ms: percentile(calls, 99) },
    rss: { beforeMb: idleBefore.rssMb, idleMb: idleAfter.rssMb, peakMb: peakRss },
    reconnect: {
      backAfterKillMs: backAt - killedAt,
      backAfterRestartMs: backAt - restartedAt,
      masterUpAfterRestartMs: healthyAt - restartedAt,
      masterCpuMs: reconnectCpuMs,
      lagP99Ms: reconnectLag.p99Ms,
      lagMaxMs: reconnectLag.maxMs,
    },
  };
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  printTable(results);
}

function printTable(r) {
  const f = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : String(n));
  const verdict = (ok) => (ok ? 'PASS' : 'MISS');
  const rows = [
    ['slaves x tools', `${r.slaves} x ${r.toolsPerSlave} = ${r.tools} tools, ${r.pages} pages`, ''],
    [
      'machine load average (1, 5 min)',
      `${f(r.loadAverage[0])}, ${f(r.loadAverage[1])} on ${r.cpus} CPUs`,
      '',
    ],
    ['connect all: wall', `${f(r.connect.wallMs / 1000, 2)} s`, ''],
    [
      'connect all: master CPU',
      `${f(r.connect.masterCpuMs / 1000, 2)} s`,
      `< ${TARGETS.connectCpuS} s ${verdict(r.connect.masterCpuMs / 1000 < TARGETS.connectCpuS)}`,
    ],
    ['connect all: machine busy', `${f(r.connect.machineBusyPct, 0)} % of ${r.cpus} CPUs`, ''],
    [
      'event-loop lag p99 / max (storm)',
      `${f(r.connect.lagP99Ms)} / ${f(r.connect.lagMaxMs)} ms`,
      `p99 < ${TARGETS.lagP99Ms} ms ${verdict(r.connect.lagP99Ms < TARGETS.lagP99Ms)}`,
    ],
    [
      'tools/list first page p50 / p99',
      `${f(r.toolsList.firstPageP50Ms, 2)} / ${f(r.toolsList.firstPageP99Ms, 2)} ms`,
      `< ${TARGETS.firstPageP50Ms} ms ${verdict(r.toolsList.firstPageP50Ms < TARGETS.firstPageP50Ms)}`,
    ],
    [
      'tools/list every page p50 / max',
      `${f(r.toolsList.allPagesP50Ms)} / ${f(r.toolsList.allPagesMaxMs)} ms`,
      `< ${TARGETS.allPagesMs} ms ${verdict(r.toolsList.allPagesP50Ms < TARGETS.allPagesMs)}`,
    ],
    ['routed tools/call p50 / p99', `${f(r.routedCall.p50Ms, 2)} / ${f(r.routedCall.p99Ms, 2)} ms`, ''],
    [
      'master RSS before / idle / peak',
      `${f(r.rss.beforeMb, 0)} / ${f(r.rss.idleMb, 0)} / ${f(r.rss.peakMb, 0)} MB`,
      `idle < ${TARGETS.idleRssMb} ${verdict(r.rss.idleMb < TARGETS.idleRssMb)}, peak < ${TARGETS.peakRssMb} ${verdict(r.rss.peakMb < TARGETS.peakRssMb)}`,
    ],
    [
      'all back after kill -9',
      `${f(r.reconnect.backAfterKillMs / 1000, 2)} s (master up ${f(r.reconnect.masterUpAfterRestartMs / 1000, 2)} s after restart)`,
      `< ${TARGETS.backAfterKillS} s ${verdict(r.reconnect.backAfterKillMs / 1000 < TARGETS.backAfterKillS)}`,
    ],
    [
      'reconnect: master CPU, lag p99 / max',
      `${f(r.reconnect.masterCpuMs / 1000, 2)} s, ${f(r.reconnect.lagP99Ms)} / ${f(r.reconnect.lagMaxMs)} ms`,
      '',
    ],
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows)
    process.stdout.write(`${row.map((cell, c) => cell.padEnd(widths[c])).join('  ')}\n`);
  process.stdout.write(`written to ${resultsFile}\n`);
}

async function cleanup() {
  for (const proc of children) proc.kill('SIGKILL');
  if (home) rmSync(home, { recursive: true, force: true });
}

process.on('SIGINT', () => cleanup().finally(() => process.exit(130)));
main()
  .catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(cleanup);
