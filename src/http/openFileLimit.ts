import { readFileSync } from 'node:fs';

/**
 * The soft limit on open files (`ulimit -n`) of this process, or undefined where it cannot be
 * read (only Linux exposes it without a native module, in /proc/self/limits).
 */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.slice('Max open files'.length).trim().split(/\s+/)[0]);
    return Number.isInteger(soft) && soft > 0 ? soft : undefined;
  } catch {
    return undefined;
  }
}
