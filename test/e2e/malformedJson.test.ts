import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { makeHome } from '../helpers/home.js';

afterAll(() => cleanupProcesses());

const DEPTH = 100_000;
const deepArray = `${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}`;
const deepObject = `${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}`;
/** Deep inside a JSON-RPC message, where the MCP layer would walk it. */
const deepParams = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":${deepArray}}}}`;
const deepInitialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"x":${deepArray}},"clientInfo":{"name":"t","version":"1"}}}`;

interface Reply {
  status: number;
  text: string;
}

function send(
  request: typeof httpRequest,
  url: string | undefined,
  options: Record<string, unknown>,
  body: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const done = (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    };
    const req = url === undefined ? request(options, done) : request(url, options, done);
    req.on('error', reject);
    req.end(body);
  });
}

describe('JSON bodies nested 100,000 deep answer 400, not 500', () => {
  it('on /mcp, the pairing endpoint and the admin socket', async () => {
    const master = await startDaemon({ home: makeHome('m-deep') });
    try {
      const info = JSON.parse((await runCli(master.home, ['info', '--json'])).stdout);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(info.mcp.token ? { authorization: `Bearer ${info.mcp.token}` } : {}),
      };
      const mcp = (body: string, extra: Record<string, string> = {}) =>
        send(httpRequest, master.mcpUrl, { method: 'POST', headers: { ...headers, ...extra } }, body);

      for (const body of [deepArray, deepObject, deepParams, deepInitialize]) {
        const reply = await mcp(body);
        expect(reply.status, reply.text.slice(0, 200)).toBe(400);
        expect(reply.text).toMatch(/nests deeper than 128 levels/);
      }

      // Inside an open 2025 session too, where the SDK transport used to parse the body itself.
      const sessionId = await sessionOf(master.mcpUrl, headers);
      const inSession = await mcp(deepParams, {
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      });
      expect(inSession.status, inSession.text.slice(0, 200)).toBe(400);

      const ca = readFileSync(join(master.home, 'slave-ca-cert.pem'), 'utf8');
      const pair = await send(
        httpsRequest as unknown as typeof httpRequest,
        `https://127.0.0.1:${master.clusterPort}/api/slave/pair`,
        { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
        // Under the endpoint's 32 KB limit, which answers 413 first.
        `{"host_id":"ws1","csr":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
      );
      expect(pair.status, pair.text.slice(0, 200)).toBe(400);

      const admin = await send(
        httpRequest,
        undefined,
        {
          socketPath: join(master.home, 'diane.sock'),
          path: '/api/slave/deny',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        `{"host_id":${deepObject}}`,
      );
      expect(admin.status, admin.text.slice(0, 200)).toBe(400);

      // And the daemon is unharmed.
      const health = await fetch(`http://127.0.0.1:${master.port}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await master.stop();
    }
  });
});

/** Opens a 2025 session and returns its id. */
async function sessionOf(url: string, headers: Record<string, string>): Promise<string> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'mcp-protocol-version': '2025-06-18' },
    body: '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}',
  });
  await res.body?.cancel();
  const id = res.headers.get('mcp-session-id');
  if (!id) throw new Error(`no session id (HTTP ${res.status})`);
  return id;
}
