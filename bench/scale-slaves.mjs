#!/usr/bin/env node
// The simulated slaves of bench/scale.mjs, all in this one process (started by it, over IPC).
// Each one speaks the real link protocol: mutual TLS WebSocket to /slave/connect, then Diane's own
// slave-side MCP front (dist/mcp/frontServer.js) over a router whose one upstream has BENCH_TOOLS
// tools, exactly as `diane slave start` serves its router; heartbeats and reconnects with the
// slave agent's backoff (1 s base, 60 s cap, full jitter). They share one router: what the master
// sees of each is the same catalogue, `<host>_sim_<tool>`.
//
// Messages to the parent: { type: 'up', hostId, at } when the master has read every list of a
// link (the four list answers sent), { type: 'down', hostId, at } when a link drops.
// From the parent: { type: 'connect' } dials every slave (at once: a storm), { type: 'stop' }.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { startHeartbeat } from '../dist/cluster/heartbeat.js';
import { WebSocketTransport } from '../dist/cluster/webSocketTransport.js';
import { silentLogger } from '../dist/log.js';
import { Backoff } from '../dist/mcp/backoff.js';
import { createFrontServer } from '../dist/mcp/frontServer.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../dist/mcp/router.js';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const TOOLS = spec.tools;
const LISTS = new Set(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']);

/** About the size of a real tool definition (the 20,000 tools of the issue were 3.5 MB). */
function toolDefinition(i) {
  return {
    name: `tool_${String(i).padStart(2, '0')}`,
    description: `Simulated tool number ${i}: does one thing to a file or a record and returns its text.`,
    inputSchema: {
      type: 'object',
      properties: { path: { type: 'string', description: 'what to act on' } },
      required: ['path'],
    },
  };
}

const catalog = {
  tools: Array.from({ length: TOOLS }, (_, i) => toolDefinition(i)),
  prompts: [],
  resources: [],
  resourceTemplates: [],
};

const simUpstream = {
  name: 'sim',
  kind: 'stdio',
  status: () => ({
    name: 'sim',
    kind: 'stdio',
    state: 'connected',
    toolCount: TOOLS,
    promptCount: 0,
    resourceCount: 0,
    restarts: 0,
  }),
  catalog: () => catalog,
  serverCapabilities: () => ({ tools: {} }),
  request: async (method, params) =>
    method === 'tools/call' ? { content: [{ type: 'text', text: `ok ${params.name}` }] } : {},
  unavailableMessage: () => 'sim is not available',
  subscribe: () => () => {},
  stop: async () => {},
};

const router = new Router(
  { ...DEFAULT_ROUTER_SETTINGS, upstreamLimits: { maxEntries: 100_000, maxBytes: 1 << 30 } },
  silentLogger,
);
router.add(simUpstream);
const info = { name: 'diane-bench-slave', version: '0.0.0' };

let stopping = false;
const send = (message) => process.send?.(message);

/** A transport that reports which list requests came in and when their answers went out. */
function observed(inner, onListAnswered) {
  const asked = new Map();
  return {
    start: () => inner.start(),
    close: () => inner.close(),
    async send(message, options) {
      await inner.send(message, options);
      if (message.id !== undefined && asked.has(message.id)) {
        onListAnswered(asked.get(message.id));
        asked.delete(message.id);
      }
    },
    set onmessage(handler) {
      inner.onmessage = (message, extra) => {
        if (message.id !== undefined && LISTS.has(message.method)) asked.set(message.id, message.method);
        handler?.(message, extra);
      };
    },
    set onclose(handler) {
      inner.onclose = handler;
    },
    set onerror(handler) {
      inner.onerror = handler;
    },
    get sessionId() {
      return inner.sessionId;
    },
  };
}

function runSlave(slave) {
  const backoff = new Backoff({ baseMs: 1000, capMs: 60_000 });
  const dial = () => {
    if (stopping) return;
    const ws = new WebSocket(spec.wsUrl, {
      cert: slave.cert,
      key: slave.key,
      ca: spec.ca,
      minVersion: 'TLSv1.3',
      perMessageDeflate: false,
      handshakeTimeout: 15_000,
      maxPayload: 16 * 1024 * 1024,
      generateMask: (mask) => mask.fill(0),
      localAddress: slave.localAddress,
    });
    let front;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      const answered = new Set();
      const transport = observed(new WebSocketTransport(ws), (method) => {
        answered.add(method);
        if (answered.size === LISTS.size) send({ type: 'up', hostId: slave.hostId, at: Date.now() });
      });
      front = createFrontServer(router, info, { persistent: true });
      front.connect(transport).catch(() => ws.terminate());
      startHeartbeat(ws, { intervalMs: 10_000, timeoutMs: 30_000, onTimeout: () => ws.terminate() });
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      void front?.close().catch(() => {});
      if (opened) send({ type: 'down', hostId: slave.hostId, at: Date.now() });
      if (stopping) return;
      const delay = backoff.next();
      setTimeout(dial, delay).unref();
    });
    slave.ws = ws;
  };
  dial();
}

process.on('message', (message) => {
  if (message.type === 'connect') for (const slave of spec.slaves) runSlave(slave);
  if (message.type === 'stop') {
    stopping = true;
    for (const slave of spec.slaves) slave.ws?.terminate();
    setTimeout(() => process.exit(0), 200);
  }
});
send({ type: 'ready' });
