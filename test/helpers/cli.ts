import { spawn } from 'node:child_process';
import { cleanEnv, dianeBin, repoRoot } from './home.js';
import { trackProcess } from './registry.js';

export interface CliResult {
  /** Exit code, or null when the process died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Added to the environment (after DIANE_HOME and DIANE_LOG_LEVEL=debug, so it can override them). */
  env?: Record<string, string>;
  /** Written to stdin, which is then closed. stdin is always closed: the CLI never sees a TTY. */
  input?: string;
  /** Kill (SIGKILL) and reject after this long. Default 30 s. */
  timeoutMs?: number;
}

/** Thrown by {@link runCli} on timeout; carries the output so far. */
export class CliTimeoutError extends Error {
  constructor(
    readonly args: string[],
    readonly stdout: string,
    readonly stderr: string,
    timeoutMs: number,
  ) {
    super(
      `diane ${args.join(' ')} did not finish within ${timeoutMs} ms\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
    );
    this.name = 'CliTimeoutError';
  }
}

/**
 * Runs `node bin/diane.js ...args` with DIANE_HOME=home and DIANE_LOG_LEVEL=debug (other
 * DIANE_* variables of the test process are dropped), no TTY, and resolves with the exit code
 * and the whole output. Never rejects on a non-zero exit; rejects on timeout.
 */
export function runCli(home: string, args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const proc = trackProcess(
      spawn(process.execPath, [dianeBin, ...args], {
        cwd: repoRoot,
        env: { ...cleanEnv(), DIANE_HOME: home, DIANE_LOG_LEVEL: 'debug', ...opts.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (process.env.DIANE_TEST_VERBOSE === '1') process.stderr.write(chunk);
    });
    proc.stdin!.on('error', () => undefined); // the CLI may exit without reading its input
    proc.stdin!.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close' (not 'exit'): all output has been read by then.
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new CliTimeoutError(args, stdout, stderr, timeoutMs));
      else resolve({ code, signal, stdout, stderr });
    });
  });
}
