import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { type CliProcess, pairSlave, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
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

const available = await postgresAvailable('e2e: diane serve --store postgres://');
const schema = newSchemaName('diane_e2e');

afterAll(async () => {
  await cleanupProcesses();
  if (available) await dropSchemas([schema]);
});

describe.skipIf(!available)(
  'diane serve --store postgres://: a real master keeps its state in PostgreSQL',
  () => {
    let master: DaemonHandle;
    let slave: CliProcess | undefined;
    let slaveHome: string;

    beforeAll(async () => {
      master = await startDaemon({ home: makeHome('m-pg'), args: ['--store', storeUrlFor(schema)] });
      slaveHome = makeHome('s-pg');
      writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry({ name: 'pg-echo' }) } });
    });

    afterAll(async () => {
      await slave?.stop().catch(() => undefined);
      await master?.stop().catch(() => undefined);
    });

    it('pairs a slave and routes a call, with every row in PostgreSQL and no diane.db', async () => {
      await pairSlave(master, slaveHome, 'pgws');
      slave = startSlave(slaveHome);
      await waitForSlaveStatus(master, 'pgws', 'connected');

      const agent = await connectHttp(master.mcpUrl);
      try {
        const result = await agent.callTool({
          name: 'pgws_echo_echo',
          arguments: { text: 'through postgres' },
        });
        expect(textOf(result)).toContain('through postgres');
      } finally {
        await agent.close();
      }

      const slaves = await queryTestServer<{ host_id: string; enabled: number; ca_fingerprint: string }>(
        `SELECT host_id, enabled, ca_fingerprint FROM ${schema}.slave_servers`,
      );
      expect(slaves).toEqual([
        { host_id: 'pgws', enabled: 1, ca_fingerprint: expect.stringMatching(/^sha256:/) },
      ]);
      const requests = await queryTestServer<{ status: string }>(
        `SELECT status FROM ${schema}.pairing_requests`,
      );
      expect(requests).toEqual([{ status: 'approved' }]);
      expect(
        (await queryTestServer<{ name: string }>(`SELECT name FROM ${schema}.agents`)).map((a) => a.name),
      ).toEqual(['owner']);
      // The audit trail is written in batches, shortly after the call.
      await waitFor(
        async () =>
          (
            await queryTestServer<{ exposed_name: string }>(
              `SELECT exposed_name FROM ${schema}.audit_events WHERE outcome = 'ok'`,
            )
          ).find((row) => row.exposed_name === 'pgws_echo_echo'),
        { what: 'the audit row of the call in PostgreSQL' },
      );
      expect(existsSync(join(master.home, 'diane.db'))).toBe(false);

      // The admin API reads the same rows.
      const audit = await runCli(master.home, ['audit', '--json']);
      expect(audit.stdout).toContain('pgws_echo_echo');
    });

    it('revokes through the store: the link is cut and the revocation is in PostgreSQL', async () => {
      const revoked = await runCli(master.home, ['slave', 'revoke', 'pgws', '--yes']);
      expect(revoked.code).toBe(0);
      const rows = await queryTestServer<{ host_id: string }>(
        `SELECT host_id FROM ${schema}.revoked_slave_credentials`,
      );
      expect(rows).toEqual([{ host_id: 'pgws' }]);
      await waitFor(async () => (await slave!.exited).code !== null, { what: 'the revoked slave exits' });
    });
  },
);

describe('diane serve --store: refusals', () => {
  it('refuses a store that is neither sqlite: nor postgres://, with the usage exit code', async () => {
    const home = makeHome('m-badstore');
    const result = await runCli(home, [
      'serve',
      '--store',
      'mysql://db/diane',
      '--mcp-listen',
      '127.0.0.1:0',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/neither sqlite:<path> nor a postgres:\/\//);
  });

  it('says an unreachable PostgreSQL server is unreachable, with the store exit code', async () => {
    const home = makeHome('m-nopg');
    const result = await runCli(home, [
      'serve',
      '--store',
      'postgres://postgres:secret@127.0.0.1:1/test',
      '--mcp-listen',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
    ]);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      /cannot reach the PostgreSQL server of postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test/,
    );
    expect(result.stderr).not.toContain('secret');
  });
});
