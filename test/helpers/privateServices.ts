import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/**
 * PostgreSQL and NATS servers of a test's own, on loopback ports chosen at run time, for the
 * tests that restart them: restarting the machine's shared services would break every other test
 * running at the same time. Both come from the Debian packages the development machines and CI
 * have; `undefined` (with the reason printed) where they are not installed.
 */

const PG_BIN = (() => {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(base, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')));
})();

/** initdb and postgres refuse to run as root: run them as the `postgres` user then. */
const AS_ROOT = process.getuid?.() === 0;
const PG_USER_UID = AS_ROOT
  ? Number(spawnSync('id', ['-u', 'postgres']).stdout.toString().trim())
  : undefined;

function pgCommand(bin: string, args: string[]): [string, string[]] {
  const path = join(PG_BIN!, bin);
  return AS_ROOT ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
}

export interface PrivatePostgres {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export function privatePostgresAvailable(): boolean {
  if (!PG_BIN) {
    console.warn('private PostgreSQL unavailable: no /usr/lib/postgresql/*/bin/initdb');
    return false;
  }
  if (AS_ROOT && !Number.isInteger(PG_USER_UID)) {
    console.warn('private PostgreSQL unavailable: running as root and there is no postgres user');
    return false;
  }
  return true;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'diane-pg-'));
  if (AS_ROOT) chownSync(dir, PG_USER_UID!, 0);
  const data = join(dir, 'data');
  const [initCmd, initArgs] = pgCommand('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const ctl = (action: 'start' | 'stop') => {
    const args =
      action === 'start'
        ? [
            '-D',
            data,
            '-w',
            '-l',
            join(dir, 'log'),
            '-o',
            `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
            'start',
          ]
        : ['-D', data, '-w', '-m', 'fast', 'stop'];
    const [cmd, cmdArgs] = pgCommand('pg_ctl', args);
    const res = spawnSync(cmd, cmdArgs, { encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`pg_ctl ${action} failed: ${res.stderr}${res.stdout}`);
  };
  ctl('start');
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: async () => ctl('start'),
    stop: async () => ctl('stop'),
    destroy: async () => {
      try {
        ctl('stop');
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PrivateNats {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export function privateNatsAvailable(): boolean {
  if (spawnSync('nats-server', ['--version']).status === 0) return true;
  console.warn('private NATS unavailable: no nats-server on the PATH');
  return false;
}

export async function startPrivateNats(): Promise<PrivateNats> {
  const dir = mkdtempSync(join(tmpdir(), 'diane-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
      stdio: 'ignore',
    });
    await waitFor(
      async () =>
        new Promise<boolean>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port });
          socket.once('data', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        }),
      { what: 'the private nats-server', timeoutMs: 15_000 },
    );
  };
  const stop = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    start,
    stop,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
