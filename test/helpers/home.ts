import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where package.json and bin/diane.js are). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The diane CLI entry. It runs dist/, so `npm run build` must have run. */
export const dianeBin = join(repoRoot, 'bin', 'diane.js');

const homes = new Set<string>();
let cleanupInstalled = false;

/**
 * A fresh, empty DIANE_HOME (mode 0700) under the temp dir, removed when the test process
 * exits unless DIANE_TEST_KEEP_HOMES=1. Kept short: the admin socket lives in it, and Unix
 * socket paths are limited to about 100 bytes.
 */
export function makeHome(prefix = 'home'): string {
  const base = tmpdir().length > 40 ? '/tmp' : tmpdir();
  const safe = prefix.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 20);
  const home = mkdtempSync(join(base, `diane-${safe}-`));
  chmodSync(home, 0o700);
  homes.add(home);
  if (!cleanupInstalled) {
    cleanupInstalled = true;
    process.once('exit', () => removeHomes());
  }
  return home;
}

/**
 * Removes every home made so far by this test process (for afterAll). Vitest may end a worker
 * without an 'exit' event, so do not rely on the exit hook alone. DIANE_TEST_KEEP_HOMES=1 keeps them.
 */
export function removeHomes(): void {
  if (process.env.DIANE_TEST_KEEP_HOMES === '1') return;
  for (const dir of homes) rmSync(dir, { recursive: true, force: true });
  homes.clear();
}

/** Writes `$home/mcp-servers.json` (mode 0600) from `config`, e.g. `{ mcpServers: {...} }`. */
export function writeServersConfig(home: string, config: unknown): string {
  const file = join(home, 'mcp-servers.json');
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** Absolute path of a file in test/fixtures. */
export function fixturePath(name: string): string {
  return join(repoRoot, 'test', 'fixtures', name);
}

export interface EchoServerOptions {
  /** FIXTURE_NAME (server name in serverInfo and event lines). */
  name?: string;
  /** FIXTURE_EVENTS: the file that gets the fixture's event lines. */
  events?: string;
  /** FIXTURE_EXTRA_TOOLS: extra echo tools; a repeated name is listed twice. */
  extraTools?: string[];
  /** FIXTURE_CRASH_ON_START=1: a permanently broken upstream. */
  crashOnStart?: boolean;
  /** More environment for the fixture. */
  env?: Record<string, string>;
  /** More fields of the config entry (`timeout`, `cwd`, ...). */
  extra?: Record<string, unknown>;
}

export interface StdioServerEntry {
  command: string;
  args: string[];
  env: Record<string, string>;
  [field: string]: unknown;
}

/** An `mcpServers` stdio entry that runs test/fixtures/echo-server.mjs with this Node. */
export function echoServerEntry(opts: EchoServerOptions = {}): StdioServerEntry {
  const env: Record<string, string> = {};
  if (opts.name !== undefined) env.FIXTURE_NAME = opts.name;
  if (opts.events !== undefined) env.FIXTURE_EVENTS = opts.events;
  if (opts.extraTools !== undefined) env.FIXTURE_EXTRA_TOOLS = opts.extraTools.join(',');
  if (opts.crashOnStart) env.FIXTURE_CRASH_ON_START = '1';
  Object.assign(env, opts.env);
  return {
    command: process.execPath,
    args: [fixturePath('echo-server.mjs')],
    env,
    ...opts.extra,
  };
}

/** process.env without DIANE_* variables (so the developer's own settings never leak in). */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith('DIANE_')) continue;
    env[key] = value;
  }
  return env;
}

/** An `mcpServers` stdio entry for `@modelcontextprotocol/server-filesystem` serving `root`. */
export function filesystemServerEntry(root: string): StdioServerEntry {
  return {
    command: process.execPath,
    args: [join(repoRoot, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js'), root],
    env: {},
  };
}
