import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DialPlan, type ResolveAll } from '../../src/cluster/dialPlan.js';
import { mastersToDial } from '../../src/cluster/masterList.js';
import { SlaveAgent, type SlaveStatus } from '../../src/cluster/slaveAgent.js';
import type { SlaveCredentials } from '../../src/cluster/slaveCredentials.js';
import { silentLogger } from '../../src/log.js';
import type { FrontInfo } from '../../src/mcp/frontServer.js';
import type { Router } from '../../src/mcp/router.js';
import { createCa } from '../../src/pki/createCa.js';
import { ensureServerCertificate } from '../../src/pki/index.js';
import { fixtureFile } from '../helpers/certFixtures.js';

/** A "master" that answers every link upgrade with the next scripted refusal. */
async function scriptedMaster(
  tls: { cert: string; key: string },
  answers: Array<[number, string | undefined]>,
): Promise<{ server: Server; url: string; seen: () => number }> {
  let seen = 0;
  const server = createServer({ ...tls, minVersion: 'TLSv1.3' });
  server.on('upgrade', (_req, socket) => {
    const [status, refusal] = answers[Math.min(seen, answers.length - 1)]!;
    seen += 1;
    socket.end(
      `HTTP/1.1 ${status} No\r\n${refusal ? `X-Diane-Refusal: ${refusal}\r\n` : ''}Content-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen: () => seen };
}

/** A loopback port nobody listens on. */
async function deadPort(): Promise<string> {
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `https://127.0.0.1:${port}`;
}

function agentFor(
  masters: string[],
  statuses: SlaveStatus[],
  opts: { caCert?: string; resolve?: ResolveAll } = {},
): SlaveAgent {
  const creds: SlaveCredentials = {
    host_id: 'ws1',
    master_url: masters[0]!,
    ws_url: `${masters[0]!.replace('https:', 'wss:')}/slave/connect`,
    masters,
    client_cert: fixtureFile('ws1-cert.pem'),
    client_key: fixtureFile('ws1-key.pem'),
    ca_cert: opts.caCert ?? fixtureFile('ca-cert.pem'),
    issued_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 86_400_000).toISOString(),
  };
  return new SlaveAgent({
    creds,
    dialPlan: new DialPlan(mastersToDial(creds), opts.resolve),
    router: {} as Router,
    info: {} as FrontInfo,
    logger: silentLogger,
    heartbeatIntervalMs: 60_000,
    heartbeatTimeoutMs: 60_000,
    maxPayloadBytes: 1024,
    backoffBaseMs: 10,
    backoffCapMs: 20,
    stableAfterMs: 60_000,
    onStatus: (status) => statuses.push(status),
    renewal: undefined,
    saveCredentials: () => {
      throw new Error('no renewal in this test');
    },
  });
}

/** The masters dialed, in order (one entry per attempt). */
const dialed = (statuses: SlaveStatus[]) =>
  statuses
    .filter((s, i) => s.state === 'connecting' && statuses[i - 1]?.state !== 'connecting')
    .map((s) => s.master);

describe('SlaveAgent with several masters', () => {
  const servers: Server[] = [];
  const dirs: string[] = [];
  const pinned = { cert: fixtureFile('server-cert.pem'), key: fixtureFile('server-key.pem') };
  let foreign: { cert: string; key: string };
  let named: { cert: string; key: string; ca: string };

  beforeAll(async () => {
    // A master that did not get the shared CA: its server certificate is from a CA of its own.
    const dir = mkdtempSync(join(tmpdir(), 'diane-foreign-'));
    dirs.push(dir);
    const ca = await createCa({
      certPath: join(dir, 'ca.pem'),
      keyPath: join(dir, 'ca-key.pem'),
      keyBits: 2048,
    });
    const server = await ensureServerCertificate(ca, {
      certPath: join(dir, 'server.pem'),
      keyPath: join(dir, 'server-key.pem'),
      hosts: [],
    });
    foreign = { cert: `${server.certPem}${ca.certPem}`, key: server.keyPem };
    // A master reached by a name (`--public-host masters.test`), from that same CA.
    const byName = await ensureServerCertificate(ca, {
      certPath: join(dir, 'named.pem'),
      keyPath: join(dir, 'named-key.pem'),
      hosts: ['masters.test'],
    });
    named = { cert: `${byName.certPem}${ca.certPem}`, key: byName.keyPem, ca: ca.certPem };
  });

  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('moves to the next master after a failed dial or a refusal, and stops on "revoked" from any of them', async () => {
    const dead = await deadPort();
    const live = await scriptedMaster(pinned, [
      [503, undefined],
      [410, 'revoked'],
    ]);
    servers.push(live.server);
    const statuses: SlaveStatus[] = [];
    await expect(agentFor([dead, live.url], statuses).run()).resolves.toBe('revoked');
    const wsOf = (url: string) => `${url.replace('https:', 'wss:')}/slave/connect`;
    expect(dialed(statuses)).toEqual([wsOf(dead), wsOf(live.url), wsOf(dead), wsOf(live.url)]);
    expect(statuses.at(-1)?.masters).toEqual([dead, live.url]);
    expect(live.seen()).toBe(2);
  });

  it('skips a master with a foreign CA while another master is there, and stops only when all have one', async () => {
    const stranger = await scriptedMaster(foreign, [[500, undefined]]);
    const live = await scriptedMaster(pinned, [
      [503, undefined],
      [410, 'revoked'],
    ]);
    servers.push(stranger.server, live.server);
    const both: SlaveStatus[] = [];
    await expect(agentFor([stranger.url, live.url], both).run()).resolves.toBe('revoked');
    expect(both.some((s) => /presents the CA sha256:/.test(s.last_error ?? ''))).toBe(true);

    const alone: SlaveStatus[] = [];
    await expect(agentFor([stranger.url], alone).run()).resolves.toBe('ca-changed');
    expect(stranger.seen()).toBe(0);
  });

  it('dials a name at the address it resolves to, and checks the certificate against the name', async () => {
    const live = await scriptedMaster(named, [[410, 'revoked']]);
    servers.push(live.server);
    const port = new URL(live.url).port;
    const resolve: ResolveAll = async () => [{ address: '127.0.0.1', family: 4 }];
    const statuses: SlaveStatus[] = [];
    const agent = agentFor([`https://other.test:${port}`, `https://masters.test:${port}`], statuses, {
      caCert: named.ca,
      resolve,
    });
    await expect(agent.run()).resolves.toBe('revoked');
    // Same address, same certificate: only the name that its SANs cover gets through TLS.
    expect(statuses.find((s) => s.master.includes('other.test') && s.last_error)?.last_error).toMatch(
      /altnames|other\.test/,
    );
    expect(statuses.at(-1)).toMatchObject({
      master: `wss://masters.test:${port}/slave/connect`,
      master_address: '127.0.0.1',
    });
    expect(live.seen()).toBe(1);
  });
});
