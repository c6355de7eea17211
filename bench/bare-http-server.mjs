#!/usr/bin/env node
// The baseline of bench/latency.mjs: a bare v2 SDK Streamable HTTP server (stateful, one
// McpServer + NodeStreamableHTTPServerTransport per mcp-session-id) with the fixture's `echo`
// and `big` tools, and nothing else: no proxy, no per-call logging. Listens on 127.0.0.1 on a
// port chosen by the OS and prints `listening <port>` on stdout.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import { isInitializeRequest, McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { bigText } from '../test/fixtures/tools.mjs';

/** @type {Map<string, NodeStreamableHTTPServerTransport>} */
const sessions = new Map();

function newServer() {
  const mcp = new McpServer({ name: 'bare', version: '1.0.0' });
  mcp.registerTool(
    'echo',
    { description: 'returns its text', inputSchema: z.object({ text: z.string() }) },
    ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  mcp.registerTool(
    'big',
    {
      description: 'one text content of exactly `bytes` characters',
      inputSchema: z.object({
        bytes: z
          .number()
          .int()
          .min(0)
          .max(64 * 1024 * 1024),
      }),
    },
    ({ bytes }) => ({ content: [{ type: 'text', text: bigText(bytes) }] }),
  );
  return mcp;
}

function fail(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

const http = createServer(async (req, res) => {
  try {
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const transport = sessions.get(sessionId);
      if (!transport) return fail(res, 404, 'Session not found');
      return await transport.handleRequest(req, res);
    }
    if (req.method !== 'POST') return fail(res, 400, 'no session id');
    const body = await readJson(req);
    if (!isInitializeRequest(body)) return fail(res, 400, 'no session id, and not an initialize request');
    const mcp = newServer();
    const transport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      maxRequestBodySize: 16 * 1024 * 1024,
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (err) {
    process.stderr.write(`bare server: ${err instanceof Error ? err.stack : String(err)}\n`);
    if (!res.headersSent) fail(res, 500, 'internal error');
    else res.end();
  }
});
http.keepAliveTimeout = 65_000;

http.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${http.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
