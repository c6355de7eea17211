import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { AgentDirectory } from '../../src/mcp/agentIdentity.js';
import { HttpFront, type SessionLimits } from '../../src/mcp/httpFront.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import { Scope } from '../../src/mcp/scope.js';

const TOKEN = 't'.repeat(43);
const AUTH = { authorization: `Bearer ${TOKEN}` };
const fronts: HttpFront[] = [];

/** A directory of one agent, the way the daemon's AgentService answers. */
function oneAgent(token: string): AgentDirectory {
  const agent = { name: 'owner', scope: Scope.full(), recordArguments: false };
  return { authenticate: (given) => (given === token ? agent : undefined) };
}

afterEach(async () => {
  for (const front of fronts.splice(0)) await front.close();
});

async function startFront(sessions: SessionLimits, token: string | undefined = TOKEN) {
  const front = new HttpFront({
    router: new Router(DEFAULT_ROUTER_SETTINGS, silentLogger),
    info: { name: 'diane-test', version: '0' },
    host: '127.0.0.1',
    port: 0,
    ...(token === undefined ? {} : { agents: oneAgent(token) }),
    logger: silentLogger,
    maxRequestBytes: 1024 * 1024,
    sessions,
    health: () => ({}),
  });
  fronts.push(front);
  const { port } = await front.listen();
  return { front, url: `http://127.0.0.1:${port}/mcp`, port };
}

async function initialize(url: string, headers: Record<string, string> = AUTH) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'u', version: '1' } },
    }),
  });
  await res.text();
  return { status: res.status, session: res.headers.get('mcp-session-id') ?? '' };
}

async function ping(url: string, session: string): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
      ...AUTH,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  });
  await res.text();
  return res.status;
}

describe('HttpFront sessions per credential', () => {
  it('refuses a new session at the cap while the others are in use', async () => {
    const { url, front } = await startFront({ maxPerCredential: 2, reclaimIdleMs: 60_000 });
    const a = await initialize(url);
    const b = await initialize(url);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await initialize(url)).status).toBe(429);
    expect(front.sessionCount).toBe(2);
    expect(await ping(url, a.session)).toBe(200);
    expect(await ping(url, b.session)).toBe(200);
  });

  it('reclaims the least recently used idle session of the same credential', async () => {
    const { url } = await startFront({ maxPerCredential: 2, reclaimIdleMs: 0 });
    const a = await initialize(url);
    const b = await initialize(url);
    await ping(url, b.session);
    const c = await initialize(url);
    expect(c.status).toBe(200);
    expect(await ping(url, a.session)).toBe(404);
    expect(await ping(url, b.session)).toBe(200);
  });

  it('never reclaims a session with an open stream', async () => {
    const { url, port } = await startFront({ maxPerCredential: 1, reclaimIdleMs: 0 });
    const a = await initialize(url);
    // The standalone GET stream an SDK client keeps open.
    const stream = request({
      host: '127.0.0.1',
      port,
      path: '/mcp',
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': a.session,
        'mcp-protocol-version': '2025-06-18',
        ...AUTH,
      },
    });
    const opened = new Promise<number>((resolve) =>
      stream.once('response', (res) => resolve(res.statusCode ?? 0)),
    );
    stream.end();
    expect(await opened).toBe(200);
    expect((await initialize(url)).status).toBe(429);
    stream.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect((await initialize(url)).status).toBe(200);
  });

  it('does not let an unauthenticated caller open or use sessions', async () => {
    const { url, front } = await startFront({ maxPerCredential: 5, reclaimIdleMs: 0 });
    const a = await initialize(url);
    for (let i = 0; i < 10; i++) expect((await initialize(url, {})).status).toBe(401);
    expect(front.sessionCount).toBe(1);
    const stolen = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'mcp-session-id': a.session },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
    });
    expect(stolen.status).toBe(401);
  });
});
