import { afterAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../src/config/paths.js';
import { type AuditRecord, openSlaveAuditStore, openStore } from '../../src/store/index.js';
import { runCli } from '../helpers/cli.js';
import { spawnCli } from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { makeHome, removeHomes } from '../helpers/home.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => {
  cleanupProcesses();
  removeHomes();
});

const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000);

function row(overrides: Partial<AuditRecord>): AuditRecord {
  return {
    at: minutesAgo(1),
    agent: 'claude',
    kind: 'tools/call',
    exposedName: 'ws1_fs_read',
    host: 'ws1',
    server: 'fs',
    originalName: 'read',
    durationMs: 42,
    outcome: 'ok',
    error: null,
    bytesIn: 10,
    bytesOut: 2048,
    arguments: null,
    callId: null,
    ...overrides,
  };
}

/** Writes rows into the home's database the way the daemon's AuditLog would, before it starts. */
async function prefillMaster(home: string, rows: AuditRecord[]): Promise<void> {
  const store = openStore(homePaths(home).db);
  try {
    await store.auditEvents.insertMany(rows);
  } finally {
    await store.close();
  }
}

/** Whether the text carries an escape or a bidi override as such (not as an escape sequence). */
function hasRawControls(text: string): boolean {
  return text.includes('\u001b') || text.includes('\u202e');
}

function ndjson(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('diane audit (real master, trail written before it started)', () => {
  it('prints the trail as a table or NDJSON, filters it, and refuses bad filters', async () => {
    const home = makeHome('m-audit');
    await prefillMaster(home, [
      row({ at: minutesAgo(180), agent: 'old-bot', exposedName: 'fs_list', host: null }),
      row({ agent: 'claude', outcome: 'tool_error', error: 'no such file\nat line 2' }),
      row({ agent: 'cursor', outcome: 'refused_scope', exposedName: 'ws2_shell_exec', host: 'ws2' }),
      // A name from a slave that tries to clear the admin's screen.
      row({ agent: 'claude', exposedName: 'ws1_\u001b[2Jevil\u202e', arguments: '{"token":"[redacted]"}' }),
    ]);
    const master = await startDaemon({ home });
    try {
      const json = await runCli(home, ['audit', '--json']);
      expect(json.code).toBe(0);
      const events = ndjson(json.stdout);
      expect(events.map((e) => e.id)).toEqual([1, 2, 3, 4]);
      expect(events[3]).toMatchObject({
        agent: 'claude',
        exposed_name: 'ws1_\u001b[2Jevil\u202e',
        arguments: { token: '[redacted]' },
      });
      expect(hasRawControls(json.stdout)).toBe(false);

      const table = await runCli(home, ['audit', '--agent', 'claude']);
      expect(table.code).toBe(0);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(
        /^TIME\s+AGENT\s+KIND\s+NAME\s+HOST\s+OUTCOME\s+DURATION\s+BYTES IN\/OUT\s+ERROR$/,
      );
      expect(lines).toHaveLength(3);
      expect(lines[1]).toMatch(
        /claude\s+tools\/call\s+ws1_fs_read\s+ws1\s+tool_error\s+42ms\s+10\/2\.0K\s+no such file at line 2$/,
      );
      expect(lines[2]).toContain('ws1_\\x1b[2Jevil\\u202e');
      expect(hasRawControls(table.stdout)).toBe(false);

      expect(ndjson((await runCli(home, ['audit', '--json', '--host', 'ws2'])).stdout)).toMatchObject([
        { agent: 'cursor', outcome: 'refused_scope' },
      ]);
      expect(
        ndjson((await runCli(home, ['audit', '--json', '--outcome', 'refused_scope'])).stdout),
      ).toHaveLength(1);
      expect(
        ndjson((await runCli(home, ['audit', '--json', '--since', '1h'])).stdout).map((e) => e.id),
      ).toEqual([2, 3, 4]);
      expect(
        ndjson((await runCli(home, ['audit', '--json', '--until', '1h'])).stdout).map((e) => e.id),
      ).toEqual([1]);
      expect(ndjson((await runCli(home, ['audit', '--json', '--kind', 'prompts/get'])).stdout)).toEqual([]);

      const limited = await runCli(home, ['audit', '--limit', '2']);
      expect(limited.stdout.trimEnd().split('\n')).toHaveLength(3);
      expect(limited.stderr).toMatch(/older events not shown/);

      const none = await runCli(home, ['audit', '--agent', 'nobody']);
      expect(none).toMatchObject({ code: 0, stdout: 'No audit events.\n' });

      const badOutcome = await runCli(home, ['audit', '--outcome', 'fine']);
      expect(badOutcome.code).toBe(2);
      expect(badOutcome.stderr).toMatch(/Allowed choices are ok, tool_error/);
      const badSince = await runCli(home, ['audit', '--since', 'yesterday']);
      expect(badSince.code).toBe(2);
      expect(badSince.stderr).toMatch(/--since: expected a duration back from now/);
      const badLimit = await runCli(home, ['audit', '--limit', '0']);
      expect(badLimit.code).toBe(2);
    } finally {
      await master.stop();
    }
  });

  it('applies --audit-retention and --audit-max-rows when it starts', async () => {
    const home = makeHome('m-audit-ret');
    await prefillMaster(home, [
      row({ at: minutesAgo(3 * 24 * 60), exposedName: 'too_old' }),
      ...Array.from({ length: 1005 }, (_, i) => row({ exposedName: `recent_${i}` })),
    ]);
    const master = await startDaemon({ home, args: ['--audit-retention', '2d', '--audit-max-rows', '1000'] });
    try {
      await waitFor(
        async () => {
          const events = ndjson((await runCli(home, ['audit', '--json', '--limit', '10000'])).stdout);
          return events.length === 1000 && events[0]!.exposed_name === 'recent_5';
        },
        { what: 'retention at start' },
      );
    } finally {
      await master.stop();
    }
  });

  it('says how to start a daemon when none is running', async () => {
    const result = await runCli(makeHome('m-audit-none'), ['audit']);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/No Diane daemon is running/);
  });
});

describe('diane slave audit (reads slave-audit.db directly)', () => {
  it('needs the file, prints it with the master agent, and follows new rows by polling', async () => {
    const home = makeHome('s-audit');
    const missing = await runCli(home, ['slave', 'audit']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no slave audit yet .*slave-audit\.db.*diane slave start/);

    const store = openSlaveAuditStore(homePaths(home).slaveAudit);
    try {
      await store.auditEvents.insertMany([
        row({ agent: 'claude', exposedName: 'fs_read', outcome: 'ok' }),
        row({ agent: null, exposedName: 'fs_write', outcome: 'cancelled' }),
      ]);
      const json = await runCli(home, ['slave', 'audit', '--json']);
      expect(json.code).toBe(0);
      const events = ndjson(json.stdout);
      expect(events).toHaveLength(2);
      expect(Object.keys(events[0]!).slice(0, 4)).toEqual(['id', 'at', 'master_agent', 'kind']);
      expect(events[0]).not.toHaveProperty('host');
      expect(events[0]).not.toHaveProperty('agent');
      expect(events[0]).toMatchObject({ master_agent: 'claude', exposed_name: 'fs_read' });

      const table = await runCli(home, ['slave', 'audit', '--outcome', 'cancelled']);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^TIME\s+MASTER AGENT\s+KIND\s+NAME\s+OUTCOME\s/);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatch(/\s-\s+tools\/call\s+fs_write\s+cancelled\s/);

      const follow = spawnCli(home, ['slave', 'audit', '--follow', '--json', '--master-agent', 'claude']);
      await waitFor(() => follow.stderr().includes('Following the slave audit'), { what: 'the follower' });
      expect(ndjson(follow.stdout())).toHaveLength(1);
      await store.auditEvents.insertMany([
        row({ agent: 'someone-else', exposedName: 'fs_skip' }),
        row({ agent: 'claude', exposedName: 'fs_new' }),
      ]);
      await waitFor(() => ndjson(follow.stdout()).length === 2, { what: 'the new row' });
      expect(ndjson(follow.stdout())[1]).toMatchObject({ id: 4, exposed_name: 'fs_new' });
      expect((await follow.stop('SIGINT')).code).toBe(0);
    } finally {
      await store.close();
    }
  });
});
