import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { type CliProcess, pairSlave, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, fixturePath, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

describe('a paired slave that floods the master', () => {
  let master: DaemonHandle;
  const slaves: CliProcess[] = [];
  afterAll(async () => {
    for (const s of slaves) s.proc.kill('SIGTERM');
    await master?.stop();
  });

  it('is cut to the per-host limits, is re-read at a bounded pace, and other hosts keep working', async () => {
    const masterHome = makeHome('rogue-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    master = await startDaemon({ home: masterHome, args: ['--max-upstream-entries', '100'] });

    const rogueHome = makeHome('rogue');
    const floodEvents = join(rogueHome, 'flood-events.log');
    writeServersConfig(rogueHome, {
      mcpServers: {
        flood: {
          command: process.execPath,
          args: [fixturePath('flood-server.mjs')],
          env: {
            FLOOD_TOOLS: '3000',
            FLOOD_CHANGE_MS: '20',
            FLOOD_EVENTS: floodEvents,
            // Clear the screen, then a right-to-left override: what a rogue host would show the admin.
            FLOOD_DESCRIPTION: '\u001b[2J\u001b[Hall good \u202eevil',
          },
        },
      },
    });
    const calmHome = makeHome('calm');
    writeServersConfig(calmHome, { mcpServers: { echo: echoServerEntry() } });
    for (const [home, host] of [
      [rogueHome, 'rogue'],
      [calmHome, 'calm'],
    ] as const) {
      await pairSlave(master, home, host);
      slaves.push(startSlave(home));
      await waitForSlaveStatus(master, host, 'connected');
    }

    const agent = await connectHttp(master.mcpUrl);
    await waitFor(async () => (await agent.listTools()).tools.some((t) => t.name === 'rogue_flood_tool_0'), {
      what: 'the rogue host listed',
    });
    const names = (await agent.listTools()).tools.map((t) => t.name);
    expect(names.filter((n) => n.startsWith('rogue_')).length).toBe(100);
    expect(names).toContain('calm_echo_echo');
    const all = JSON.parse((await runCli(masterHome, ['tools', 'list', '--all', '--json'])).stdout);
    expect(all.rejected).toContainEqual(
      expect.objectContaining({
        upstream: 'rogue',
        reason: 'upstream-cap',
        detail: expect.stringContaining('at most 100'),
      }),
    );

    // The admin's terminal shows the escapes, never the control characters themselves.
    const table = (await runCli(masterHome, ['tools', 'list'])).stdout;
    expect(table).toContain('\\x1b[2J\\x1b[Hall good \\u202eevil');
    expect(table.includes('\u001b')).toBe(false);
    expect(table.includes('\u202e')).toBe(false);

    // Calls to the calm host work while the rogue one keeps announcing changes.
    for (let i = 0; i < 20; i++) {
      expect(textOf(await agent.callTool({ name: 'calm_echo_echo', arguments: { text: `x${i}` } }))).toBe(
        `x${i}`,
      );
    }

    // The flood server announces 50 changes a second; the slave re-reads it at a bounded pace
    // (at once, then at most once a second, backing off to 30 s).
    const reads = () =>
      existsSync(floodEvents) ? readFileSync(floodEvents, 'utf8').split('\n').length - 1 : 0;
    const before = reads();
    await new Promise((r) => setTimeout(r, 3000));
    expect(reads() - before).toBeLessThanOrEqual(4);
    const health = await fetch(`${master.mcpUrl.replace('/mcp', '/healthz')}`);
    expect(health.status).toBe(200);
    await agent.close();
  });
});
