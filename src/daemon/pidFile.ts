import { readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../config/files.js';
import { DianeError } from '../errors.js';

export function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Claims the pidfile for this process; a live owner means another instance is running. */
export function claimPidFile(path: string, what: string): () => void {
  const other = readPid(path);
  if (other !== undefined && other !== process.pid && isProcessAlive(other)) {
    throw new DianeError(`${what} is already running (pid ${other})`);
  }
  writeFileAtomic(path, `${process.pid}\n`, 0o600);
  return () => {
    if (readPid(path) === process.pid) rmSync(path, { force: true });
  };
}
