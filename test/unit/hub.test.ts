import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  type CertificateCheckStore,
  REFUSAL_STATUS,
  type Refusal,
} from '../../src/cluster/certificateCheck.js';
import { SlaveHub } from '../../src/cluster/hub.js';
import type { SlaveRegistry } from '../../src/cluster/slaveRegistry.js';
import { fixtureCert } from '../helpers/certFixtures.js';

const { peer } = fixtureCert('ws1');

interface LogLine {
  level: number;
  msg: string;
  err?: { message: string };
  refusal?: string;
}

/** The hub's answer as the slave would read it off the socket, and what it logged. */
interface Upgrade {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  logs: LogLine[];
}

const PINO_WARN = 40;
const PINO_ERROR = 50;

async function upgrade(
  store: CertificateCheckStore,
  tls: { authorized: boolean; authorizationError?: string; peer?: () => PeerCertificate },
): Promise<Upgrade> {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const hub = new SlaveHub({
    store,
    registry: {} as SlaveRegistry,
    logger,
    maxPayloadBytes: 1024,
    heartbeatIntervalMs: 60_000,
    heartbeatTimeoutMs: 60_000,
  });
  let written = '';
  const socket = {
    end: (text: string) => {
      written += text;
    },
  } as unknown as Socket;
  const req = {
    socket: {
      remoteAddress: '192.0.2.7',
      authorized: tls.authorized,
      authorizationError: tls.authorizationError ?? null,
      getPeerCertificate: tls.peer ?? (() => peer),
    },
  } as unknown as IncomingMessage;
  hub.handleUpgrade(req, socket, Buffer.alloc(0));
  // The check reads the store asynchronously: the answer comes a few turns later.
  for (let turn = 0; turn < 20 && written === ''; turn++) await new Promise((r) => setImmediate(r));
  hub.close();
  const [head = '', body = ''] = written.split('\r\n\r\n');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers = Object.fromEntries(
    headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]),
  );
  expect(statusLine).toMatch(/^HTTP\/1\.1 \d{3} /);
  expect(Number(headers['content-length'])).toBe(Buffer.byteLength(body));
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body), logs };
}

const emptyStore: CertificateCheckStore = {
  revokedCredentials: { getBySerial: async () => undefined, isKeyRevoked: async () => false },
  slaveServers: { getByCertSerial: async () => undefined },
};

describe('SlaveHub: a crash in the check is not a refusal', () => {
  const crashes: Array<[string, () => Promise<Upgrade>, string]> = [
    [
      'the store throws (database locked)',
      () =>
        upgrade(
          {
            ...emptyStore,
            revokedCredentials: {
              ...emptyStore.revokedCredentials,
              getBySerial: async () => {
                throw new Error('SQLITE_BUSY: database is locked');
              },
            },
          },
          { authorized: true },
        ),
      'SQLITE_BUSY: database is locked',
    ],
    [
      'reading the peer certificate throws',
      () =>
        upgrade(emptyStore, {
          authorized: true,
          peer: () => {
            throw new Error('ERR_TLS_INVALID_STATE: socket closed');
          },
        }),
      'ERR_TLS_INVALID_STATE: socket closed',
    ],
  ];

  it.each(crashes)('%s: 500 without X-Diane-Refusal, logged as an error', async (_name, run, message) => {
    const answer = await run();
    expect(answer.status).toBe(500);
    expect(answer.headers['x-diane-refusal']).toBeUndefined();
    expect(answer.body).toEqual({ error: 'the master could not check the certificate; try again later' });
    const errors = answer.logs.filter((l) => l.level === PINO_ERROR);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.err?.message).toBe(message);
    expect(answer.logs.filter((l) => l.level === PINO_WARN)).toEqual([]);
  });
});

describe('SlaveHub: refusals', () => {
  it('answers an unknown certificate with 403 and X-Diane-Refusal, logged as a warning', async () => {
    const answer = await upgrade(emptyStore, { authorized: true });
    expect(answer.status).toBe(403);
    expect(answer.headers['x-diane-refusal']).toBe('unknown-certificate');
    expect(answer.headers.connection).toBe('close');
    expect(answer.body).toEqual({
      error: 'certificate not issued by this master or not enrolled',
      reason: 'unknown-certificate',
    });
    expect(answer.logs.map((l) => [l.level, l.refusal])).toEqual([[PINO_WARN, 'unknown-certificate']]);
  });

  it.each([
    ['no-certificate', { authorized: false, peer: () => ({}) as PeerCertificate }],
    ['unknown-certificate', { authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' }],
    ['expired', { authorized: false, authorizationError: 'CERT_HAS_EXPIRED' }],
  ] as Array<[Refusal, Parameters<typeof upgrade>[1]]>)(
    '%s: its own status and header',
    async (refusal, tls) => {
      const answer = await upgrade(emptyStore, tls);
      expect(answer.status).toBe(REFUSAL_STATUS[refusal]);
      expect(answer.headers['x-diane-refusal']).toBe(refusal);
    },
  );
});
