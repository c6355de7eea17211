import { Option } from 'commander';
import { AdminClient } from '../admin/adminClient.js';
import { parseDuration } from '../config/duration.js';
import { homePaths, resolveHome } from '../config/paths.js';
import { DianeError, ExitCode } from '../errors.js';

/** Global options every command sees. */
export interface GlobalOptions {
  home?: string;
}

export function homeFrom(opts: GlobalOptions): string {
  return resolveHome(opts.home ? { ...process.env, DIANE_HOME: opts.home } : process.env);
}

export function adminClientFor(opts: GlobalOptions): AdminClient {
  const home = homeFrom(opts);
  return new AdminClient(homePaths(home).socket, home);
}

export function jsonOption(): Option {
  return new Option('--json', 'print plain JSON for scripts').env('DIANE_JSON');
}

export function durationArg(flag: string) {
  return (value: string): number => {
    try {
      return parseDuration(value);
    } catch (err) {
      throw new DianeError(`${flag}: ${(err as Error).message}`, ExitCode.usage);
    }
  };
}

export function positiveIntArg(flag: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
      throw new DianeError(
        `${flag}: expected a whole number from ${min} to ${max}, got "${value}"`,
        ExitCode.usage,
      );
    }
    return n;
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain text table: columns padded to the widest cell. */
export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(headers)}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}
