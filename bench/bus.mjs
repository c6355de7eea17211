#!/usr/bin/env node
// What the bus hop adds to a call: master A's router → RemoteHostUpstream → NATS → master B's
// BusCallServer → the host's upstream (a fake that answers at once), against the same call on
// a router whose upstream is that fake directly. Both masters run in this process, each with its
// own NATS connection; one call at a time, so the figure is latency, not throughput. A bare NATS
// request/reply is measured in turns with both, to tell NATS's share from Diane's. Needs a
// NATS server with JetStream (`DIANE_TEST_NATS`, default nats://127.0.0.1:4222). Run with
// `npm run bench:bus` (builds first). It measures; it asserts nothing.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { DEFAULT_BUS_SETTINGS } from '../dist/bus/busSettings.js';
import { presenceBucket } from '../dist/bus/busWire.js';
import { MasterBus } from '../dist/bus/masterBus.js';
import { silentLogger } from '../dist/log.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../dist/mcp/router.js';

const N = Number(process.env.BENCH_BUS_CALLS ?? 5_000);
const WARMUP = 500;
const url = process.env.DIANE_TEST_NATS ?? 'nats://127.0.0.1:4222';
const prefix = `bench${randomBytes(4).toString('hex')}`;
const result = { content: [{ type: 'text', text: 'x'.repeat(200) }] };

/** The host's upstream on master B: answers at once, like the fastest possible slave. */
function fakeHost(name) {
  const listeners = new Set();
  const catalog = {
    tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
    prompts: [],
    resources: [],
    resourceTemplates: [],
  };
  return {
    name,
    host: name,
    kind: 'slave',
    connected: true,
    since: new Date(),
    status: () => ({
      name,
      kind: 'slave',
      state: 'connected',
      toolCount: 1,
      promptCount: 0,
      resourceCount: 0,
      restarts: 0,
    }),
    catalog: () => catalog,
    serverCapabilities: () => ({ tools: {} }),
    request: async () => result,
    unavailableMessage: () => `Host ${name} is not available`,
    subscribe: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    linkInfo() {
      return {
        connectedAt: this.since,
        certSerial: 's1',
        remoteAddress: '127.0.0.1',
        certExpiresAt: new Date(),
      };
    },
    detach: async () => {},
    stop: async () => {},
  };
}

/** The registry edge of MasterBus: holds the fake link on B, routes the remote one on A. */
function registry(router, linked = []) {
  const slaves = new Map(linked.map((s) => [s.name, s]));
  return {
    get: (h) => slaves.get(h),
    linked: () => [...slaves.values()],
    setRemote: (h, remote) => {
      if (remote && !router.get(h)) router.add(remote);
    },
    onLinkChange: () => () => {},
    syncFromStore: () => {},
    removeHost: async () => {},
  };
}

function master(id, linked) {
  const router = new Router(DEFAULT_ROUTER_SETTINGS, silentLogger);
  for (const s of linked) router.add(s);
  const bus = new MasterBus({
    masterId: id,
    settings: { ...DEFAULT_BUS_SETTINGS, servers: [url], prefix },
    router,
    registry: registry(router, linked),
    logger: silentLogger,
  });
  return { router, bus };
}

/** p50/p90/p99 of samples in microseconds. */
function quantiles(samples) {
  samples.sort();
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

async function timed(fn) {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1000;
}

/**
 * The three paths in turns (direct, bare NATS, bus), call after call: this machine's load drifts,
 * and measuring one path after the other would charge the drift to one of them.
 */
async function measureInTurns(paths) {
  for (let i = 0; i < WARMUP; i++) for (const fn of Object.values(paths)) await fn();
  const samples = Object.fromEntries(Object.keys(paths).map((k) => [k, new Float64Array(N)]));
  for (let i = 0; i < N; i++) {
    for (const [k, fn] of Object.entries(paths)) samples[k][i] = await timed(fn);
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, quantiles(v)]));
}

const host = fakeHost('ws1');
const b = master('bench-b', [host]);
const a = master('bench-a', []);
await Promise.all([a.bus.ready(), b.bus.ready()]);
const deadline = Date.now() + 10_000;
while (!(a.router.get('ws1')?.catalog().tools.length > 0)) {
  if (Date.now() > deadline) throw new Error('ws1 never reached master a');
  await new Promise((r) => setTimeout(r, 20));
}

// NATS itself: one request/reply between two connections, the floor under any bus hop; once in
// this process, once to a responder in a process of its own, as two masters are in production
// (and in `npm run bench`'s cross-master path): each message then also wakes another process.
const [x, y] = await Promise.all([connect({ servers: [url] }), connect({ servers: [url] })]);
y.subscribe(`${prefix}.rtt`, { callback: (_err, m) => m.respond(m.data) });
await y.flush();
const responder = spawn(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { connect } from '@nats-io/transport-node';
     const nc = await connect({ servers: [${JSON.stringify(url)}] });
     nc.subscribe(${JSON.stringify(`${prefix}.rtt2`)}, { callback: (_err, m) => m.respond(m.data) });
     await nc.flush();
     process.stdout.write('ready\\n');
     process.stdin.on('end', () => nc.close().then(() => process.exit(0)));
     process.stdin.resume();`,
  ],
  { cwd: new URL('..', import.meta.url), stdio: ['pipe', 'pipe', 'inherit'] },
);
await new Promise((r) => responder.stdout.once('data', r));
const payload = new TextEncoder().encode(JSON.stringify({ t: 'result', result }));
const signal = new AbortController().signal;
const { direct, raw, rawOtherProcess, viaBus } = await measureInTurns({
  direct: () => b.router.callTool('ws1_echo', {}, signal),
  raw: () => x.request(`${prefix}.rtt`, payload),
  rawOtherProcess: () => x.request(`${prefix}.rtt2`, payload),
  viaBus: () => a.router.callTool('ws1_echo', {}, signal),
});
responder.stdin.end();
await Promise.all([x.close(), y.close()]);
await a.bus.close();
await b.bus.close();
const nc = await connect({ servers: [url] });
await (await jetstreamManager(nc)).streams.delete(`KV_${presenceBucket(prefix)}`).catch(() => {});
await nc.close();

const fmt = (r) => `p50 ${r.p50.toFixed(0)} µs, p90 ${r.p90.toFixed(0)} µs, p99 ${r.p99.toFixed(0)} µs`;

console.log(`bus: ${N} sequential tools/call, 200-byte result, NATS at ${url}`);
console.log(`  router → upstream directly:        ${fmt(direct)}`);
console.log(`  router → bus → other master → same: ${fmt(viaBus)}`);
console.log(`  the bus hop adds (p50):             ${(viaBus.p50 - direct.p50).toFixed(0)} µs`);
console.log(`  a bare NATS request/reply:          ${fmt(raw)}`);
console.log(`  Diane's own share (p50):            ${(viaBus.p50 - direct.p50 - raw.p50).toFixed(0)} µs`);
console.log(`  bare NATS, responder in another process: ${fmt(rawOtherProcess)}`);
