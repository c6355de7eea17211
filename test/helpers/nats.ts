import { randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';

/**
 * The NATS server the bus tests use: `DIANE_TEST_NATS` (a `nats://host:port` URL) or
 * 127.0.0.1:4222. `undefined` (with the reason printed) when nothing answers there, so the bus
 * tests are skipped on a machine without NATS rather than failing.
 */
export async function testNatsUrl(): Promise<string | undefined> {
  const url = process.env.DIANE_TEST_NATS ?? 'nats://127.0.0.1:4222';
  const { hostname, port } = new URL(url);
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = tcpConnect({ host: hostname, port: Number(port || 4222) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (data) => done(data.toString().startsWith('INFO')));
    socket.once('error', () => done(false));
    socket.setTimeout(1_000, () => done(false));
  });
  if (reachable) return url;
  console.warn(
    `bus tests skipped: no NATS server answers at ${url} (set DIANE_TEST_NATS or start nats-server -js)`,
  );
  return undefined;
}

/** A subject and bucket prefix of its own for each test, so tests never hear each other. */
export function uniquePrefix(): string {
  return `t${randomBytes(6).toString('hex')}`;
}
