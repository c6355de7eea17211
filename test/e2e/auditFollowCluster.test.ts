import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { spawnCli } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import {
  dropSchemas,
  newSchemaName,
  postgresAvailable,
  queryTestServer,
  storeUrlFor,
} from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const available = await postgresAvailable('e2e: audit follow across masters');
const schema = newSchemaName('diane_e2e_follow');

afterAll(async () => {
  await cleanupProcesses();
  if (available) await dropSchemas([schema]);
});

function ndjson(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * Two real masters sharing one PostgreSQL schema, each with its own MCP server (`echoa` on a,
 * `echob` on b). `diane audit --follow --json` on a must print every call made through either
 * master exactly once, while both write their audit batches at the same time.
 */
describe.skipIf(!available)('diane audit --follow with several masters on one PostgreSQL store', () => {
  let a: DaemonHandle;
  let b: DaemonHandle;

  afterAll(async () => {
    await Promise.all([a?.stop().catch(() => undefined), b?.stop().catch(() => undefined)]);
  });

  it("shows every call of both masters, once each, in id order, on one master's follower", async () => {
    const homeA = makeHome('follow-a');
    const homeB = makeHome('follow-b');
    writeServersConfig(homeA, { mcpServers: { echoa: echoServerEntry({ name: 'echo-a' }) } });
    writeServersConfig(homeB, { mcpServers: { echob: echoServerEntry({ name: 'echo-b' }) } });
    const store = ['--store', storeUrlFor(schema)];
    a = await startDaemon({ home: homeA, args: store });
    // The owner's token is in the shared store: b's agents use the same one.
    copyFileSync(join(homeA, 'agent-token'), join(homeB, 'agent-token'));
    chmodSync(join(homeB, 'agent-token'), 0o600);
    b = await startDaemon({ home: homeB, args: store });

    const follow = spawnCli(homeA, ['audit', '--follow', '--json']);
    try {
      await waitFor(() => follow.stderr().includes('Following the audit trail'), { what: 'the follower' });
      const [agentA, agentB] = await Promise.all([connectHttp(a.mcpUrl), connectHttp(b.mcpUrl)]);
      const perMaster = 25;
      try {
        // Both masters' calls at once, in bursts, so that their audit batches overlap.
        for (let burst = 0; burst < 5; burst++) {
          await Promise.all(
            Array.from({ length: perMaster / 5 }, (_, i) => [
              agentA.callTool({ name: 'echoa_echo', arguments: { text: `a${burst}-${i}` } }),
              agentB.callTool({ name: 'echob_echo', arguments: { text: `b${burst}-${i}` } }),
            ]).flat(),
          );
        }
        expect(textOf(await agentB.callTool({ name: 'echob_echo', arguments: { text: 'last' } }))).toBe(
          'last',
        );
      } finally {
        await Promise.all([agentA.close(), agentB.close()]);
      }
      const calls = () => ndjson(follow.stdout()).filter((e) => String(e.exposed_name).startsWith('echo'));
      await waitFor(() => calls().length >= 2 * perMaster + 1, {
        what: 'every call of both masters on the follower',
        timeoutMs: 15_000,
      });
      // Anything late (a repeat) would show within a few polls.
      await new Promise((resolve) => setTimeout(resolve, 800));
      const followed = calls();
      const ids = followed.map((e) => Number(e.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(followed.filter((e) => e.exposed_name === 'echoa_echo')).toHaveLength(perMaster);
      expect(followed.filter((e) => e.exposed_name === 'echob_echo')).toHaveLength(perMaster + 1);
      expect(followed.every((e) => e.outcome === 'ok' && e.agent === 'owner')).toBe(true);
      // Exactly what the shared table holds.
      const stored = await queryTestServer<{ id: number }>(
        `SELECT id::int AS id FROM ${schema}.audit_events WHERE exposed_name LIKE 'echo%' ORDER BY id`,
      );
      expect(stored.map((r) => r.id)).toEqual(ids);

      // And `audit list` on b reads the same trail, with its filters.
      const listed = ndjson(
        (await runCli(homeB, ['audit', '--json', '--limit', '1000', '--agent', 'owner'])).stdout,
      ).filter((e) => e.exposed_name === 'echoa_echo');
      expect(listed.map((e) => e.id)).toEqual(
        followed.filter((e) => e.exposed_name === 'echoa_echo').map((e) => e.id),
      );
    } finally {
      await follow.stop('SIGINT');
    }
  }, 120_000);
});
