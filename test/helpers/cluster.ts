import { type ChildProcess, spawn } from 'node:child_process';
import { runCli } from './cli.js';
import type { DaemonHandle, ExitStatus } from './daemon.js';
import { cleanEnv, dianeBin, repoRoot } from './home.js';
import { trackProcess } from './registry.js';
import { waitFor } from './wait.js';

export interface CliProcess {
  proc: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<ExitStatus>;
  stop(signal?: NodeJS.Signals): Promise<ExitStatus>;
}

/** Starts a long-running `diane` command (pair, slave start...) with its own DIANE_HOME. */
export function spawnCli(home: string, args: string[], env: Record<string, string> = {}): CliProcess {
  const proc = trackProcess(
    spawn(process.execPath, [dianeBin, ...args], {
      cwd: repoRoot,
      env: { ...cleanEnv(), DIANE_HOME: home, DIANE_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stdout = '';
  let stderr = '';
  const verbose = process.env.DIANE_TEST_VERBOSE === '1';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
    if (verbose) process.stderr.write(c.replace(/^(?=.)/gm, `[${args[0]} ${args[1] ?? ''} ${proc.pid}] `));
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    proc.once('close', (code, signal) => resolve({ code, signal }));
  });
  return {
    proc,
    pid: proc.pid!,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export function masterUrl(master: DaemonHandle): string {
  if (master.clusterPort === undefined) throw new Error('this master was started with its own --listen');
  return `https://127.0.0.1:${master.clusterPort}`;
}

export async function caFingerprintOf(master: DaemonHandle): Promise<string> {
  const res = await runCli(master.home, ['info', '--json']);
  return JSON.parse(res.stdout).ca_fingerprint;
}

export interface PendingJson {
  host_id: string;
  pairing_code: string;
  source_address: string;
  key_fingerprint: string;
  re_pair: boolean;
}

export async function pendingOf(master: DaemonHandle): Promise<PendingJson[]> {
  return JSON.parse((await runCli(master.home, ['slave', 'pending', '--json'])).stdout).pending;
}

/** Starts `diane slave pair` for `hostId` and waits until the master lists the request. */
export async function requestPairing(
  master: DaemonHandle,
  slaveHome: string,
  hostId: string,
): Promise<{ pair: CliProcess; request: PendingJson }> {
  const fingerprint = await caFingerprintOf(master);
  const known = new Set((await pendingOf(master)).map((p) => p.key_fingerprint));
  const pair = spawnCli(slaveHome, [
    'slave',
    'pair',
    `--master=${masterUrl(master)}`,
    `--host-id=${hostId}`,
    `--ca-fingerprint=${fingerprint}`,
  ]);
  const request = await waitFor(
    async () => (await pendingOf(master)).find((p) => p.host_id === hostId && !known.has(p.key_fingerprint)),
    { what: `pairing request of ${hostId}` },
  );
  return { pair, request };
}

/** Scenario 1 steps 1-5 in one call: pair, approve, credentials saved. */
export async function pairSlave(master: DaemonHandle, slaveHome: string, hostId: string): Promise<void> {
  const { pair, request } = await requestPairing(master, slaveHome, hostId);
  const approved = await runCli(master.home, ['slave', 'approve', hostId, request.pairing_code]);
  if (approved.code !== 0) throw new Error(`approve failed: ${approved.stderr}`);
  const exit = await pair.exited;
  if (exit.code !== 0) throw new Error(`pair exited ${exit.code}: ${pair.stderr()}`);
}

/** Fast heartbeats so tests see a silent peer within seconds. */
export const FAST_HEARTBEAT = ['--heartbeat-interval', '250ms', '--heartbeat-timeout', '1500ms'];

export function startSlave(home: string, args: string[] = []): CliProcess {
  return spawnCli(home, ['slave', 'start', ...FAST_HEARTBEAT, ...args]);
}

export interface SlaveHealthJson {
  host_id: string;
  status: 'connected' | 'disconnected';
  enabled: boolean;
  tool_count: number;
  last_heartbeat?: string;
  cert_expires_at: string;
}

export async function slavesOf(master: DaemonHandle): Promise<SlaveHealthJson[]> {
  return JSON.parse((await runCli(master.home, ['slave', 'list', '--json'])).stdout).slaves;
}

export async function waitForSlaveStatus(
  master: DaemonHandle,
  hostId: string,
  status: 'connected' | 'disconnected',
  timeoutMs = 20_000,
): Promise<SlaveHealthJson> {
  return waitFor(
    async () => (await slavesOf(master)).find((s) => s.host_id === hostId && s.status === status),
    { what: `${hostId} ${status}`, timeoutMs },
  );
}
