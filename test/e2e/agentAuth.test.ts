import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, connectStdioBridge, textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Agents authenticate on every address, loopback included; `--agent-auth none` is a loopback-only
 * opt-out. Origin is validated as the MCP spec requires, Host also on /healthz, and one
 * credential's sessions are capped without evicting anyone.
 */

afterAll(() => cleanupProcesses());

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};
const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** One raw initialize POST; the session (if any) is left open. */
async function rawInitialize(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...headers },
    body: JSON.stringify(INIT),
  });
  const text = await res.text();
  return { status: res.status, session: res.headers.get('mcp-session-id'), text };
}

/** The status of one request sent with node:http, which (unlike fetch) lets a test set Host. */
function statusOf(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? JSON.stringify(INIT) : undefined);
  });
}

async function echoTools(home: string): Promise<void> {
  await waitFor(async () => (await runCli(home, ['tools', 'list', '--json'])).stdout.includes('echo_echo'), {
    what: 'echo tools',
    timeoutMs: 30_000,
  });
}

describe('agent authentication (default: bearer token, loopback included)', () => {
  let home: string;
  let daemon: DaemonHandle;

  beforeAll(async () => {
    home = makeHome('auth');
    writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
    daemon = await startDaemon({ home, args: ['--max-sessions-per-token', '4'] });
    await echoTools(home);
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('refuses a local caller without the token, on loopback', async () => {
    const anonymous = await rawInitialize(daemon.mcpUrl);
    expect(anonymous.status).toBe(401);
    expect(anonymous.session).toBeNull();
    const wrong = await rawInitialize(daemon.mcpUrl, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    // The 2026-07-28 per-request path is behind the same door.
    const modern = await fetch(daemon.mcpUrl, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2026-07-28' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
    });
    expect(modern.status).toBe(401);
    await expect(connectHttp(daemon.mcpUrl, { token: false })).rejects.toThrow();
  });

  it('`diane info` prints ready-to-paste Claude Code and Cursor configs that carry the token', async () => {
    const res = await runCli(home, ['info']);
    expect(res.code).toBe(0);
    const header = `Authorization: Bearer ${daemon.token}`;
    expect(res.stdout).toContain(
      `claude mcp add --transport http diane ${daemon.mcpUrl} --header "${header}"`,
    );
    const cursorLine = res.stdout.split('\n').find((l) => l.trim().startsWith('{"mcpServers"'));
    const cursor = JSON.parse(cursorLine!.trim());
    expect(cursor).toEqual({
      mcpServers: { diane: { url: daemon.mcpUrl, headers: { Authorization: `Bearer ${daemon.token}` } } },
    });
    // What the Cursor config says is enough to call a tool.
    const { url, headers } = cursor.mcpServers.diane;
    const agent = await connectHttp(url, { headers, token: false });
    expect(textOf(await agent.callTool({ name: 'echo_echo', arguments: { text: 'pasted' } }))).toBe('pasted');
    await agent.close();
    const json = JSON.parse((await runCli(home, ['info', '--json'])).stdout);
    expect(json.mcp).toMatchObject({ tokenRequired: true, token: daemon.token });
  });

  it('`diane mcp` reads the token by itself', async () => {
    const bridge = await connectStdioBridge(home);
    expect(textOf(await bridge.callTool({ name: 'echo_echo', arguments: { text: 'bridged' } }))).toBe(
      'bridged',
    );
    await bridge.close();
  });

  it('refuses a browser Origin that is not loopback, and accepts a loopback one', async () => {
    const evil = await rawInitialize(daemon.mcpUrl, {
      ...daemon.authHeaders,
      origin: 'https://evil.example',
    });
    expect(evil.status).toBe(403);
    expect(evil.text).toContain('Invalid Origin');
    const opaque = await rawInitialize(daemon.mcpUrl, { ...daemon.authHeaders, origin: 'null' });
    expect(opaque.status).toBe(403);
    const local = await connectHttp(daemon.mcpUrl, { headers: { origin: 'http://localhost:5173' } });
    expect((await local.listTools()).tools.length).toBeGreaterThan(0);
    await local.close();
  });

  it('checks Host on /healthz too (DNS rebinding)', async () => {
    const host = `attacker.example:${daemon.port}`;
    expect(await statusOf(daemon.port, 'GET', '/healthz')).toBe(200);
    expect(await statusOf(daemon.port, 'GET', '/healthz', { host: `localhost:${daemon.port}` })).toBe(200);
    expect(await statusOf(daemon.port, 'GET', '/healthz', { host })).toBe(403);
    expect(
      await statusOf(daemon.port, 'POST', '/mcp', { ...daemon.authHeaders, ...JSON_HEADERS, host }),
    ).toBe(403);
  });
});

describe('sessions per token, allowed origins', () => {
  let home: string;
  let daemon: DaemonHandle;

  beforeAll(async () => {
    home = makeHome('sessions');
    writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
    daemon = await startDaemon({
      home,
      args: ['--max-sessions-per-token', '4', '--allow-origin', 'app.example'],
    });
    await echoTools(home);
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('accepts an Origin allowed with --allow-origin, and only that one', async () => {
    const allowed = await rawInitialize(daemon.mcpUrl, {
      ...daemon.authHeaders,
      origin: 'https://app.example',
    });
    expect(allowed.status).toBe(200);
    await fetch(daemon.mcpUrl, {
      method: 'DELETE',
      headers: { ...daemon.authHeaders, 'mcp-session-id': allowed.session! },
    });
    const other = await rawInitialize(daemon.mcpUrl, {
      ...daemon.authHeaders,
      origin: 'https://evil.app.example',
    });
    expect(other.status).toBe(403);
  });

  it('caps sessions per token: the next one is refused, and nobody is evicted', async () => {
    const first = await connectHttp(daemon.mcpUrl, { name: 'first' });
    const others = [];
    for (let i = 0; i < 3; i++) others.push(await connectHttp(daemon.mcpUrl, { name: `other-${i}` }));
    // The attack: a flood of new sessions used to push the first one out (LRU). Without
    // the token it cannot even start; with it, it hits the cap of its own credential.
    const strangers = [];
    for (let i = 0; i < 10; i++) strangers.push((await rawInitialize(daemon.mcpUrl)).status);
    expect(new Set(strangers)).toEqual(new Set([401]));
    const flood = [];
    for (let i = 0; i < 20; i++) flood.push(await rawInitialize(daemon.mcpUrl, daemon.authHeaders));
    expect(new Set(flood.map((r) => r.status))).toEqual(new Set([429]));
    expect(flood[0]!.text).toContain('Too many sessions');
    expect(JSON.parse(flood[0]!.text)).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
    expect(textOf(await first.callTool({ name: 'echo_echo', arguments: { text: 'still here' } }))).toBe(
      'still here',
    );
    // Closing a session makes room again.
    await others.pop()!.close();
    const again = await connectHttp(daemon.mcpUrl, { name: 'again' });
    await again.close();
    await first.close();
    for (const o of others) await o.close();
  });
});

describe('--agent-auth none', () => {
  it('is allowed on loopback, with a warning', async () => {
    const home = makeHome('noauth');
    writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
    const daemon = await startDaemon({ home, env: { DIANE_AGENT_AUTH: 'none' } });
    try {
      expect(daemon.stderr()).toContain('WARNING: --agent-auth none');
      await echoTools(home);
      const anonymous = await connectHttp(daemon.mcpUrl, { token: false });
      expect(textOf(await anonymous.callTool({ name: 'echo_echo', arguments: { text: 'open' } }))).toBe(
        'open',
      );
      await anonymous.close();
      const info = await runCli(home, ['info']);
      expect(info.stdout).toContain(`claude mcp add --transport http diane ${daemon.mcpUrl}\n`);
      expect(info.stdout).toContain('Agent auth:    NONE');
      expect(JSON.parse((await runCli(home, ['info', '--json'])).stdout).mcp.tokenRequired).toBe(false);
      // Origin still applies without a token.
      expect((await rawInitialize(daemon.mcpUrl, { origin: 'https://evil.example' })).status).toBe(403);
    } finally {
      await daemon.stop();
    }
  });

  it.each([
    ['0.0.0.0:0', '0.0.0.0'],
    ['[::]:0', '::'],
  ])('is refused with a usage error on %s', async (listen, host) => {
    const home = makeHome('noauth-net');
    const res = await runCli(
      home,
      ['serve', '--agent-auth', 'none', '--mcp-listen', listen, '--listen', '127.0.0.1:0'],
      {
        timeoutMs: 20_000,
      },
    );
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--agent-auth none is allowed only when --mcp-listen is a loopback address');
    expect(res.stderr).toContain(`not ${host}`);
    // Refused before anything is written.
    expect(readdirSync(home)).toEqual([]);
  });

  it('rejects an unknown mode', async () => {
    const res = await runCli(makeHome('badauth'), ['serve', '--agent-auth', 'maybe']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('Allowed choices are token, none');
  });
});
