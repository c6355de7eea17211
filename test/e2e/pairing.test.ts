import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeCsr } from '../../src/pki/index.js';
import { runCli } from '../helpers/cli.js';
import {
  caFingerprintOf,
  masterUrl,
  pairSlave,
  pendingOf,
  requestPairing,
  spawnCli,
} from '../helpers/cluster.js';
import { cleanupProcesses, type DaemonHandle, startDaemon } from '../helpers/daemon.js';
import { makeHome } from '../helpers/home.js';
import { expectRefusal } from '../helpers/refusal.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

function postJson(
  master: DaemonHandle,
  path: string,
  body: string,
): Promise<{ status: number; body: string }> {
  const ca = readFileSync(join(master.home, 'slave-ca-cert.pem'), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      `${masterUrl(master)}${path}`,
      { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('pairing (real master, real slave CLI)', () => {
  it('scenario 1 steps 1-5: pair, pending, approve, credentials saved 0600', async () => {
    const master = await startDaemon({ home: makeHome('m-pair') });
    try {
      const info = JSON.parse((await runCli(master.home, ['info', '--json'])).stdout);
      expect(info.ca_fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(info.pair_command).toContain(`--ca-fingerprint=${info.ca_fingerprint}`);

      const slaveHome = makeHome('s-pair');
      const { pair, request: req } = await requestPairing(master, slaveHome, 'workstation');
      expect(req.pairing_code).toMatch(/^\d{3}-\d{3}$/);
      expect(req.source_address).toMatch(/127\.0\.0\.1/);
      expect(req.key_fingerprint).toMatch(/^sha256:/);
      expect(req.re_pair).toBe(false);
      const table = (await runCli(master.home, ['slave', 'pending'])).stdout;
      expect(table).toContain('workstation');
      expect(table).toContain(req.pairing_code);
      await waitFor(() => pair.stderr().includes(req.pairing_code), { what: 'code printed by the slave' });
      expect(pair.stderr()).toContain(req.key_fingerprint);

      const approve = await runCli(master.home, ['slave', 'approve', 'workstation', req.pairing_code]);
      expect(approve.code).toBe(0);
      expect(approve.stdout).toMatch(/Approved workstation/);
      expect((await pair.exited).code).toBe(0);

      const credsPath = join(slaveHome, 'slave-credentials.json');
      expect(statSync(credsPath).mode & 0o777).toBe(0o600);
      const creds = JSON.parse(readFileSync(credsPath, 'utf8'));
      expect(Object.keys(creds).sort()).toEqual(
        [
          'ca_cert',
          'client_cert',
          'client_key',
          'expires_at',
          'host_id',
          'issued_at',
          'master_url',
          'masters',
          'ws_url',
        ].sort(),
      );
      expect(creds.host_id).toBe('workstation');
      expect(creds.masters).toEqual([`https://127.0.0.1:${master.clusterPort}`]);
      expect(creds.ws_url).toBe(`wss://127.0.0.1:${master.clusterPort}/slave/connect`);
      expect(creds.ca_cert).toBe(readFileSync(join(master.home, 'slave-ca-cert.pem'), 'utf8'));
      expect(await pendingOf(master)).toEqual([]);

      // A second approve of the same request is refused and changes nothing.
      const again = await runCli(master.home, ['slave', 'approve', 'workstation', req.pairing_code]);
      expectRefusal(
        again,
        1,
        `The pairing request for workstation with code ${req.pairing_code} was already approved`,
      );

      // Re-pairing the enrolled host shows as such.
      const { pair: repair, request: second } = await requestPairing(
        master,
        makeHome('s-repair'),
        'workstation',
      );
      expect(second.re_pair).toBe(true);
      const denied = await runCli(master.home, ['slave', 'deny', 'workstation', second.pairing_code]);
      expect(denied.code).toBe(0);
      expect((await repair.exited).code).toBe(12);
      expect(repair.stderr()).toMatch(/denied/);
    } finally {
      await master.stop();
    }
  });

  it('scenario 5: an expired code cannot be used', async () => {
    const master = await startDaemon({ home: makeHome('m-expire'), args: ['--pairing-ttl', '2s'] });
    try {
      const { pair, request: req } = await requestPairing(master, makeHome('s-expire'), 'laptop');
      const exit = await pair.exited;
      expect(exit.code).toBe(13);
      expect(pair.stderr()).toContain('Pairing request expired');
      const approve = await runCli(master.home, ['slave', 'approve', 'laptop', req.pairing_code]);
      expectRefusal(approve, 1, 'Pairing request expired');
    } finally {
      await master.stop();
    }
  });

  it('a wrong code or another host changes nothing; a master restart keeps pending requests', async () => {
    const home = makeHome('m-restart');
    let master = await startDaemon({ home });
    const slaveHome = makeHome('s-restart');
    const { pair, request: req } = await requestPairing(master, slaveHome, 'builder');
    const wrongCode = req.pairing_code === '000-000' ? '111-111' : '000-000';
    const wrong = await runCli(home, ['slave', 'approve', 'builder', wrongCode]);
    expectRefusal(wrong, 1, `No pending pairing request for builder with code ${wrongCode}`);
    const otherHost = await runCli(home, ['slave', 'approve', 'other', req.pairing_code]);
    expectRefusal(otherHost, 1, `No pending pairing request for other with code ${req.pairing_code}`);
    const bad = await runCli(home, ['slave', 'approve', 'builder', 'abc']);
    expectRefusal(bad, 1, '"abc" is not a pairing code: expected six digits, as 123-456');
    expect(await pendingOf(master)).toMatchObject([{ host_id: 'builder', pairing_code: req.pairing_code }]);

    const port = master.clusterPort!;
    await master.kill9();
    master = await startDaemon({ home, args: ['--listen', `127.0.0.1:${port}`] });
    try {
      const pending = await pendingOf(master);
      expect(pending.map((p) => p.pairing_code)).toEqual([req.pairing_code]);
      const approve = await runCli(home, ['slave', 'approve', 'builder', req.pairing_code]);
      expect(approve.code).toBe(0);
      // The slave kept polling through the restart and picks up its certificate.
      expect((await pair.exited).code).toBe(0);
      expect(JSON.parse(readFileSync(join(slaveHome, 'slave-credentials.json'), 'utf8')).host_id).toBe(
        'builder',
      );
    } finally {
      await master.stop();
    }
  });

  it('refuses a wrong --ca-fingerprint before sending anything, and needs one without a terminal', async () => {
    const master = await startDaemon({ home: makeHome('m-pin') });
    try {
      const slaveHome = makeHome('s-pin');
      const wrong = await runCli(slaveHome, [
        'slave',
        'pair',
        `--master=${masterUrl(master)}`,
        '--host-id=intruder',
        `--ca-fingerprint=sha256:${'0'.repeat(64)}`,
      ]);
      expectRefusal(wrong, 6, /refusing to pair \(nothing was sent\)/);
      const noPin = await runCli(slaveHome, [
        'slave',
        'pair',
        `--master=${masterUrl(master)}`,
        '--host-id=intruder',
      ]);
      expectRefusal(noPin, 2, /--ca-fingerprint is required when not on a terminal/);
      const badHost = await runCli(slaveHome, [
        'slave',
        'pair',
        `--master=${masterUrl(master)}`,
        '--host-id=Not_Valid',
        `--ca-fingerprint=${await caFingerprintOf(master)}`,
      ]);
      expectRefusal(badHost, 2, /Not_Valid/);
      expect(await pendingOf(master)).toEqual([]);
    } finally {
      await master.stop();
    }
  });

  it('validates the pairing endpoint: bad JSON, oversized bodies, hostile CSRs, replays', async () => {
    const master = await startDaemon({ home: makeHome('m-http') });
    try {
      // Each refusal is checked by status and by what it says: a 400 that is really a crash
      // would read differently.
      const refusal = (res: { status: number; body: string }) => ({
        status: res.status,
        ...JSON.parse(res.body),
      });
      expect(refusal(await postJson(master, '/api/slave/pair', '{nope'))).toEqual({
        status: 400,
        error: expect.stringMatching(/^request body is not valid JSON: /),
      });
      const huge = await postJson(
        master,
        '/api/slave/pair',
        JSON.stringify({ host_id: 'a', csr: 'x'.repeat(64 * 1024) }),
      );
      expect(refusal(huge)).toEqual({ status: 413, error: 'request body over 32768 bytes' });
      const extra = await postJson(
        master,
        '/api/slave/pair',
        JSON.stringify({ host_id: 'a', csr: 'x', admin: true }),
      );
      expect(refusal(extra)).toEqual({
        status: 400,
        error: 'invalid pairing request: body: Unrecognized key: "admin"',
      });
      const { csrPem } = await makeCsr('someone-else');
      const wrongCn = await postJson(
        master,
        '/api/slave/pair',
        JSON.stringify({ host_id: 'laptop', csr: csrPem }),
      );
      expect(refusal(wrongCn)).toEqual({
        status: 400,
        code: 'PAIRING_CSR_REJECTED',
        error:
          'Certificate signing request rejected: its subject is "CN=someone-else" but this host pairs as "laptop"; it must be exactly "CN=laptop"',
      });
      const reserved = await postJson(
        master,
        '/api/slave/pair',
        JSON.stringify({ host_id: 'admin', csr: csrPem }),
      );
      expect(refusal(reserved)).toEqual({
        status: 400,
        code: 'PAIRING_RESERVED_HOST_ID',
        error: '"admin" is a reserved name; choose another host id',
      });

      const { csrPem: good } = await makeCsr('laptop');
      const first = await postJson(
        master,
        '/api/slave/pair',
        JSON.stringify({ host_id: 'laptop', csr: good }),
      );
      expect(first.status).toBe(201);
      const created = JSON.parse(first.body);
      expect(created).toMatchObject({
        status: 'pending',
        pairing_code: expect.stringMatching(/^\d{3}-\d{3}$/),
      });
      expect(created.request_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      const replay = await postJson(
        master,
        '/api/slave/pair',
        JSON.stringify({ host_id: 'laptop', csr: good }),
      );
      expect(refusal(replay)).toEqual({
        status: 409,
        code: 'PAIRING_KEY_PENDING',
        error: 'A pairing request with this public key is already pending; wait for it to be decided',
      });
      // The pairing code is not a way to read the status: only the request id is.
      const byCode = await new Promise<number>((resolve, reject) => {
        const ca = readFileSync(join(master.home, 'slave-ca-cert.pem'), 'utf8');
        request(`${masterUrl(master)}/api/slave/pair/${created.pairing_code}`, { ca }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
      expect(byCode).toBe(404);
    } finally {
      await master.stop();
    }
  });

  it('streams pairing events to `slave pending --watch`', async () => {
    const master = await startDaemon({ home: makeHome('m-watch') });
    try {
      const watch = spawnCli(master.home, ['slave', 'pending', '--watch', '--json']);
      // Printed once the daemon holds the event stream: no event after it can be missed.
      await waitFor(() => watch.stderr().includes('Watching for pairing events'), { what: 'watch started' });
      await pairSlave(master, makeHome('s-watch'), 'watched');
      await waitFor(() => watch.stdout().includes('"approved"'), { what: 'approved event' });
      const lines = watch
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.type)).toEqual(['new', 'approved']);
      expect(lines[0].host_id).toBe('watched');
      await watch.stop('SIGINT');
    } finally {
      await master.stop();
    }
  });
});
