import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateCheckStore } from '../../src/cluster/certificateCheck.js';
import { SlaveHub } from '../../src/cluster/hub.js';
import { fatalRefusal, SlaveAgent, type SlaveStatus } from '../../src/cluster/slaveAgent.js';
import type { SlaveRegistry } from '../../src/cluster/slaveRegistry.js';
import { DEFAULT_RENEWAL_SCHEDULE } from '../../src/cluster/slaveRenewal.js';
import { silentLogger } from '../../src/log.js';
import type { FrontInfo } from '../../src/mcp/frontServer.js';
import type { Router } from '../../src/mcp/router.js';
import { fixtureFile } from '../helpers/certFixtures.js';

describe('fatalRefusal: which answers end the slave for good', () => {
  it.each([
    [410, 'revoked', 'revoked'],
    [409, 'superseded', 'superseded'],
    [423, 'disabled', 'revoked'],
    [495, 'expired', 'expired'],
    [403, 'unknown-certificate', undefined],
    [401, 'no-certificate', undefined],
    [403, undefined, undefined],
    // The master's own failure, whatever header came with it: retried.
    [500, undefined, undefined],
    [500, 'revoked', undefined],
    [503, 'expired', undefined],
    [499, 'revoked', 'revoked'],
    // Not a refusal Diane sends; the header must not reach Object.prototype.
    [410, 'constructor', undefined],
    [410, '__proto__', undefined],
  ] as Array<[number, string | undefined, string | undefined]>)(
    'HTTP %i %s: %s',
    (status, refusal, outcome) => {
      expect(fatalRefusal(status, refusal)).toBe(outcome);
    },
  );
});

/**
 * A real hub behind a real TLS listener, and a real slave agent dialing it: the hub's 500 (its
 * check crashed) must make the slave retry, and the next, real refusal must stop it.
 */
describe('SlaveAgent against a hub whose check crashes once', () => {
  let server: Server;
  let port: number;
  let calls = 0;
  const caPem = fixtureFile('ca-cert.pem');

  const store: CertificateCheckStore = {
    revokedCredentials: {
      getBySerial: (certSerial) => {
        calls += 1;
        if (calls === 1) throw new Error('SQLITE_BUSY: database is locked');
        return {
          id: 'r1',
          hostId: 'ws1',
          certSerial,
          revokedAt: new Date(),
          reason: 'admin',
          keyFingerprint: null,
        };
      },
      isKeyRevoked: () => false,
    },
    slaveServers: { getByCertSerial: () => undefined },
  };

  beforeAll(async () => {
    const hub = new SlaveHub({
      store,
      registry: {} as SlaveRegistry,
      logger: silentLogger,
      maxPayloadBytes: 1024,
      heartbeatIntervalMs: 60_000,
      heartbeatTimeoutMs: 60_000,
    });
    server = createServer({
      cert: fixtureFile('server-cert.pem'),
      key: fixtureFile('server-key.pem'),
      ca: caPem,
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: false,
    });
    server.on('upgrade', (req, socket, head) => hub.handleUpgrade(req, socket as never, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('retries after the 500, then stops at the 410 that follows', async () => {
    const statuses: SlaveStatus[] = [];
    const agent = new SlaveAgent({
      creds: {
        host_id: 'ws1',
        master_url: `https://127.0.0.1:${port}`,
        ws_url: `wss://127.0.0.1:${port}/slave/connect`,
        client_cert: fixtureFile('ws1-cert.pem'),
        client_key: fixtureFile('ws1-key.pem'),
        ca_cert: caPem,
        issued_at: new Date().toISOString(),
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      },
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
      renewal: DEFAULT_RENEWAL_SCHEDULE,
      saveCredentials: () => {
        throw new Error('no renewal in this test');
      },
    });
    await expect(agent.run()).resolves.toBe('revoked');
    expect(calls).toBe(2);
    expect(statuses.map((s) => s.state)).toEqual([
      'connecting',
      'connecting',
      'backoff',
      'connecting',
      'revoked',
    ]);
    expect(statuses[1]!.last_error).toBe('the master refused the connection (HTTP 500)');
    expect(statuses.at(-1)!.last_error).toBe('the master refused the connection: revoked');
  });
});
