#!/usr/bin/env node
// Fuzzes the surfaces where bytes from outside reach Diane, against a real master:
//
//   config   mcp-servers.json parsing (in process: parseMcpServersConfig must answer, never throw)
//   pair     POST /api/slave/pair on the cluster port: garbage bytes, random JSON, and pairing
//            bodies with random or damaged CSR DER (must answer with a status below 500)
//   mcp      POST /mcp on the agent port: random bodies, JSON-RPC shapes, nesting, and headers
//            (must answer below 500)
//   link     the mutual-TLS WebSocket link with a paired slave's certificate: JSON-RPC shaped
//            frames on one link, and garbage, binary and deep frames that must close it with 1007
//
// After each surface the master must still answer /healthz, the cluster port and the admin
// socket, and its process must be alive. A request without an answer in 10 s is a hang.
//
//   node fuzz/fuzz.mjs [--inputs N] [--surfaces config,pair,mcp,link] [--seed S]
//
// `npm run fuzz` runs 100,000 inputs per surface; `npm test` runs a short mode (see
// test/e2e/fuzz.test.ts). Exit code 0 only when no input crashed or hung anything.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { WebSocket } from 'ws';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dianeBin = join(root, 'bin', 'diane.js');
const HANG_MS = 10_000;

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const INPUTS = Number(option('inputs', process.env.FUZZ_INPUTS ?? '100000'));
const SURFACES = option('surfaces', 'config,pair,mcp,link').split(',');
const SEED = Number(option('seed', String(Date.now() % 2 ** 31)));

const log = (m) => process.stderr.write(`[fuzz] ${m}\n`);
const homes = [];
const children = new Set();
const failures = [];

function fail(surface, what, input) {
  const shown = typeof input === 'string' ? input.slice(0, 300) : JSON.stringify(input)?.slice(0, 300);
  failures.push({ surface, what, input: shown });
  log(`FAIL ${surface}: ${what} (input ${shown})`);
}

function makeHome(name) {
  const home = mkdtempSync(join(tmpdir(), `diane-fuzz-${name}-`));
  homes.push(home);
  return home;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

function cli(home, cliArgs) {
  const r = spawnSync(process.execPath, [dianeBin, ...cliArgs], {
    env: { ...process.env, DIANE_HOME: home, DIANE_LOG_LEVEL: 'error' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch {
      // Not yet.
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function startMaster() {
  const home = makeHome('master');
  writeFileSync(join(home, 'mcp-servers.json'), JSON.stringify({ mcpServers: {} }), { mode: 0o600 });
  const mcpPort = await freePort();
  const clusterPort = await freePort();
  const child = spawn(
    process.execPath,
    [dianeBin, 'serve', '--mcp-listen', `127.0.0.1:${mcpPort}`, '--listen', `127.0.0.1:${clusterPort}`],
    {
      env: { ...process.env, DIANE_HOME: home, DIANE_LOG_LEVEL: process.env.FUZZ_MASTER_LOG ?? 'fatal' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const master = { home, mcpPort, clusterPort, child, stderr: () => stderr };
  await waitFor('master /healthz', async () => (await fetch(`http://127.0.0.1:${mcpPort}/healthz`)).ok);
  master.token = readFileSync(join(home, 'agent-token'), 'utf8').trim();
  master.ca = JSON.parse(cli(home, ['info', '--json']).stdout).ca_fingerprint;
  master.caPem = readFileSync(join(home, 'slave-ca-cert.pem'), 'utf8');
  return master;
}

/** Pairs a slave home with the master and returns its credentials (no slave process runs). */
async function pairedCredentials(master) {
  const home = makeHome('slave');
  const pair = spawn(
    process.execPath,
    [
      dianeBin,
      'slave',
      'pair',
      `--master=https://127.0.0.1:${master.clusterPort}`,
      '--host-id=fuzzed',
      `--ca-fingerprint=${master.ca}`,
    ],
    { env: { ...process.env, DIANE_HOME: home, DIANE_LOG_LEVEL: 'error' }, stdio: 'ignore' },
  );
  children.add(pair);
  const code = await waitFor('the pairing request', () => {
    const pending = JSON.parse(cli(master.home, ['slave', 'pending', '--json']).stdout).pending;
    return pending.find((p) => p.host_id === 'fuzzed')?.pairing_code;
  });
  const approved = cli(master.home, ['slave', 'approve', 'fuzzed', code]);
  if (approved.code !== 0) throw new Error(`approve failed: ${approved.stderr}`);
  await new Promise((r) => pair.once('exit', r));
  return JSON.parse(readFileSync(join(home, 'slave-credentials.json'), 'utf8'));
}

async function healthy(master) {
  if (master.child.exitCode !== null) return 'the master process exited';
  try {
    const res = await fetch(`http://127.0.0.1:${master.mcpPort}/healthz`, {
      headers: { authorization: `Bearer ${master.token}` },
      signal: AbortSignal.timeout(HANG_MS),
    });
    await res.body?.cancel();
    if (!res.ok) return `/healthz answered ${res.status}`;
  } catch (err) {
    return `/healthz failed: ${err.message}`;
  }
  const info = cli(master.home, ['info', '--json']);
  if (info.code !== 0) return `the admin socket failed: ${info.stderr}`;
  const status = await pairRequest(master, Buffer.from('{}'), 'application/json').catch((e) => ({
    error: e,
  }));
  if (status.error || status.status >= 500)
    return `the cluster port failed: ${status.error?.message ?? status.status}`;
  return undefined;
}

function pairRequest(master, body, contentType) {
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: master.clusterPort,
        path: '/api/slave/pair',
        method: 'POST',
        ca: master.caPem,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': contentType, 'content-length': body.length },
        timeout: HANG_MS,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolvePromise({ status: res.statusCode }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('hang: no answer in 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}

// ---- generators ----

const deepJson = fc
  .tuple(fc.integer({ min: 1, max: 200_000 }), fc.constantFrom('[', '{"a":'))
  .map(([depth, open]) => open.repeat(depth));
const jsonRpcShape = fc.record(
  {
    jsonrpc: fc.constantFrom('2.0', '1.0', 2, null),
    id: fc.oneof(fc.integer(), fc.string({ maxLength: 40 }), fc.constant(null), fc.double()),
    method: fc.oneof(
      fc.constantFrom(
        'initialize',
        'tools/list',
        'tools/call',
        'prompts/get',
        'resources/read',
        'resources/subscribe',
        'completion/complete',
        'logging/setLevel',
        'ping',
        'notifications/initialized',
        'notifications/cancelled',
        'notifications/progress',
        'sampling/createMessage',
      ),
      fc.string({ maxLength: 60 }),
    ),
    params: fc.oneof(fc.jsonValue({ maxDepth: 6 }), fc.constant(undefined)),
    result: fc.jsonValue({ maxDepth: 4 }),
    error: fc.record({ code: fc.integer(), message: fc.string({ maxLength: 80 }) }),
  },
  { requiredKeys: [] },
);
const textBody = fc.oneof(
  { weight: 3, arbitrary: fc.json({ maxDepth: 8 }) },
  { weight: 3, arbitrary: jsonRpcShape.map((m) => JSON.stringify(m)) },
  { weight: 1, arbitrary: fc.array(jsonRpcShape, { maxLength: 5 }).map((m) => JSON.stringify(m)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 2000, unit: 'binary' }) },
  { weight: 1, arbitrary: deepJson },
);

/**
 * The inputs of one surface, generated a chunk at a time (a chunk's seed follows from the run's
 * seed), so that 100,000 inputs never sit in memory at once.
 */
function* inputsOf(arbitrary, n, surfaceSeed) {
  const CHUNK = 500;
  for (let start = 0; start < n; start += CHUNK) {
    yield* fc.sample(arbitrary, {
      numRuns: Math.min(CHUNK, n - start),
      seed: SEED + surfaceSeed * 1_000_003 + start,
    });
  }
}

/** Runs the inputs in batches of `parallel`, each with its own check. */
async function drive(surface, inputs, parallel, each) {
  let done = 0;
  const started = Date.now();
  let batch = [];
  const flush = async () => {
    await Promise.all(batch.map((input) => each(input).catch((err) => fail(surface, err.message, input))));
    done += batch.length;
    batch = [];
    // An in-process surface resolves only microtasks; let sockets and timers run between batches.
    await new Promise((r) => setImmediate(r));
  };
  for (const input of inputs) {
    batch.push(input);
    if (batch.length >= parallel) await flush();
    if (failures.length > 20) break;
  }
  await flush();
  return { done, seconds: (Date.now() - started) / 1000 };
}

// ---- surfaces ----

async function fuzzConfig() {
  const { parseMcpServersConfig } = await import(join(root, 'dist', 'config', 'mcpServers.js'));
  const { DianeError } = await import(join(root, 'dist', 'errors.js'));
  const entry = fc.record(
    {
      command: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
      args: fc.oneof(fc.array(fc.string()), fc.jsonValue()),
      env: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
      cwd: fc.jsonValue(),
      url: fc.oneof(fc.webUrl(), fc.string()),
      type: fc.oneof(fc.constantFrom('http', 'sse', 'stdio'), fc.string()),
      headers: fc.jsonValue(),
      enabled: fc.jsonValue(),
      timeout: fc.oneof(fc.string(), fc.integer(), fc.double()),
    },
    { requiredKeys: [] },
  );
  const config = fc.oneof(
    fc
      .dictionary(fc.string({ maxLength: 40 }), entry)
      .map((servers) => JSON.stringify({ mcpServers: servers })),
    fc.json({ maxDepth: 8 }),
    fc.string({ maxLength: 3000, unit: 'binary' }),
    deepJson,
  );
  return drive('config', inputsOf(config, INPUTS, 1), 1, async (text) => {
    let parsed;
    try {
      parsed = parseMcpServersConfig(text, 'fuzz.json');
    } catch (err) {
      // A file that is not a config at all is refused with a clear configuration error.
      if (err instanceof DianeError && /fuzz\.json: /.test(err.message)) return;
      throw new Error(`threw ${err?.name}: ${err?.message}`);
    }
    if (!parsed || !Array.isArray(parsed.servers) || !Array.isArray(parsed.errors)) {
      throw new Error('parseMcpServersConfig answered something that is not a config result');
    }
  });
}

async function fuzzPair(master) {
  // A real CSR to damage byte by byte: closer to valid DER than random bytes ever get.
  const { makeCsr } = await import(join(root, 'dist', 'pki', 'makeCsr.js'));
  const { csrPem } = await makeCsr('fuzz-host');
  const realDer = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const pem = (der) =>
    `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  const damaged = fc
    .array(fc.tuple(fc.nat(realDer.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
    .map((flips) => {
      const der = Buffer.from(realDer);
      for (const [at, byte] of flips) der[at] = byte;
      return der;
    });
  const body = fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.string({ maxLength: 70 }), damaged)
        .map(([h, der]) => JSON.stringify({ host_id: h, csr: pem(der) })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.stringMatching(/^[a-z0-9-]{1,20}$/), fc.uint8Array({ maxLength: 3000 }))
        .map(([h, der]) => JSON.stringify({ host_id: h, csr: pem(der) })),
    },
    { weight: 2, arbitrary: textBody },
    {
      weight: 1,
      arbitrary: fc
        .record(
          { host_id: fc.jsonValue(), csr: fc.jsonValue(), join_token: fc.jsonValue() },
          { requiredKeys: [] },
        )
        .map((o) => JSON.stringify(o)),
    },
  );
  const inputs = inputsOf(
    fc.tuple(body, fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', '')),
    INPUTS,
    2,
  );
  return drive('pair', inputs, 16, async ([text, type]) => {
    const { status } = await pairRequest(master, Buffer.from(text, 'utf8'), type);
    if (status >= 500) throw new Error(`answered ${status}`);
  });
}

async function fuzzMcp(master) {
  const header = fc.record(
    {
      'content-type': fc.oneof(
        fc.constantFrom('application/json', 'text/plain', 'application/json;charset=utf-8'),
        fc.string({ maxLength: 40 }),
      ),
      accept: fc.oneof(fc.constant('application/json, text/event-stream'), fc.string({ maxLength: 40 })),
      'mcp-session-id': fc.oneof(fc.uuid(), fc.string({ maxLength: 60 })),
      'mcp-protocol-version': fc.oneof(
        fc.constantFrom('2025-06-18', '2025-11-25', '2026-07-28', '1999-01-01'),
        fc.string({ maxLength: 20 }),
      ),
      origin: fc.oneof(
        fc.constantFrom('http://localhost', 'https://evil.example'),
        fc.string({ maxLength: 40 }),
      ),
    },
    { requiredKeys: [] },
  );
  const inputs = inputsOf(fc.tuple(textBody, header), INPUTS, 3);
  const printable = (v) => /^[\t\x20-\x7e]*$/.test(v);
  return drive('mcp', inputs, 16, async ([text, headers]) => {
    const sent = { authorization: `Bearer ${master.token}` };
    for (const [k, v] of Object.entries(headers)) if (printable(v)) sent[k] = v;
    const res = await fetch(`http://127.0.0.1:${master.mcpPort}/mcp`, {
      method: 'POST',
      headers: sent,
      body: text,
      signal: AbortSignal.timeout(HANG_MS),
    });
    // A valid initialize opens an SSE stream or a session; read a little and let go.
    await res.body?.cancel();
    if (res.status >= 500) throw new Error(`answered ${res.status}`);
  });
}

function openLink(creds) {
  return new Promise((resolvePromise, reject) => {
    const ws = new WebSocket(creds.ws_url, {
      cert: creds.client_cert,
      key: creds.client_key,
      ca: creds.ca_cert,
      checkServerIdentity: () => undefined,
      handshakeTimeout: HANG_MS,
    });
    ws.once('open', () => resolvePromise(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) =>
      reject(new Error(`upgrade refused with ${res.statusCode}`)),
    );
  });
}

/** The answers of a slave that serves nothing: enough for the master to keep the link. Returns the method answered. */
function answerAsSlave(ws, data) {
  let message;
  try {
    message = JSON.parse(String(data));
  } catch {
    return;
  }
  if (typeof message?.method !== 'string' || message.id === undefined) return;
  const empty = {
    initialize: {
      protocolVersion: message.params?.protocolVersion ?? '2025-11-25',
      capabilities: { tools: {}, prompts: {}, resources: {} },
      serverInfo: { name: 'fuzz-slave', version: '1' },
    },
    'tools/list': { tools: [] },
    'prompts/list': { prompts: [] },
    'resources/list': { resources: [] },
    'resources/templates/list': { resourceTemplates: [] },
    ping: {},
  }[message.method];
  const reply = empty
    ? { jsonrpc: '2.0', id: message.id, result: empty }
    : { jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'not served' } };
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(reply));
  return message.method;
}

async function fuzzLink(master) {
  const creds = await pairedCredentials(master);
  const frames = inputsOf(
    fc.oneof(
      { weight: 20, arbitrary: jsonRpcShape.map((m) => ({ kind: 'rpc', data: JSON.stringify(m) })) },
      {
        weight: 1,
        arbitrary: fc.string({ maxLength: 500, unit: 'binary' }).map((s) => ({ kind: 'garbage', data: s })),
      },
      {
        weight: 1,
        arbitrary: fc.uint8Array({ maxLength: 500 }).map((b) => ({ kind: 'binary', data: Buffer.from(b) })),
      },
      { weight: 1, arbitrary: deepJson.map((s) => ({ kind: 'deep', data: s })) },
    ),
    INPUTS,
    4,
  );
  let ws;
  let closed;
  const fresh = async () => {
    ws = await openLink(creds);
    closed = new Promise((r) => ws.once('close', (code) => r(code)));
    // Behave as a minimal slave, so that the link stays up and the frames below reach a live
    // session rather than a handshake that times out. Fuzzing starts once the master has read
    // the catalog: a fuzzed frame that happens to answer one of the handshake's own requests
    // (their ids are 0, 1, 2…) fails the handshake, which is right but tests nothing here.
    const catalogRead = new Set();
    const ready = new Promise((resolveReady) => {
      ws.on('message', (data) => {
        const method = answerAsSlave(ws, data);
        if (method?.endsWith('/list')) catalogRead.add(method);
        if (catalogRead.size >= 4) resolveReady();
      });
    });
    await Promise.race([ready, closed, sleep(HANG_MS)]);
  };
  await fresh();
  return drive('link', frames, 1, async (frame) => {
    if (ws.readyState !== WebSocket.OPEN) await fresh();
    ws.send(frame.data, { binary: frame.kind === 'binary' });
    if (frame.kind === 'rpc') return;
    let valid = false;
    try {
      JSON.parse(frame.data);
      valid = frame.kind !== 'binary';
    } catch {
      valid = false;
    }
    if (valid) return;
    const code = await Promise.race([closed, sleep(HANG_MS).then(() => 'hang')]);
    if (code === 'hang') throw new Error('a broken frame did not close the link');
    if (code !== 1007 && code !== 1009) throw new Error(`a broken frame closed the link with ${code}`);
  });
}

// ---- main ----

async function main() {
  log(`seed ${SEED}, ${INPUTS} inputs per surface, surfaces ${SURFACES.join(',')}`);
  const master = SURFACES.some((s) => s !== 'config') ? await startMaster() : undefined;
  const figures = [];
  for (const surface of SURFACES) {
    const run = { config: fuzzConfig, pair: fuzzPair, mcp: fuzzMcp, link: fuzzLink }[surface];
    if (!run) throw new Error(`unknown surface ${surface}`);
    const { done, seconds } = await run(master);
    const problem = master ? await healthy(master) : undefined;
    if (problem) fail(surface, `after the surface: ${problem}`, '');
    figures.push({
      surface,
      inputs: done,
      seconds,
      failures: failures.filter((f) => f.surface === surface).length,
    });
    log(`${surface}: ${done} inputs in ${seconds.toFixed(1)} s, ${figures.at(-1).failures} failures`);
  }
  process.stdout.write(`${JSON.stringify({ seed: SEED, figures, failures }, null, 2)}\n`);
  if (master && failures.length) process.stderr.write(`--- master stderr ---\n${master.stderr()}\n`);
  return failures.length === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`harness failed: ${err.stack ?? err.message}`);
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const home of homes) rmSync(home, { recursive: true, force: true });
}
process.exit(code);
