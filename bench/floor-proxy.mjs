#!/usr/bin/env node
// The floor of bench/latency.mjs: the cheapest proxy with Diane's process topology, to tell what
// the hops themselves cost on this machine from what Diane adds on top. It moves bytes and
// nothing else: no MCP session (it answers `initialize` with a canned result), no schema or
// shape check, no name table, no audit, no id remapping (the bench's one session already uses
// unique ids), the response's id read from the tail of the upstream's line.
//
//   node bench/floor-proxy.mjs local     HTTP -> this process -> the echo fixture over stdio
//   node bench/floor-proxy.mjs routed    HTTP -> this process -> TLS WebSocket -> a child of
//                                        this script (`far`) -> the echo fixture over stdio
//
// Prints `listening <port>` on stdout once the upstream is initialized. Not a product: the
// proxy trusts every byte, which is exactly what a real one cannot do.
import { spawn } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { WebSocket, WebSocketServer } from 'ws';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const echoServer = join(root, 'test', 'fixtures', 'echo-server.mjs');
const PROTOCOL = '2025-06-18';
const SESSION_ID = 'floor-session';
const mode = process.argv[2];
const NEWLINE = Buffer.from('\n');
// Exit on the bench's SIGTERM, so that a --cpu-prof profile is written.
process.on('SIGTERM', () => process.exit(0));

/** The echo fixture over stdio, initialized; `send(line)` writes one line, `online(line)` reads. */
async function startEcho(online) {
  const child = spawn(process.execPath, [echoServer], { cwd: root, stdio: ['pipe', 'pipe', 'ignore'] });
  // Lines are found in each new chunk only and kept as Buffers: no decoding, no rescanning.
  let pending = [];
  let initialized;
  const ready = new Promise((r) => {
    initialized = r;
  });
  child.stdout.on('data', (chunk) => {
    let start = 0;
    for (let end = chunk.indexOf(10); end >= 0; end = chunk.indexOf(10, start)) {
      pending.push(chunk.subarray(start, end));
      const line = pending.length === 1 ? pending[0] : Buffer.concat(pending);
      pending = [];
      start = end + 1;
      if (tailId(line) === '"floor-init"') initialized();
      else online(line);
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  });
  const send = (line) => {
    child.stdin.write(typeof line === 'string' ? `${line}\n` : Buffer.concat([line, NEWLINE]));
  };
  send(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 'floor-init',
      method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'floor', version: '1' } },
    }),
  );
  await ready;
  send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  process.on('exit', () => child.kill());
  return send;
}

/** The id at the end of a response line as the SDK writes it: `…,"jsonrpc":"2.0","id":7}`. */
function tailId(line) {
  return /"id":(\d+|"[^"]*")}$/.exec(line.subarray(Math.max(0, line.length - 64)).toString())?.[1];
}

/** The HTTP front: answers the handshake itself, hands every other request to `forward`. */
function startFront(forward) {
  const waiting = new Map();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'DELETE' || body.includes('"method":"notifications/')) {
        res.writeHead(202).end();
        return;
      }
      const id = /"id":(\d+|"[^"]*")/.exec(body)?.[1];
      if (body.includes('"method":"initialize"')) {
        const result = {
          protocolVersion: PROTOCOL,
          capabilities: { tools: {} },
          serverInfo: { name: 'floor', version: '1' },
        };
        reply(res, `{"result":${JSON.stringify(result)},"jsonrpc":"2.0","id":${id}}`);
        return;
      }
      waiting.set(id, res);
      forward(Buffer.concat(chunks));
    });
  });
  const answer = (line) => {
    const id = tailId(line);
    const res = waiting.get(id);
    if (!res) return;
    waiting.delete(id);
    reply(res, line);
  };
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ port: server.address().port, answer })));
}

function reply(res, line) {
  const body = typeof line === 'string' ? Buffer.from(line) : line;
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': body.length,
    'mcp-session-id': SESSION_ID,
  });
  res.end(body);
}

/** A throw-away certificate for the WebSocket hop: P-256, as Diane's link uses. */
async function selfSigned() {
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
}

async function local() {
  let front;
  const send = await startEcho((line) => front.answer(line));
  front = await startFront(send);
  process.stdout.write(`listening ${front.port}\n`);
}

async function routed() {
  const { cert, key } = await selfSigned();
  const https = createHttpsServer({ cert, key, minVersion: 'TLSv1.3' });
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  const far = new Promise((r) => wss.once('connection', r));
  await new Promise((r) => https.listen(0, '127.0.0.1', r));
  const farArgs = [...process.execArgv, fileURLToPath(import.meta.url), 'far', String(https.address().port)];
  const child = spawn(process.execPath, farArgs, {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, FLOOR_CA: cert },
  });
  process.on('exit', () => child.kill('SIGTERM'));
  const ws = await far;
  const ready = new Promise((r) => ws.once('message', r)); // the far end's "ready"
  const front = await startFront((body) => ws.send(body, { binary: false }));
  ws.on('message', (data) => front.answer(data));
  await ready;
  process.stdout.write(`listening ${front.port}\n`);
}

async function farEnd(port) {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/`, {
    ca: process.env.FLOOR_CA,
    minVersion: 'TLSv1.3',
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    generateMask: (mask) => mask.fill(0),
  });
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const send = await startEcho((line) => ws.send(line, { binary: false }));
  ws.on('message', (data) => send(data));
  ws.on('close', () => process.exit(0));
  ws.send('ready');
}

if (mode === 'local') await local();
else if (mode === 'routed') await routed();
else if (mode === 'far') await farEnd(Number(process.argv[3]));
else {
  process.stderr.write('usage: node bench/floor-proxy.mjs local|routed\n');
  process.exit(2);
}
