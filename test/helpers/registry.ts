import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendantPids, isAlive } from './procs.js';

/** Something a test opened that must not outlive it (an MCP client, a server). */
export interface Closable {
  close(): Promise<void>;
}

const processes = new Set<ChildProcess>();
const extraPids = new Set<number>();
const closables = new Set<Closable>();

/** Registers a spawned process for {@link cleanupProcesses}; forgotten once it exits. */
export function trackProcess(proc: ChildProcess): ChildProcess {
  processes.add(proc);
  proc.once('exit', () => processes.delete(proc));
  return proc;
}

/** Registers a pid the test started indirectly (e.g. the child of an SDK transport). */
export function trackPid(pid: number): void {
  extraPids.add(pid);
}

/** Registers a client or server to close (best effort) in {@link cleanupProcesses}. */
export function trackClosable<T extends Closable>(closable: T): T {
  closables.add(closable);
  return closable;
}

export function untrackClosable(closable: Closable): void {
  closables.delete(closable);
}

function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/**
 * For afterEach/afterAll: closes every tracked client (at most 2 s each), then SIGKILLs every
 * tracked process that is still running together with all its descendants (collected before
 * the kill, since orphans get a new parent), and waits up to 5 s for them to be gone.
 */
export async function cleanupProcesses(): Promise<void> {
  const toClose = [...closables];
  closables.clear();
  await Promise.all(toClose.map((c) => Promise.race([c.close().catch(() => undefined), sleep(2000)])));

  const roots = [
    ...[...processes].filter((p) => !exited(p) && p.pid !== undefined).map((p) => p.pid!),
    ...[...extraPids].filter(isAlive),
  ];
  extraPids.clear();
  const victims = new Set<number>();
  for (const pid of roots) {
    victims.add(pid);
    for (const child of descendantPids(pid)) victims.add(child);
  }
  for (const pid of victims) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while ([...victims].some(isAlive) && Date.now() < deadline) await sleep(25);
  const left = [...victims].filter(isAlive);
  if (left.length > 0)
    process.stderr.write(`cleanupProcesses: still alive after SIGKILL: ${left.join(', ')}\n`);
}
