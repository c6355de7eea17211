import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminClient } from '../../src/admin/adminClient.js';
import { ConsoleAuth } from '../../src/console/auth.js';
import { ConsoleServer } from '../../src/console/consoleServer.js';
import { escapeHtml, html } from '../../src/console/html.js';
import { pendingVersion } from '../../src/console/pages.js';
import { silentLogger } from '../../src/log.js';

const EVIL = '<script>alert(1)</script>"\'&';

function fakeAdmin() {
  const calls: { method: string; args: unknown[] }[] = [];
  const pending = [
    {
      host_id: `evil${EVIL}`,
      pairing_code: '482-193',
      source_address: '192.0.2.7',
      key_fingerprint: 'sha256:abc',
      requested_at: new Date().toISOString(),
      expires_at: new Date(Date.now() + 600_000).toISOString(),
      age_seconds: 3,
      re_pair: false,
    },
  ];
  const record =
    (method: string, result: unknown) =>
    async (...args: unknown[]) => {
      calls.push({ method, args });
      return result;
    };
  const admin = {
    info: record('info', { pair_command: 'diane slave pair ...' }),
    slaveHealth: record('slaveHealth', {
      slaves: [
        {
          host_id: `h${EVIL}`,
          status: 'connected',
          enabled: true,
          tool_count: 2,
          cert_serial: '01',
          cert_expires_at: '2030-01-01T00:00:00.000Z',
          cert_issued_at: '2029-01-01T00:00:00.000Z',
          renewal_pending: false,
          renewal_error: EVIL,
        },
      ],
    }),
    pending: record('pending', { pending }),
    approve: record('approve', {
      status: 'approved',
      host_id: 'x',
      cert_serial: '02',
      expires_at: 'later',
      re_pair: false,
    }),
    deny: record('deny', { status: 'denied', host_id: 'x' }),
    reload: record('reload', { added: [], removed: [], restarted: [], unchanged: ['a'], configErrors: [] }),
    servers: record('servers', {
      servers: [],
      disabled: [],
      configErrors: [{ server: 'broken', path: `mcpServers.broken.${EVIL}`, message: EVIL }],
      configWarnings: [],
      configFile: '/x/mcp-servers.json',
    }),
  };
  return { admin: admin as unknown as AdminClient, calls };
}

let server: ConsoleServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start() {
  const { admin, calls } = fakeAdmin();
  server = new ConsoleServer({
    admin,
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger,
    auth: new ConsoleAuth('c', Date.now, 'login-token'),
  });
  const { port, url } = await server.start();
  return { port, url, calls, base: `http://127.0.0.1:${port}` };
}

function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function login(url: string): Promise<string> {
  const res = await send(url);
  expect(res.status).toBe(303);
  expect(res.headers.location).toBe('/');
  return String(res.headers['set-cookie']).split(';')[0]!;
}

function csrfOf(page: string): string {
  return /name="csrf" value="([^"]+)"/.exec(page)![1]!;
}

describe('html escaping', () => {
  it('escapes every interpolated value, keeps nested html, drops null/false', () => {
    expect(escapeHtml(EVIL)).toBe('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;');
    const inner = html`<b>${EVIL}</b>`;
    expect(html`<p title="${EVIL}">${inner}${[EVIL, inner]}${null}${false}${0}</p>`.text).toBe(
      `<p title="${escapeHtml(EVIL)}"><b>${escapeHtml(EVIL)}</b>${escapeHtml(EVIL)}<b>${escapeHtml(EVIL)}</b>0</p>`,
    );
  });
});

describe('console server', () => {
  it('listens on loopback only', () => {
    const { admin } = fakeAdmin();
    expect(() => new ConsoleServer({ admin, host: '0.0.0.0', port: 0, logger: silentLogger })).toThrow(
      /loopback/,
    );
  });

  it('answers 429 with Retry-After once too many wrong login links were tried', async () => {
    const { base } = await start();
    for (let i = 0; i < 10; i++) expect((await send(`${base}/login?token=wrong-${i}`)).status).toBe(401);
    const closed = await send(`${base}/login?token=login-token`);
    expect(closed.status).toBe(429);
    expect(Number(closed.headers['retry-after'])).toBeGreaterThan(50);
    expect(closed.body).toContain('Too many wrong login links');
    expect(closed.headers['set-cookie']).toBeUndefined();
  });

  it('logs in once, sets security headers, refuses a foreign Host and requests without a session', async () => {
    const { url, base, port } = await start();
    expect(url).toBe(`${base}/login?token=login-token`);
    expect((await send(`${base}/`)).status).toBe(401);
    const cookie = await login(url);
    const page = await send(`${base}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'/);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).not.toContain('<script>alert');
    expect(page.body).toContain(escapeHtml(`h${EVIL}`));
    expect(page.body).not.toMatch(/<script>(?!<\/script>)|onclick|style="/);
    const again = await send(url);
    expect(again.status).toBe(401);
    expect(again.body).toContain('already used');
    const rebound = await send(`${base}/`, { headers: { cookie, host: `evil.example:${port}` } });
    expect(rebound.status).toBe(421);
    const htmx = await send(`${base}/static/htmx.min.js`);
    expect(htmx.status).toBe(200);
    expect(htmx.headers['content-type']).toContain('javascript');
  });

  it('POSTs need the Origin of the console and the session CSRF token', async () => {
    const { url, base, calls } = await start();
    const cookie = await login(url);
    const csrf = csrfOf((await send(`${base}/servers`, { headers: { cookie } })).body);
    const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
    const post = (headers: Record<string, string>, body: string) =>
      send(`${base}/servers/reload`, { method: 'POST', headers: { ...form, ...headers }, body });
    expect((await post({}, `csrf=${csrf}`)).status).toBe(403);
    expect((await post({ origin: 'http://evil.example' }, `csrf=${csrf}`)).status).toBe(403);
    expect((await post({ origin: base }, 'csrf=nope')).status).toBe(403);
    expect((await post({ origin: base }, '')).status).toBe(403);
    expect(calls.some((c) => c.method === 'reload')).toBe(false);
    const ok = await post({ origin: base }, `csrf=${encodeURIComponent(csrf)}`);
    expect(ok.status).toBe(303);
    expect(calls.filter((c) => c.method === 'reload')).toHaveLength(1);
    const htmxHeader = await post({ origin: base, 'x-csrf-token': csrf }, '');
    expect(htmxHeader.status).toBe(303);
    const next = await send(`${base}/servers`, { headers: { cookie } });
    expect(next.body).toContain('Reloaded');
    expect(next.body).toContain(escapeHtml(`mcpServers.broken.${EVIL}`));
  });

  it('never shows the pairing code; approves with the typed one; denies by fingerprint', async () => {
    const { url, base, calls } = await start();
    const cookie = await login(url);
    const page = await send(`${base}/pairing`, { headers: { cookie } });
    expect(page.body).not.toContain('482-193');
    expect(page.body).toMatch(/name="code"[^>]* value=""/);
    const csrf = csrfOf(page.body);
    const headers = { cookie, origin: base, 'content-type': 'application/x-www-form-urlencoded' };
    const host = `evil${EVIL}`;
    const approve = new URLSearchParams({ csrf, host, fingerprint: 'sha256:abc', code: '111-222' });
    expect(
      (await send(`${base}/pairing/approve`, { method: 'POST', headers, body: approve.toString() })).status,
    ).toBe(303);
    expect(calls.find((c) => c.method === 'approve')?.args).toEqual([host, '111-222']);
    const deny = new URLSearchParams({ csrf, host, fingerprint: 'sha256:abc' });
    expect(
      (await send(`${base}/pairing/deny`, { method: 'POST', headers, body: deny.toString() })).status,
    ).toBe(303);
    expect(calls.find((c) => c.method === 'deny')?.args).toEqual([host, '482-193']);
  });

  it('the pending poll answers 204 while nothing changed', async () => {
    const { url, base } = await start();
    const cookie = await login(url);
    const page = await send(`${base}/pairing`, { headers: { cookie } });
    const poll = /hx-get="(\/fragments\/pending\?v=[0-9a-f]+)"/.exec(page.body)![1]!;
    expect((await send(`${base}${poll}`, { headers: { cookie } })).status).toBe(204);
    expect((await send(`${base}/fragments/pending?v=old`, { headers: { cookie } })).status).toBe(200);
    expect(pendingVersion([])).not.toBe(poll);
  });
});
