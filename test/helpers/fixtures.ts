import { type ChildProcess, spawn } from 'node:child_process';
import { cleanEnv, fixturePath, repoRoot } from './home.js';
import { trackProcess } from './registry.js';

export interface HttpEchoServerOptions {
  /** FIXTURE_NAME */
  name?: string;
  /** FIXTURE_EVENTS */
  events?: string;
  /** FIXTURE_EXTRA_TOOLS */
  extraTools?: string[];
  /** PORT; default 0 (a free one). */
  port?: number;
  env?: Record<string, string>;
  /** How long to wait for the `listening` line. Default 15 s. */
  timeoutMs?: number;
}

export interface HttpEchoServerHandle {
  port: number;
  /** http://127.0.0.1:<port>/mcp */
  url: string;
  proc: ChildProcess;
  pid: number;
  stderr(): string;
  /** SIGTERM (the fixture exits 0 on it) and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * Spawns test/fixtures/http-echo-server.mjs and resolves once it printed `listening <port>`.
 * Registered for `cleanupProcesses()`.
 */
export function startHttpEchoServer(opts: HttpEchoServerOptions = {}): Promise<HttpEchoServerHandle> {
  const env: Record<string, string> = { ...cleanEnv(), PORT: String(opts.port ?? 0) };
  if (opts.name !== undefined) env.FIXTURE_NAME = opts.name;
  if (opts.events !== undefined) env.FIXTURE_EVENTS = opts.events;
  if (opts.extraTools !== undefined) env.FIXTURE_EXTRA_TOOLS = opts.extraTools.join(',');
  Object.assign(env, opts.env);
  const proc = trackProcess(
    spawn(process.execPath, [fixturePath('http-echo-server.mjs')], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  let stdout = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (process.env.DIANE_TEST_VERBOSE === '1') process.stderr.write(chunk);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`http-echo-server did not print "listening" in time\n${stderr}`));
    }, opts.timeoutMs ?? 15_000);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`http-echo-server exited (code ${code}, signal ${signal}) before listening\n${stderr}`),
      );
    });
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /^listening (\d+)$/m.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      const port = Number(match[1]);
      resolve({
        port,
        url: `http://127.0.0.1:${port}/mcp`,
        proc,
        pid: proc.pid!,
        stderr: () => stderr,
        stop: async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}
