import type { IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { CertificateCheckStore } from '../../src/cluster/certificateCheck.js';
import { SlaveHub } from '../../src/cluster/hub.js';
import type { SlaveRegistry } from '../../src/cluster/slaveRegistry.js';
import { fixtureCert } from '../helpers/certFixtures.js';
import { waitFor } from '../helpers/wait.js';

const ws1 = fixtureCert('ws1');

/** A store that knows ws1's certificate, so every upgrade passes the check. */
const store: CertificateCheckStore = {
  revokedCredentials: { getBySerial: () => undefined, isKeyRevoked: () => false },
  slaveServers: {
    getByCertSerial: () => ({
      hostId: 'ws1',
      certSerial: ws1.serial,
      keyFingerprint: ws1.key,
      enabled: true,
      expiresAt: ws1.validTo,
      pending: null,
    }),
  } as unknown as CertificateCheckStore['slaveServers'],
};

/** The registry's attach, held open until the test lets each handshake finish. */
class HeldRegistry {
  readonly started: Array<() => void> = [];
  running = 0;
  maxRunning = 0;
  attach(): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    return new Promise<void>((resolve) => {
      this.started.push(() => {
        this.running--;
        resolve();
      });
    });
  }
  recordHeartbeat(): void {}
}

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A real TCP connection whose server end is handed to the hub as an upgrade request. */
async function upgradeOn(hub: SlaveHub): Promise<{ client: Socket; closedWith: Promise<number> }> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = tcpConnect(port, '127.0.0.1');
  sockets.push(client);
  const serverSide = await accepted;
  sockets.push(serverSide);
  let received = Buffer.alloc(0);
  const closedWith = new Promise<number>((resolve) => {
    client.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // A close frame from the server: 0x88, length, then the 2-byte code.
      const at = received.indexOf(0x88, received.indexOf('\r\n\r\n') + 4);
      if (at >= 0 && received.length >= at + 4) resolve(received.readUInt16BE(at + 2));
    });
  });
  const req = {
    method: 'GET',
    url: '/slave/connect',
    headers: {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': Buffer.alloc(16, 1).toString('base64'),
      'sec-websocket-version': '13',
    },
    socket: Object.assign(serverSide, {
      authorized: true,
      authorizationError: null,
      getPeerCertificate: () => ws1.peer,
    }),
  } as unknown as IncomingMessage;
  hub.handleUpgrade(req, serverSide, Buffer.alloc(0));
  return { client, closedWith };
}

function hubWith(registry: HeldRegistry, maxConcurrentHandshakes: number, maxQueuedHandshakes: number) {
  return new SlaveHub({
    store,
    registry: registry as unknown as SlaveRegistry,
    logger: pino({ level: 'silent' }),
    maxPayloadBytes: 1024,
    heartbeatIntervalMs: 60_000,
    heartbeatTimeoutMs: 60_000,
    limits: { maxConcurrentHandshakes, maxQueuedHandshakes },
  });
}

describe('SlaveHub: MCP handshakes in flight are capped', () => {
  it('runs at most the cap at once and starts the next in order as one finishes', async () => {
    const registry = new HeldRegistry();
    const hub = hubWith(registry, 2, 10);
    for (let i = 0; i < 5; i++) await upgradeOn(hub);
    // The certificate check is asynchronous: wait until every upgrade has reached the queue.
    await waitFor(() => hub.handshakeLoad().queued === 3 || undefined, { what: 'three queued' });
    expect(registry.started).toHaveLength(2);
    expect(hub.handshakeLoad()).toEqual({ inFlight: 2, queued: 3 });
    registry.started[0]!();
    await waitFor(() => registry.started.length === 3 || undefined, { what: 'the third handshake' });
    for (let i = 1; i < 5; i++) {
      await waitFor(() => registry.started.length > i || undefined, { what: `handshake ${i + 1}` });
      registry.started[i]!();
    }
    await waitFor(() => hub.handshakeLoad().inFlight === 0 || undefined, { what: 'all done' });
    expect(registry.maxRunning).toBe(2);
    hub.close();
  });

  it('drops a link that closes while it waits, without a handshake', async () => {
    const registry = new HeldRegistry();
    const hub = hubWith(registry, 1, 10);
    await upgradeOn(hub);
    const waiting = await upgradeOn(hub);
    await waitFor(() => hub.handshakeLoad().queued === 1 || undefined, { what: 'one queued' });
    waiting.client.destroy();
    await waitFor(() => hub.handshakeLoad().queued === 0 || undefined, { what: 'the queue emptied' });
    registry.started[0]!();
    await waitFor(() => hub.handshakeLoad().inFlight === 0 || undefined, { what: 'the first done' });
    expect(registry.started).toHaveLength(1);
    hub.close();
  });

  it('closes a link with 1013 (try again later) when the queue is full', async () => {
    const registry = new HeldRegistry();
    const hub = hubWith(registry, 1, 1);
    await upgradeOn(hub);
    await upgradeOn(hub);
    const third = await upgradeOn(hub);
    expect(await third.closedWith).toBe(1013);
    registry.started[0]!();
    hub.close();
  });
});
