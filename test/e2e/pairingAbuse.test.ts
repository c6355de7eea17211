import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeCsr } from '../../src/pki/index.js';
import { runCli } from '../helpers/cli.js';
import { caFingerprintOf, masterUrl, pendingOf, requestPairing, spawnCli } from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { makeHome } from '../helpers/home.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** An HTTPS request to the cluster listener from `localAddress` (any of 127/8 on loopback). */
function clusterRequest(
  master: DaemonHandle,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  localAddress = '127.0.0.1',
): Promise<Reply> {
  const ca = readFileSync(join(master.home, 'slave-ca-cert.pem'), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      `${masterUrl(master)}${path}`,
      { method, ca, localAddress, headers: { 'content-type': 'application/json' }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function submitPairing(
  master: DaemonHandle,
  hostId: string,
  localAddress: string,
  joinToken?: string,
): Promise<Reply> {
  const { csrPem } = await makeCsr(hostId);
  const body = {
    host_id: hostId,
    csr: csrPem,
    ...(joinToken === undefined ? {} : { join_token: joinToken }),
  };
  return clusterRequest(master, 'POST', '/api/slave/pair', body, localAddress);
}

describe('pairing abuse', () => {
  it('a flood from a few networks fills neither a host id nor the list for everyone else', async () => {
    const master = await startDaemon({ home: makeHome('m-pflood') });
    try {
      // 10 networks x 10 requests used to fill the global cap of 100.
      for (let net = 0; net < 10; net++) {
        for (let i = 0; i < 10; i++) {
          const reply = await submitPairing(master, `junk-${net}-${i}`, `127.2.${net}.${i + 1}`);
          expect(reply.status).toBe(201);
        }
      }
      const refused = await submitPairing(master, 'junk-more', '127.2.0.200');
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ code: 'PAIRING_TOO_MANY_FROM_SOURCE' });
      expect(String(refused.body.error)).toContain('127.2.0.0/24');
      expect(await pendingOf(master)).toHaveLength(100);
      // 3 requests from 3 addresses used to block a host id for the whole TTL; each now takes
      // the place of the oldest request of the busiest network.
      for (let net = 0; net < 3; net++) {
        expect((await submitPairing(master, 'ws1', `127.3.${net}.1`)).status).toBe(201);
      }
      expect(await pendingOf(master)).toHaveLength(100);

      // The real slave, from its own network, gets in and pairs.
      const slaveHome = makeHome('s-pflood');
      const { pair, request: req } = await requestPairing(master, slaveHome, 'ws1');
      const approved = await runCli(master.home, ['slave', 'approve', 'ws1', req.pairing_code]);
      expect(approved.code, approved.stderr).toBe(0);
      expect((await pair.exited).code, pair.stderr()).toBe(0);
      expect(await pendingOf(master)).toHaveLength(99);
      expect(master.stderr()).toMatch(/pairing request displaced/);
    } finally {
      await master.stop();
    }
  }, 120_000);

  it('with --pairing-token required, only slaves with the join token can create requests', async () => {
    const home = makeHome('m-token');
    const args = ['--pairing-token', 'required'];
    let master = await startDaemon({ home, args });
    try {
      const tokenFile = join(home, 'join-token');
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const info = JSON.parse((await runCli(home, ['info', '--json'])).stdout);
      expect(info.pair_command).toContain(`--join-token=${token}`);
      expect((await runCli(home, ['info'])).stdout).toContain(`--join-token=${token}`);

      const missing = await submitPairing(master, 'ws1', '127.0.0.1');
      expect(missing).toMatchObject({ status: 401, body: { code: 'PAIRING_JOIN_TOKEN_REQUIRED' } });
      expect(String(missing.body.error)).toContain('diane info');
      const wrong = await submitPairing(master, 'ws1', '127.0.0.1', `${token.slice(0, -1)}x`);
      expect(wrong).toMatchObject({ status: 401, body: { code: 'PAIRING_JOIN_TOKEN_INVALID' } });
      expect(await pendingOf(master)).toEqual([]);

      // The slave CLI without the token: a clear refusal, non-zero exit.
      const fingerprint = await caFingerprintOf(master);
      const base = ['slave', 'pair', `--master=${masterUrl(master)}`, `--ca-fingerprint=${fingerprint}`];
      const refused = spawnCli(makeHome('s-notoken'), [...base, '--host-id=ws1']);
      expect((await refused.exited).code).not.toBe(0);
      expect(refused.stderr()).toMatch(/requires a join token/);

      // With it (as printed by `diane info`): pending, approved, paired.
      const pair = spawnCli(makeHome('s-token'), [...base, '--host-id=ws1', `--join-token=${token}`]);
      const req = await waitFor(async () => (await pendingOf(master)).find((p) => p.host_id === 'ws1'), {
        what: 'the request made with the join token',
      });
      expect((await runCli(home, ['slave', 'approve', 'ws1', req.pairing_code])).code).toBe(0);
      expect((await pair.exited).code, pair.stderr()).toBe(0);

      // A pending request and the token both survive a restart.
      const waiting = await submitPairing(master, 'ws2', '127.0.0.1', token);
      expect(waiting.status).toBe(201);
      const stderrBefore = master.stderr();
      await master.stop();
      master = await startDaemon({ home, args });
      expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
      expect((await pendingOf(master)).map((p) => p.host_id)).toEqual(['ws2']);
      const status = await clusterRequest(master, 'GET', `/api/slave/pair/${waiting.body.request_id}`);
      expect(status.body).toMatchObject({ status: 'pending', host_id: 'ws2' });

      // The token is never written to the daemon's output (logs, banner).
      for (const output of [stderrBefore, master.stderr(), master.stdout()]) {
        expect(output).not.toContain(token);
      }
      expect(master.stderr()).toContain('--join-token=<see `diane info`>');

      // Rotation: the old token is refused at once, the new one is in `diane info` and on disk
      // (0600), the pending request stays, and the new token survives a restart.
      const rotated = await runCli(home, ['slave', 'join-token', 'rotate', '--json']);
      expect(rotated.code, rotated.stderr).toBe(0);
      const { join_token: fresh, pair_command } = JSON.parse(rotated.stdout);
      expect(fresh).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(fresh).not.toBe(token);
      expect(pair_command).toContain(`--join-token=${fresh}`);
      expect(readFileSync(tokenFile, 'utf8').trim()).toBe(fresh);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      expect(JSON.parse((await runCli(home, ['info', '--json'])).stdout).pair_command).toContain(
        `--join-token=${fresh}`,
      );
      const old = await submitPairing(master, 'ws3', '127.0.0.1', token);
      expect(old).toMatchObject({ status: 401, body: { code: 'PAIRING_JOIN_TOKEN_INVALID' } });
      expect((await submitPairing(master, 'ws3', '127.0.0.1', fresh)).status).toBe(201);
      expect((await pendingOf(master)).map((p) => p.host_id).sort()).toEqual(['ws2', 'ws3']);
      expect(master.stderr()).not.toContain(fresh);
      await master.stop();
      master = await startDaemon({ home, args });
      expect((await submitPairing(master, 'ws4', '127.0.0.1', fresh)).status).toBe(201);
      expect((await submitPairing(master, 'ws5', '127.0.0.1', token)).status).toBe(401);
    } finally {
      await master.stop();
    }
  }, 120_000);

  it('refuses to rotate a join token the master does not require', async () => {
    const home = makeHome('m-notoken');
    const master = await startDaemon({ home });
    try {
      const res = await runCli(home, ['slave', 'join-token', 'rotate']);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain('does not require a join token');
      expect(existsSync(join(home, 'join-token'))).toBe(false);
    } finally {
      await master.stop();
    }
  }, 60_000);
});
