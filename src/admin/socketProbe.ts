import { statSync } from 'node:fs';
import { createConnection } from 'node:net';

/**
 * Whether a daemon answers on the admin socket. A socket file nobody listens on (a crashed
 * daemon's) does not count: connecting to it fails. A connection that hangs counts: something
 * holds the socket, and the callers would rather refuse than write under a live daemon.
 */
export async function adminSocketAnswers(path: string, timeoutMs = 2000): Promise<boolean> {
  try {
    statSync(path);
  } catch {
    return false;
  }
  return new Promise<boolean>((resolve) => {
    const conn = createConnection(path);
    const timer = setTimeout(() => {
      conn.destroy();
      resolve(true);
    }, timeoutMs);
    conn.once('connect', () => {
      clearTimeout(timer);
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
