import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { type CliProcess, requestPairing, spawnCli, startSlave } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, repoRoot, writeServersConfig } from '../helpers/home.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The web console in a real browser: Chromium driven by playwright-core, against real processes
 * (a master with an MCP server and a broken config entry, `diane console`, a slave that pairs).
 */
const chromiumPath = [process.env.DIANE_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => Boolean(p) && existsSync(p!),
);
if (!chromiumPath) {
  process.stderr.write(
    'console.test.ts: no Chromium found (/usr/bin/chromium, /usr/bin/chromium-browser or $DIANE_CHROMIUM); ' +
      'the browser tests are skipped\n',
  );
}

const artifacts = join(repoRoot, 'test-artifacts', 'console');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

afterAll(() => cleanupProcesses());

/** A raw request to the console, with the headers a browser would not let a page choose. */
function rawRequest(
  base: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('diane console without a browser', () => {
  it('refuses a non-loopback --listen (usage error) and says when no daemon runs', async () => {
    const home = makeHome('c-usage');
    const wide = await runCli(home, ['console', '--listen', '0.0.0.0:0']);
    expect(wide.code).toBe(2);
    expect(wide.stderr).toContain('loopback addresses only');
    const noDaemon = await runCli(home, ['console']);
    expect(noDaemon.code).toBe(3);
    expect(noDaemon.stderr).toContain('No Diane daemon is running');
  });
});

describe('diane console --open', () => {
  it('hands the browser a 0600 page holding the login link, never the token on a command line, and removes it on exit', async () => {
    const home = makeHome('c-open');
    await startDaemon({ home });
    const seen = join(home, 'opener-saw.json');
    const opener = join(home, 'fake-browser.cjs');
    // Stands in for xdg-open: records its command line and what it could read of the page.
    writeFileSync(
      opener,
      `#!${process.execPath}\nconst fs = require('node:fs');\nconst file = process.argv[2];\n` +
        `fs.writeFileSync(${JSON.stringify(seen)}, JSON.stringify({ argv: process.argv.slice(2), ` +
        `mode: fs.statSync(file).mode & 0o777, page: fs.readFileSync(file, 'utf8') }));\n`,
      { mode: 0o700 },
    );
    const proc = spawnCli(home, ['console', '--open', '--json'], { BROWSER: opener });
    const line = await waitFor(
      () =>
        proc
          .stdout()
          .split('\n')
          .find((l) => l.startsWith('{')),
      {
        what: 'the console URL',
        timeoutMs: 20_000,
      },
    );
    const { url } = JSON.parse(line) as { url: string };
    const saw = await waitFor(() => (existsSync(seen) ? JSON.parse(readFileSync(seen, 'utf8')) : undefined), {
      what: 'the fake browser to run',
      timeoutMs: 20_000,
    });
    const token = new URL(url).searchParams.get('token')!;
    expect(saw.argv).toEqual([join(home, `console-login-${proc.pid}.html`)]);
    expect(saw.argv.join(' ')).not.toContain(token);
    expect(saw.mode).toBe(0o600);
    expect(saw.page).toContain(`<meta http-equiv="refresh" content="0;url=${url}">`);
    expect(saw.page).toContain('<meta name="referrer" content="no-referrer">');
    // The link in the page is the live one-time link.
    const login = await rawRequest(new URL(url).origin, `${new URL(url).pathname}${new URL(url).search}`);
    expect(login.status).toBe(303);
    proc.proc.kill('SIGTERM');
    await proc.exited;
    expect(existsSync(saw.argv[0])).toBe(false);
  });
});

describe.skipIf(!chromiumPath)('web console in Chromium (diane console, real master and slave)', () => {
  let master: DaemonHandle;
  let consoleProc: CliProcess;
  let loginUrl: string;
  let base: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let slave: CliProcess | undefined;

  const shoot = async (name: string) => {
    await page.setViewportSize(DESKTOP);
    await page.screenshot({ path: join(artifacts, `desktop-${name}.png`), fullPage: true });
    await page.setViewportSize(PHONE);
    await page.waitForFunction((width) => window.innerWidth === width, PHONE.width);
    await page.waitForTimeout(100);
    // At phone width the page is one column: only the tables scroll sideways, in their own box.
    const overflow = await page.evaluate(() => {
      const wide = [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.scroll'))
        .map((el) => `${el.tagName}.${el.className}`);
      return { width: document.documentElement.scrollWidth, wide };
    });
    expect(overflow).toEqual({ width: PHONE.width, wide: [] });
    await page.screenshot({ path: join(artifacts, `phone-${name}.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
  };

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    const home = makeHome('m-console');
    writeServersConfig(home, { mcpServers: { echo: echoServerEntry(), broken: { command: 42 } } });
    master = await startDaemon({ home });
    consoleProc = spawnCli(home, ['console', '--json']);
    const line = await waitFor(
      () =>
        consoleProc
          .stdout()
          .split('\n')
          .find((l) => l.startsWith('{')),
      {
        what: 'the console URL',
        timeoutMs: 20_000,
      },
    );
    loginUrl = JSON.parse(line).url;
    expect(loginUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/login\?token=[A-Za-z0-9_-]{43}$/);
    base = new URL(loginUrl).origin;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    context = await browser.newContext({ viewport: DESKTOP });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await slave?.stop();
    await consoleProc?.stop();
    await master?.stop();
  });

  it('logs in once with the one-time URL; a reused token and no token are refused', async () => {
    const res = await page.goto(loginUrl);
    expect(res?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe('/');
    await expect(page.locator('h1').textContent()).resolves.toBe('Hosts');
    const headers = await res!.allHeaders();
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['cache-control']).toBe('no-store');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    const other = await browser.newContext();
    const otherPage = await other.newPage();
    const reused = await otherPage.goto(loginUrl);
    expect(reused?.status()).toBe(401);
    await expect(otherPage.locator('main').textContent()).resolves.toContain('already used');
    await expect(otherPage.locator('main').textContent()).resolves.toContain('diane console');
    const none = await otherPage.goto(`${base}/servers`);
    expect(none?.status()).toBe(401);
    await other.close();

    // Outside the browser: a foreign Host (DNS rebinding), a POST without Origin or CSRF token.
    const session = `${cookie!.name}=${cookie!.value}`;
    expect((await rawRequest(base, '/', { headers: { host: 'evil.example', cookie: session } })).status).toBe(
      421,
    );
    const form = { 'content-type': 'application/x-www-form-urlencoded', cookie: session };
    expect(
      (await rawRequest(base, '/servers/reload', { method: 'POST', headers: form, body: '' })).status,
    ).toBe(403);
    const noCsrf = await rawRequest(base, '/servers/reload', {
      method: 'POST',
      headers: { ...form, origin: base },
      body: 'csrf=wrong',
    });
    expect(noCsrf.status).toBe(403);
    const evilOrigin = await rawRequest(base, '/servers/reload', {
      method: 'POST',
      headers: { ...form, origin: 'http://evil.example' },
      body: '',
    });
    expect(evilOrigin.status).toBe(403);
  });

  it('shows a pairing request live, approves it by the typed code, and the host connects', async () => {
    await page.goto(`${base}/pairing`);
    await expect(page.locator('#pending').textContent()).resolves.toContain('No pending pairing requests');
    const slaveHome = makeHome('s-console');
    writeServersConfig(slaveHome, { mcpServers: { tools: echoServerEntry({ name: 'slave-echo' }) } });
    const { pair, request: pending } = await requestPairing(master, slaveHome, 'web-host');
    // No reload: the page's own polling brings the request in.
    const row = page.locator('tr[data-host="web-host"]');
    await row.waitFor({ timeout: 15_000 });
    await expect(row.textContent()).resolves.toContain(pending.key_fingerprint);
    // The code is typed by the operator, never shown or pre-filled by the console.
    expect(await page.content()).not.toContain(pending.pairing_code);
    const code = page.getByLabel('Code shown on web-host');
    await expect(code.inputValue()).resolves.toBe('');
    await shoot('pairing');
    await code.pressSequentially(pending.pairing_code);
    await page.getByRole('button', { name: 'Approve' }).click();
    await expect(page.locator('.flash.ok').textContent()).resolves.toContain('Approved web-host');
    expect((await pair.exited).code).toBe(0);

    slave = startSlave(slaveHome);
    await page.goto(`${base}/`);
    // The Hosts page refreshes itself: wait for "connected" without reloading.
    await page
      .locator('tr[data-host="web-host"] .badge', { hasText: /^connected$/ })
      .waitFor({ timeout: 30_000 });
    await expect(page.locator('tr[data-host="web-host"]').textContent()).resolves.toMatch(/ago/);
    await shoot('hosts');
    // The README's screenshot is refreshed on request only: a test run leaves the tree clean.
    if (process.env.DIANE_UPDATE_SCREENSHOT === '1') {
      copyFileSync(join(artifacts, 'desktop-hosts.png'), join(repoRoot, 'docs', 'console.png'));
    }
  });

  it('calls a tool from the catalogue and shows the result escaped', async () => {
    // A slave's tool names its host and the slave's own server in separate columns.
    await page.goto(`${base}/catalogue?q=web-host`);
    const slaveTool = page.locator('tr[data-tool="web-host_tools_echo"] td');
    await slaveTool.first().waitFor();
    await expect(slaveTool.allTextContents()).resolves.toEqual(
      expect.arrayContaining(['web-host', 'tools', 'tools_echo']),
    );
    await page.goto(`${base}/catalogue?q=echo_echo`);
    await page.locator('tr[data-tool="echo_echo"]').waitFor();
    await expect(page.locator('tr[data-tool="echo_echo"] td').allTextContents()).resolves.toEqual(
      expect.arrayContaining(['local', 'echo', 'echo']),
    );
    await shoot('catalogue');
    await page.locator('tr[data-tool="echo_echo"] a', { hasText: 'Try' }).click();
    await page.getByLabel('Arguments (a JSON object)').fill('{"text": "<b id=\\"x\\">hi</b> & bye"}');
    await page.getByRole('button', { name: 'Call echo_echo' }).click();
    const result = page.locator('#call-result pre');
    await expect(result.first().textContent()).resolves.toBe('<b id="x">hi</b> & bye');
    expect(await page.locator('#call-result b').count()).toBe(0);
    await shoot('tool-call');
  });

  it('shows the broken config entry with its field path, and reloads', async () => {
    await page.goto(`${base}/servers`);
    await expect(page.locator('tr.config-issue').first().textContent()).resolves.toContain(
      'mcpServers.broken.command',
    );
    await expect(page.locator('tr[data-server="echo"]').textContent()).resolves.toContain('connected');
    await shoot('servers');
    await page.getByRole('button', { name: 'Reload mcp-servers.json' }).click();
    await expect(page.locator('.flash.ok').textContent()).resolves.toContain('Reloaded');
  });

  it('shows agents and the audit trail, with new rows appearing live', async () => {
    await page.goto(`${base}/activity`);
    await expect(page.locator('h1').textContent()).resolves.toBe('Activity');
    // A call made elsewhere (the CLI, through the daemon) shows up without reloading the page.
    const marker = `live-${Date.now()}`;
    const call = await runCli(master.home, [
      'tools',
      'call',
      'echo_echo',
      '--args',
      JSON.stringify({ text: marker }),
    ]);
    expect(call.code, call.stderr).toBe(0);
    await waitFor(
      async () => ((await page.locator('#audit-trail').textContent()) ?? '').split('echo_echo').length > 2,
      { what: 'the new audit row on the open Activity page' },
    );
    await shoot('activity');
  });

  it('revokes the host after a confirmation step and shows it cut off', async () => {
    await page.goto(`${base}/`);
    await page.locator('tr[data-host="web-host"] a', { hasText: 'Revoke' }).click();
    await expect(page.locator('h1').textContent()).resolves.toBe('Revoke web-host?');
    await shoot('revoke-confirm');
    await page.getByRole('button', { name: 'Yes, revoke web-host' }).click();
    await expect(page.locator('.flash.ok').textContent()).resolves.toContain('Revoked web-host');
    await expect(page.locator('tr[data-host="web-host"] .badge').textContent()).resolves.toBe('revoked');
    expect((await slave!.exited).code).toBe(10);
    slave = undefined;
  });
});
