import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionGuard } from '../../src/http/connectionGuard.js';
import type { ListenerLimits } from '../../src/http/listenerLimits.js';
import type { Logger } from '../../src/log.js';

const LIMITS: ListenerLimits = {
  maxConnections: 1000,
  maxShareOfFileLimit: 0.25,
  maxConnectionsPerSource: 3,
  firstRequestTimeoutMs: 400,
  handshakeTimeoutMs: 400,
  headersTimeoutMs: 1000,
  requestTimeoutMs: 1000,
};

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

function recordingLogger(): { logger: Logger; lines: { level: string; msg: string; fields: unknown }[] } {
  const lines: { level: string; msg: string; fields: unknown }[] = [];
  const at = (level: string) => (fields: unknown, msg: string) => lines.push({ level, msg, fields });
  const logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  } as unknown as Logger;
  return { logger, lines };
}

async function guarded(limits: ListenerLimits, fileLimit?: number) {
  const server = createServer((_req, res) => res.end('ok'));
  const { logger, lines } = recordingLogger();
  const guard = new ConnectionGuard(server, limits, logger, 'test listener', fileLimit);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, guard, lines, port };
}

/** A connection from `localAddress`; resolves once connected, with a promise of its close. */
async function open(port: number, localAddress = '127.0.0.1') {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  sockets.push(socket);
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => {
    const start = Date.now();
    socket.on('close', () => resolve(Date.now() - start));
  });
  let data = '';
  socket.setEncoding('utf8').on('data', (c: string) => {
    data += c;
  });
  await new Promise((r) => socket.once('connect', r));
  return { socket, closed, data: () => data };
}

const isClosed = (p: Promise<number>) =>
  Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]);

describe('ConnectionGuard', () => {
  it('closes a connection that sends no request in time, and not one that did', async () => {
    const { port, lines } = await guarded(LIMITS);
    const silent = await open(port);
    const talking = await open(port, '127.0.0.2');
    talking.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const after = await silent.closed;
    expect(after).toBeGreaterThanOrEqual(350);
    expect(after).toBeLessThan(2000);
    expect(await isClosed(talking.closed)).toBe(false);
    expect(talking.data()).toContain('200 OK');
    expect(lines.some((l) => l.msg.includes('sent no request in time'))).toBe(true);
  });

  it('caps connections per source address', async () => {
    const { port, guard, lines } = await guarded({ ...LIMITS, firstRequestTimeoutMs: 60_000 });
    const kept = [];
    for (let i = 0; i < 3; i++) kept.push(await open(port, '127.0.0.9'));
    const fourth = await open(port, '127.0.0.9');
    expect(await isClosed(fourth.closed)).toBe(true);
    for (const c of kept) expect(await isClosed(c.closed)).toBe(false);
    const other = await open(port, '127.0.0.10');
    expect(await isClosed(other.closed)).toBe(false);
    expect(guard.openConnections).toBe(4);
    expect(lines.find((l) => l.msg.includes('too many connections from one address'))?.fields).toMatchObject({
      source: '127.0.0.9',
    });
  });

  it('at the cap, a newcomer displaces the oldest connection that has sent nothing', async () => {
    // A file limit of 64 and a share of 1/4 make a cap of 16.
    const { port, guard } = await guarded(
      { ...LIMITS, maxConnectionsPerSource: 0, firstRequestTimeoutMs: 60_000 },
      64,
    );
    expect(guard.maxConnections).toBe(16);
    const talking = await open(port);
    talking.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const silent = [];
    for (let i = 0; i < 15; i++) silent.push(await open(port));
    const newcomer = await open(port);
    newcomer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await isClosed(silent[0]!.closed)).toBe(true);
    for (const c of silent.slice(1)) expect(await isClosed(c.closed)).toBe(false);
    expect(await isClosed(talking.closed)).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(newcomer.data()).toContain('200 OK');
    expect(guard.openConnections).toBe(16);
  });

  it('at the cap with no silent connection, an idle keep-alive one goes, never one with a request in flight', async () => {
    let release: (() => void) | undefined;
    const server = createServer((req, res) => {
      if (req.url === '/slow') release = () => res.end('slow');
      else res.end('ok');
    });
    const guard = new ConnectionGuard(
      server,
      { ...LIMITS, maxConnectionsPerSource: 0, firstRequestTimeoutMs: 60_000 },
      recordingLogger().logger,
      'test listener',
      64,
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const slow = await open(port);
    slow.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    const kept = [];
    for (let i = 0; i < 15; i++) {
      const c = await open(port);
      c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      kept.push(c);
    }
    await new Promise((r) => setTimeout(r, 100));
    const newcomer = await open(port);
    newcomer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await isClosed(kept[0]!.closed)).toBe(true);
    expect(await isClosed(slow.closed)).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(newcomer.data()).toContain('200 OK');
    release?.();
    await new Promise((r) => setTimeout(r, 50));
    expect(slow.data()).toContain('slow');
    expect(guard.openConnections).toBe(16);
  });

  it('survives accept errors (EMFILE) and logs them', async () => {
    const { server, lines } = await guarded(LIMITS);
    const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
    expect(() => server.emit('error', err)).not.toThrow();
    expect(server.listening).toBe(true);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({
      msg: 'test listener: cannot accept connections',
      fields: { code: 'EMFILE' },
    });
  });
});
