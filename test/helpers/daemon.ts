import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanEnv, dianeBin, repoRoot } from './home.js';
import { freePort } from './ports.js';
import { trackProcess } from './registry.js';

export { cleanupProcesses } from './registry.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartDaemonOptions {
  home: string;
  /** More `diane serve` arguments. */
  args?: string[];
  /** More environment (DIANE_HOME and DIANE_LOG_LEVEL=debug are set; this can override). */
  env?: Record<string, string>;
  /** Host of --mcp-listen. Default 127.0.0.1; /healthz is always polled on 127.0.0.1. */
  mcpHost?: string;
  /** Port of --mcp-listen. Default: a free port. */
  mcpPort?: number;
  /** How long to wait for /healthz. Default 20 s. */
  timeoutMs?: number;
  /** Runs the daemon under `ulimit -n <fileLimit>` (through sh, which then execs node). */
  fileLimit?: number;
}

export interface DaemonHandle {
  home: string;
  /** The agent endpoint's port. */
  port: number;
  /** http://127.0.0.1:<port>/mcp */
  mcpUrl: string;
  /** The agent bearer token (`$home/agent-token`); agents of the test helpers send it by default. */
  token: string;
  /** `{ authorization: 'Bearer <token>' }`, for hand-made requests. */
  authHeaders: Record<string, string>;
  /** The cluster listener's port (127.0.0.1), unless `args` chose its own `--listen`. */
  clusterPort: number | undefined;
  proc: ChildProcess;
  pid: number;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  /** Everything the daemon wrote to stdout so far. */
  stdout(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` and waits for the exit; SIGKILLs after `timeoutMs` (default 20 s) and rejects. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
  /** SIGKILL, then waits for the exit. */
  kill9(): Promise<ExitStatus>;
}

/** Thrown by {@link startDaemon} when the daemon exits or never gets healthy. */
export class DaemonStartError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(`${message}\n--- daemon stderr ---\n${stderr}`);
    this.name = 'DaemonStartError';
  }
}

/**
 * Starts `node bin/diane.js serve --mcp-listen <host>:<free port> --listen 127.0.0.1:<free port>
 * ...args` with DIANE_HOME=home and waits until GET /healthz answers 200. The cluster listener
 * is put on loopback and a free port so that daemons of parallel tests do not fight over 8765
 * (pass your own `--listen` in `args` to change that). stderr is kept (and echoed when
 * DIANE_TEST_VERBOSE=1). The process is registered for `cleanupProcesses()`.
 */
export async function startDaemon(opts: StartDaemonOptions): Promise<DaemonHandle> {
  const { home, args = [], env = {}, mcpHost = '127.0.0.1', timeoutMs = 20_000 } = opts;
  const port = opts.mcpPort ?? (await freePort());
  const ownListen = args.some((a) => a === '--listen' || a.startsWith('--listen='));
  const freeClusterPort = ownListen ? undefined : await freePort();
  const clusterPort = freeClusterPort ?? listenPortOf(args);
  const argv = [
    dianeBin,
    'serve',
    '--mcp-listen',
    `${mcpHost.includes(':') ? `[${mcpHost}]` : mcpHost}:${port}`,
    ...(freeClusterPort === undefined ? [] : ['--listen', `127.0.0.1:${freeClusterPort}`]),
    ...args,
  ];
  const [command, commandArgs] =
    opts.fileLimit === undefined
      ? [process.execPath, argv]
      : ['/bin/sh', ['-c', `ulimit -n ${opts.fileLimit} && exec "$0" "$@"`, process.execPath, ...argv]];
  const proc = trackProcess(
    spawn(command, commandArgs, {
      cwd: repoRoot,
      env: { ...cleanEnv(), DIANE_HOME: home, DIANE_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const pid = proc.pid;
  let stderr = '';
  let stdout = '';
  const verbose = process.env.DIANE_TEST_VERBOSE === '1';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (verbose) process.stderr.write(chunk.replace(/^(?=.)/gm, `[diane ${pid}] `));
  });
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (verbose) process.stderr.write(chunk.replace(/^(?=.)/gm, `[diane ${pid} stdout] `));
  });
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    proc.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
  });
  const closed = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  const spawnError = new Promise<Error>((resolve) => proc.once('error', resolve));
  /** The output is complete once the pipes close; do not wait long for that. */
  const settledStderr = async () => {
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    return stderr;
  };

  if (pid === undefined) throw new DaemonStartError(`could not spawn diane: ${await spawnError}`, '');

  const healthUrl = `http://127.0.0.1:${port}/healthz`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (status) {
      throw new DaemonStartError(
        `diane serve exited (code ${status.code}, signal ${status.signal}) before /healthz answered`,
        await settledStderr(),
      );
    }
    try {
      const res = await fetch(healthUrl, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline) {
      proc.kill('SIGKILL');
      await exited;
      throw new DaemonStartError(
        `diane serve did not answer ${healthUrl} within ${timeoutMs} ms`,
        await settledStderr(),
      );
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', stopTimeoutMs = 20_000): Promise<ExitStatus> => {
    if (status) return status;
    proc.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), stopTimeoutMs);
    });
    const outcome = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      proc.kill('SIGKILL');
      await exited;
      throw new DaemonStartError(`diane did not exit within ${stopTimeoutMs} ms of ${signal}`, stderr);
    }
    return outcome;
  };

  const mcpUrl = `http://127.0.0.1:${port}/mcp`;
  // Written before the endpoint listens, so it is there once /healthz answers.
  const token = readFileSync(join(home, 'agent-token'), 'utf8').trim();
  rememberAgentToken(mcpUrl, token);
  return {
    home,
    port,
    mcpUrl,
    token,
    authHeaders: { authorization: `Bearer ${token}` },
    clusterPort,
    proc,
    pid,
    stderr: () => stderr,
    stdout: () => stdout,
    exited,
    stop,
    kill9: async () => {
      if (!status) proc.kill('SIGKILL');
      return exited;
    },
  };
}

/** The port of a `--listen host:port` (or `--listen=host:port`) the caller passed itself. */
function listenPortOf(args: string[]): number | undefined {
  const i = args.findIndex((a) => a === '--listen' || a.startsWith('--listen='));
  if (i < 0) return undefined;
  const value = args[i]!.startsWith('--listen=') ? args[i]!.slice('--listen='.length) : args[i + 1];
  const port = Number(/:(\d+)$/.exec(value ?? '')?.[1]);
  return Number.isInteger(port) ? port : undefined;
}

/** Agent tokens of the daemons this test process started, by `host:port` of their endpoint. */
const agentTokens = new Map<string, string>();

function endpointKey(url: string): string {
  return new URL(url).host;
}

function rememberAgentToken(url: string, token: string): void {
  agentTokens.set(endpointKey(url), token);
  // The daemon answers on 127.0.0.1 and localhost alike.
  agentTokens.set(endpointKey(url.replace('//127.0.0.1:', '//localhost:')), token);
}

/**
 * The bearer token of the daemon (started by {@link startDaemon}) that serves `url`, if any.
 * The client helpers send it unless told otherwise, so that tests read like an agent
 * configured from `diane info`.
 */
export function agentTokenFor(url: string | URL): string | undefined {
  return agentTokens.get(endpointKey(String(url)));
}
