import { chmodSync, chownSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The home is trusted like ssh's StrictModes: a home others can change, a file someone else
 * owns, or a secret others can read stops every command that reads the home, with the fix.
 */

afterAll(() => cleanupProcesses());

const CONFIG_EXIT = 5;
/** nobody: "someone else" for planted files (the tests run as root, so chown works). */
const OTHER_UID = 65534;
const asRoot = process.geteuid?.() === 0;

/** `diane serve` on ports of no consequence: it must refuse before listening anywhere. */
const serve = (home: string) =>
  runCli(home, ['serve', '--mcp-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0'], { timeoutMs: 20_000 });

/** A stdio server entry that leaves `marker` behind if it is ever run. */
function markerServer(marker: string) {
  return {
    command: process.execPath,
    args: ['-e', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`],
  };
}

describe('home trust', () => {
  it('refuses a world-writable home, says how to fix it, and creates nothing in it', async () => {
    const home = makeHome('ww');
    chmodSync(home, 0o777);
    const res = await serve(home);
    expect(res.code).toBe(CONFIG_EXIT);
    expect(res.stderr).toContain(`refusing to use the Diane home ${home}`);
    expect(res.stderr).toContain(`fix: chmod 700 ${home}`);
    expect(readdirSync(home)).toEqual([]);
    expect(statSync(home).mode & 0o777).toBe(0o777);

    chmodSync(home, 0o700);
    const daemon = await startDaemon({ home });
    await daemon.stop();
  });

  it.runIf(asRoot)('does not run a planted mcp-servers.json owned by someone else', async () => {
    const home = makeHome('planted');
    const marker = join(home, 'planted-ran');
    const file = writeServersConfig(home, { mcpServers: { evil: markerServer(marker) } });
    chownSync(file, OTHER_UID, OTHER_UID);
    const res = await serve(home);
    expect(res.code).toBe(CONFIG_EXIT);
    expect(res.stderr).toContain(`${file} belongs to uid ${OTHER_UID}`);
    await sleep(300);
    expect(existsSync(marker)).toBe(false);
  });

  it('refuses a group-writable mcp-servers.json without running it', async () => {
    const home = makeHome('gw');
    const marker = join(home, 'gw-ran');
    const file = writeServersConfig(home, { mcpServers: { evil: markerServer(marker) } });
    chmodSync(file, 0o664);
    const res = await serve(home);
    expect(res.code).toBe(CONFIG_EXIT);
    expect(res.stderr).toContain(`fix: chmod go-w ${file}`);
    await sleep(300);
    expect(existsSync(marker)).toBe(false);
  });

  it('does not use a planted 0644 agent-token', async () => {
    const home = makeHome('token');
    const file = join(home, 'agent-token');
    const planted = 'P'.repeat(43);
    writeFileSync(file, `${planted}\n`, { mode: 0o644 });
    chmodSync(file, 0o644);
    const res = await serve(home);
    expect(res.code).toBe(CONFIG_EXIT);
    expect(res.stderr).toContain(`fix: chmod 600 ${file}`);
    expect(res.stderr).not.toContain(planted);
    // Removing it is the fix when someone else could have read it: a fresh token is generated.
    rmSync(file);
    const daemon = await startDaemon({ home });
    expect(daemon.token).not.toBe(planted);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await daemon.stop();
  });

  it('creates diane.db and its -wal/-shm files 0600, even under umask 000', async () => {
    const home = makeHome('db');
    writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
    const previous = process.umask(0o000);
    let daemon: Awaited<ReturnType<typeof startDaemon>>;
    try {
      daemon = await startDaemon({ home });
    } finally {
      process.umask(previous);
    }
    try {
      const db = join(home, 'diane.db');
      await waitFor(() => existsSync(`${db}-wal`) && existsSync(`${db}-shm`), { what: 'the WAL files' });
      for (const name of [
        'diane.db',
        'diane.db-wal',
        'diane.db-shm',
        'agent-token',
        'slave-ca-key.pem',
        'server-key.pem',
      ])
        expect({ name, mode: statSync(join(home, name)).mode & 0o777 }).toEqual({ name, mode: 0o600 });
      // The CLI trusts what the daemon made.
      expect((await runCli(home, ['info'])).code).toBe(0);
    } finally {
      await daemon.stop();
    }
  });

  it('refuses a home made by an older Diane with a 0644 database, and leaves the mode alone', async () => {
    const home = makeHome('old');
    writeServersConfig(home, { mcpServers: {} });
    const daemon = await startDaemon({ home });
    await daemon.stop();
    const db = join(home, 'diane.db');
    chmodSync(db, 0o644);
    const res = await serve(home);
    expect(res.code).toBe(CONFIG_EXIT);
    expect(res.stderr).toContain(`fix: chmod 600 ${db}`);
    expect(statSync(db).mode & 0o777).toBe(0o644);
  });

  it('stops the other commands that read the home: info, mcp, tools, slave start/stop/pair', async () => {
    const home = makeHome('cli');
    writeServersConfig(home, { mcpServers: {} });
    const daemon = await startDaemon({ home });
    try {
      chmodSync(home, 0o777);
      for (const args of [
        ['info'],
        ['mcp'],
        ['tools', 'list'],
        ['slave', 'start'],
        ['slave', 'stop'],
        [
          'slave',
          'pair',
          '--master=https://127.0.0.1:1',
          '--host-id=trust',
          `--ca-fingerprint=sha256:${'0'.repeat(64)}`,
        ],
      ]) {
        const res = await runCli(home, args, { timeoutMs: 20_000 });
        expect({ args, code: res.code }).toEqual({ args, code: CONFIG_EXIT });
        expect(res.stderr).toContain(`fix: chmod 700 ${home}`);
      }
    } finally {
      chmodSync(home, 0o700);
      await daemon.stop();
    }
  });
});
