import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { migrations } from '../../src/store/index.js';
import { connectAgent } from '../helpers/agents.js';
import { runCli } from '../helpers/cli.js';
import { pairSlave, spawnCli, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, connectStdioBridge, textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface AuditRow {
  id: number;
  agent: string | null;
  kind: string;
  exposed_name: string | null;
  host: string | null;
  server: string | null;
  original_name: string | null;
  outcome: string;
  arguments: unknown;
  bytes_in: number | null;
  bytes_out: number | null;
}

async function addAgent(master: DaemonHandle, name: string, args: string[]): Promise<string> {
  const res = await runCli(master.home, ['agents', 'add', name, ...args, '--json']);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout).token;
}

async function audit(home: string, args: string[] = [], command = ['audit']): Promise<AuditRow[]> {
  const res = await runCli(home, [...command, '--json', '--limit', '1000', ...args]);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

const names = async (client: { listTools(): Promise<{ tools: { name: string }[] }> }) =>
  (await client.listTools()).tools.map((t) => t.name).sort();

describe('agents: identities, scopes and the audit trail', () => {
  it('two agents see and call exactly their scope on HTTP (both eras) and the bridge; rotation and scope changes apply to live sessions; every outcome is audited', async () => {
    const masterHome = makeHome('agents-master');
    // The master's own server hides `add` (host consent applies on the master too).
    writeServersConfig(masterHome, { mcpServers: { echo: { ...echoServerEntry(), hide: ['add'] } } });
    const master = await startDaemon({ home: masterHome, args: ['--call-timeout', '1s'] });
    const slaveHomes = { ws1: makeHome('agents-ws1'), ws2: makeHome('agents-ws2') };
    for (const [host, home] of Object.entries(slaveHomes)) {
      writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
      await pairSlave(master, home, host);
      startSlave(home);
      await waitForSlaveStatus(master, host, 'connected');
    }
    const owner = await connectHttp(master.mcpUrl);
    await waitFor(async () => (await names(owner)).includes('ws2_echo_echo'), { what: 'every host listed' });

    // alpha: the master's own tools and ws1; beta: ws2 but not its `add`, and it records arguments.
    const alphaToken = await addAgent(master, 'alpha', ['--allow', 'host:local', '--allow', 'host:ws1']);
    const betaToken = await addAgent(master, 'beta', [
      '--allow',
      'ws2_*',
      '--deny',
      'tool:*_add',
      '--record-arguments',
    ]);
    const alpha = await connectHttp(master.mcpUrl, { token: alphaToken });
    const alphaModern = await connectAgent(master.mcpUrl, {
      name: 'alpha-2026',
      modern: true,
      token: alphaToken,
    });
    const beta = await connectHttp(master.mcpUrl, { token: betaToken });
    const betaBridge = await connectStdioBridge(masterHome, {
      args: ['--agent', 'beta'],
      env: { DIANE_AGENT_TOKEN: betaToken },
    });
    const alphaTools = (await names(owner)).filter((n) => /^(echo|ws1)_/.test(n));
    expect(await names(alpha)).toEqual(alphaTools);
    expect(await names(alphaModern)).toEqual(alphaTools);
    const betaTools = (await names(owner)).filter((n) => n.startsWith('ws2_') && !n.endsWith('_add'));
    expect(await names(beta)).toEqual(betaTools);
    expect(await names(betaBridge)).toEqual(betaTools);
    expect(alphaTools).not.toContain('echo_add');

    // In scope: calls work, on every front.
    const echo = (client: typeof alpha, name: string, text: string) =>
      client.callTool({ name, arguments: { text } });
    expect(textOf(await echo(alpha, 'ws1_echo_echo', 'a1'))).toBe('a1');
    expect(textOf(await echo(alphaModern as never, 'echo_echo', 'a2'))).toBe('a2');
    expect(textOf(await echo(betaBridge as never, 'ws2_echo_echo', 'b1'))).toBe('b1');
    expect(
      textOf(await beta.callTool({ name: 'ws2_echo_echo', arguments: { text: 'b2', token: 'hunter2' } })),
    ).toBe('b2');

    // Out of scope answers exactly like a name that exists nowhere.
    const failure = async (client: typeof alpha, name: string) =>
      client.callTool({ name, arguments: { text: 'x' } }).then(
        (r) => ({ result: r }),
        (err: { code?: number; message: string }) => ({ code: err.code, message: err.message }),
      );
    const outOfScope = await failure(alpha, 'ws2_echo_echo');
    const unknown = await failure(owner, 'ws2_echo_nothing');
    expect(outOfScope).toEqual({
      ...unknown,
      message: unknown.message.replace('ws2_echo_nothing', 'ws2_echo_echo'),
    });
    expect(outOfScope.message).toMatch(/Unknown tool: ws2_echo_echo/);
    expect(await failure(beta, 'ws2_echo_add')).toMatchObject({
      message: expect.stringMatching(/Unknown tool: ws2_echo_add/),
    });
    // A tool the master's own server hides is refused for the owner too.
    expect(await failure(owner, 'echo_add')).toMatchObject({
      message: expect.stringMatching(/Unknown tool: echo_add/),
    });

    // Every outcome is audited: ok, tool error, protocol error, timeout, cancelled, refusals.
    await owner.callTool({ name: 'ws1_echo_fail', arguments: {} });
    await owner.readResource({ uri: 'diane://echo/fixture://nothing-here' }).catch(() => undefined);
    const timedOut = await owner.callTool({ name: 'echo_slow', arguments: { ms: 5000, steps: 1 } });
    expect(timedOut.isError).toBe(true);
    const abort = new AbortController();
    const cancelled = owner.callTool(
      { name: 'ws1_echo_slow', arguments: { ms: 5000, steps: 1 } },
      { signal: abort.signal },
    );
    setTimeout(() => abort.abort(), 300);
    await expect(cancelled).rejects.toThrow();
    // Concurrent calls are audited without loss.
    await Promise.all(Array.from({ length: 40 }, (_, i) => echo(owner, 'ws2_echo_echo', `c${i}`)));

    const rows = await waitFor(
      async () => {
        const all = await audit(masterHome);
        const outcomes = new Set(all.map((r) => r.outcome));
        const done = [
          'ok',
          'tool_error',
          'protocol_error',
          'timeout',
          'cancelled',
          'refused_scope',
          'refused_host',
        ];
        return (
          done.every((o) => outcomes.has(o)) &&
          all.filter((r) => r.exposed_name === 'ws2_echo_echo').length >= 43 &&
          all
        );
      },
      { what: 'every outcome in the audit', timeoutMs: 15_000 },
    );
    expect(rows.find((r) => r.exposed_name === 'ws1_echo_echo' && r.agent === 'alpha')).toMatchObject({
      kind: 'tools/call',
      host: 'ws1',
      server: 'echo',
      original_name: 'echo',
      outcome: 'ok',
    });
    expect(rows.find((r) => r.outcome === 'refused_scope')).toMatchObject({
      agent: 'alpha',
      exposed_name: 'ws2_echo_echo',
    });
    expect(rows.find((r) => r.outcome === 'refused_host')).toMatchObject({
      agent: 'owner',
      host: 'local',
      server: 'echo',
      original_name: 'add',
    });
    expect(rows.find((r) => r.outcome === 'timeout')).toMatchObject({
      exposed_name: 'echo_slow',
      host: 'local',
    });
    expect(rows.find((r) => r.outcome === 'cancelled')).toMatchObject({ exposed_name: 'ws1_echo_slow' });
    // Arguments only for beta, with secrets redacted.
    const betaArgs = rows
      .filter((r) => r.agent === 'beta' && r.exposed_name === 'ws2_echo_echo')
      .map((r) => r.arguments);
    expect(betaArgs).toEqual(expect.arrayContaining([{ text: 'b1' }, { text: 'b2', token: '[redacted]' }]));
    expect(
      rows.filter((r) => r.agent !== 'beta').every((r) => r.arguments === null || r.arguments === undefined),
    ).toBe(true);
    // Filters.
    expect((await audit(masterHome, ['--agent', 'alpha'])).every((r) => r.agent === 'alpha')).toBe(true);
    expect((await audit(masterHome, ['--host', 'ws2', '--outcome', 'ok'])).length).toBeGreaterThanOrEqual(41);
    // The slave keeps its own record of what the master had it run, with the master's agent.
    const slaveRows = await audit(slaveHomes.ws2, [], ['slave', 'audit']);
    expect(slaveRows.some((r) => (r as unknown as { master_agent: string }).master_agent === 'beta')).toBe(
      true,
    );

    // --follow streams new rows.
    const follow = spawnCli(masterHome, ['audit', '--follow', '--json', '--agent', 'alpha']);
    await waitFor(() => follow.stderr().length > 0 || follow.stdout().length > 0, {
      what: 'audit --follow to start',
    }).catch(() => undefined);
    await echo(alpha, 'ws1_echo_echo', 'followed');
    await waitFor(
      () =>
        follow.stdout().includes('ws1_echo_echo') &&
        follow
          .stdout()
          .split('\n')
          .some((l) => l.includes('"outcome":"ok"')),
      {
        what: 'the followed row',
      },
    );
    await follow.stop();

    // A scope change reaches the live session at once, with list_changed.
    let told = 0;
    alpha.setNotificationHandler('notifications/tools/list_changed', () => void told++);
    const set = await runCli(masterHome, ['agents', 'set', 'alpha', '--allow', 'host:ws2']);
    expect(set.code, set.stderr).toBe(0);
    await waitFor(() => told > 0, { what: 'list_changed after the scope change' });
    expect(await names(alpha)).toEqual((await names(owner)).filter((n) => n.startsWith('ws2_')));
    const shown = JSON.parse((await runCli(masterHome, ['agents', 'show', 'alpha', '--json'])).stdout);
    expect([...shown.sees.tools].sort()).toEqual(await names(alpha));

    // Rotating a token kills the old one mid-session.
    const rotated = await runCli(masterHome, ['agents', 'rotate', 'alpha', '--json']);
    expect(rotated.code, rotated.stderr).toBe(0);
    await expect(alpha.listTools()).rejects.toThrow();
    await expect(connectHttp(master.mcpUrl, { token: alphaToken })).rejects.toThrow(
      /401|Unauthorized|bearer/i,
    );
    const alphaAgain = await connectHttp(master.mcpUrl, { token: JSON.parse(rotated.stdout).token });
    expect((await names(alphaAgain)).length).toBeGreaterThan(0);

    const listed = JSON.parse((await runCli(masterHome, ['agents', 'list', '--json'])).stdout).agents;
    expect(listed.map((a: { name: string }) => a.name).sort()).toEqual(['alpha', 'beta', 'owner']);
    expect(JSON.stringify(listed)).not.toContain(betaToken);
    const removed = await runCli(masterHome, ['agents', 'remove', 'beta', '--yes']);
    expect(removed.code, removed.stderr).toBe(0);
    await expect(beta.listTools()).rejects.toThrow();
    expect((await runCli(masterHome, ['agents', 'remove', 'owner', '--yes'])).code).not.toBe(0);
  }, 180_000);

  it('a database written before agents existed keeps working: its token becomes the agent owner', async () => {
    const home = makeHome('agents-upgrade');
    writeServersConfig(home, { mcpServers: { echo: echoServerEntry() } });
    // A home as the previous release left it: schema v5 and the single agent token.
    const db = new Database(join(home, 'diane.db'));
    for (const m of migrations.filter((m) => m.version <= 5)) db.exec(m.sql);
    db.pragma(`application_id = ${0x4449414e}`);
    db.pragma('user_version = 5');
    db.close();
    chmodSync(join(home, 'diane.db'), 0o600);
    const master = await startDaemon({ home });
    const client = await connectHttp(master.mcpUrl);
    await waitFor(async () => (await names(client)).includes('echo_echo'), { what: 'the echo server' });
    const agents = JSON.parse((await runCli(home, ['agents', 'list', '--json'])).stdout).agents;
    expect(agents).toEqual([expect.objectContaining({ name: 'owner', allow: ['*'], deny: [] })]);
    await client.callTool({ name: 'echo_echo', arguments: { text: 'up' } });
    await waitFor(async () => (await audit(home)).some((r) => r.agent === 'owner' && r.outcome === 'ok'), {
      what: "the owner's call in the audit",
    });
  }, 60_000);
});
