import { randomBytes } from 'node:crypto';
import { connect } from 'node:tls';

export interface RawUpgradeOptions {
  port: number;
  ca: string;
  cert?: string;
  key?: string;
  /** A TLS session from an earlier connection, to resume it. */
  session?: Buffer;
}

export interface RawUpgradeResult {
  status: number;
  refusal?: string;
  /** Whether the TLS session was resumed rather than fully negotiated. */
  reused: boolean;
  /** The session ticket of this connection, for a later resumption. */
  session?: Buffer;
}

/**
 * Sends a WebSocket upgrade for /slave/connect by hand over TLS and reads the status line, so
 * tests can see refusals and control TLS session resumption exactly.
 */
export function rawUpgrade(opts: RawUpgradeOptions): Promise<RawUpgradeResult> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: opts.port,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      session: opts.session,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
    });
    let session: Buffer | undefined;
    let response = '';
    let status: number | undefined;
    socket.on('session', (s: Buffer) => {
      session = s;
    });
    socket.once('secureConnect', () => {
      socket.write(
        'GET /slave/connect HTTP/1.1\r\n' +
          `Host: 127.0.0.1:${opts.port}\r\n` +
          'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      response += chunk;
      const headEnd = response.indexOf('\r\n\r\n');
      if (status === undefined && headEnd >= 0) {
        status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
        const refusal = /x-diane-refusal: ([a-z-]+)/i.exec(response)?.[1];
        const reused = socket.isSessionReused();
        // Give the session ticket (sent after the handshake) a moment to arrive.
        setTimeout(() => {
          socket.destroy();
          resolve({ status: status ?? 0, refusal, reused, session });
        }, 100);
      }
    });
    socket.once('error', (err) => {
      if (status === undefined) reject(err);
    });
    socket.once('close', () => {
      if (status === undefined) reject(new Error(`connection closed before a response: ${response}`));
    });
  });
}
