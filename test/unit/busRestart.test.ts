import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RemoteHostUpstream } from '../../src/bus/remoteHostUpstream.js';
import { FakeLinkedSlave, startTestMaster, type TestMaster } from '../helpers/busMasters.js';
import { tool } from '../helpers/fakeUpstream.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

/** This test restarts NATS, so it runs its own server: it needs `nats-server` on the PATH. */
const natsServer = spawnSync('nats-server', ['--version']).status === 0;
if (!natsServer) console.warn('bus restart test skipped: no nats-server on the PATH');

describe.skipIf(!natsServer)('the bus across a NATS restart', () => {
  let nats: ChildProcess | undefined;
  let masters: TestMaster[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'diane-nats-'));

  const startNats = (port: number) =>
    spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });

  afterEach(async () => {
    await Promise.all(masters.map((m) => m.bus.close().catch(() => {})));
    masters = [];
    nats?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the other master again once NATS is back, with presence, calls and link events', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    nats = startNats(port);
    const a = await startTestMaster('master-a', url, 'restart');
    const b = await startTestMaster('master-b', url, 'restart');
    masters = [a, b];
    const slave = new FakeLinkedSlave('ws1');
    slave.catalogNow = { ...slave.catalogNow, tools: [tool('echo')] };
    slave.answer = async () => ({ content: [{ type: 'text', text: 'ok' }] });
    b.registry.link(slave);
    const remote = await waitFor(
      () => {
        const r = a.registry.remotes.get('ws1') as RemoteHostUpstream | undefined;
        return r?.status().state === 'connected' && r;
      },
      { what: 'ws1 on a' },
    );

    nats.kill('SIGKILL');
    // Its presence lapses on a (1.5 s in these tests) while NATS is away.
    await waitFor(() => remote.status().state === 'offline', { what: 'ws1 offline on a', timeoutMs: 5_000 });
    nats = startNats(port);
    await waitFor(() => remote.status().state === 'connected' && remote.catalog().tools.length === 1, {
      what: 'ws1 back on a',
      timeoutMs: 15_000,
    });
    const result = await remote.request(
      'tools/call',
      { name: 'echo' },
      {
        signal: new AbortController().signal,
        timeoutMs: 5_000,
        maxTotalMs: 5_000,
      },
    );
    expect(result).toEqual({ content: [{ type: 'text', text: 'ok' }] });
    a.bus.announce('revoked', 'ws1');
    await waitFor(() => slave.detachedWith, { what: 'the link cut on b', timeoutMs: 2_000 });
  });
});
