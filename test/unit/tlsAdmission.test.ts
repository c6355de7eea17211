import { connect as tcpConnect } from 'node:net';
import { createServer, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { TlsAdmission } from '../../src/http/tlsAdmission.js';
import { fixtureFile } from '../helpers/certFixtures.js';

const HANDSHAKE_TIMEOUT_MS = 300;
const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function admitting(maxInProgress: number) {
  const tls = createServer({
    cert: fixtureFile('server-cert.pem'),
    key: fixtureFile('server-key.pem'),
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  tls.on('tlsClientError', () => {});
  const admission = new TlsAdmission(tls, maxInProgress, HANDSHAKE_TIMEOUT_MS);
  admission.start();
  await new Promise<void>((resolve) => admission.acceptor.listen(0, '127.0.0.1', resolve));
  closers.push(() => admission.acceptor.close());
  return { admission, port: (admission.acceptor.address() as { port: number }).port };
}

/** A client that sends the start of a ClientHello and then nothing. */
function stalled(port: number) {
  const socket = tcpConnect(port, '127.0.0.1', () =>
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x50, 0x01])),
  );
  socket.on('error', () => {});
  closers.push(() => socket.destroy());
  return socket;
}

function handshake(port: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      socket.destroy();
      resolve(Date.now() - started);
    });
    socket.on('error', reject);
  });
}

describe('TlsAdmission', () => {
  it('lets the next handshake in once a stalled one times out', async () => {
    const { admission, port } = await admitting(1);
    stalled(port);
    await new Promise((r) => setTimeout(r, 50));
    expect(admission.load).toEqual({ inProgress: 1, waiting: 0 });
    const took = await handshake(port);
    expect(took).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 100);
    await new Promise((r) => setTimeout(r, 50));
    expect(admission.load).toEqual({ inProgress: 0, waiting: 0 });
  });

  it('never gives a turn to a connection that sends nothing', async () => {
    const { admission, port } = await admitting(1);
    const silent = tcpConnect(port, '127.0.0.1');
    silent.on('error', () => {});
    closers.push(() => silent.destroy());
    await new Promise((r) => setTimeout(r, 50));
    expect(admission.load).toEqual({ inProgress: 0, waiting: 0 });
    expect(await handshake(port)).toBeLessThan(HANDSHAKE_TIMEOUT_MS);
    const closed = await new Promise<boolean>((resolve) => silent.once('close', () => resolve(true)));
    expect(closed).toBe(true);
  });
});
