import { Option } from 'commander';
import { AdminClient } from '../admin/adminClient.js';
import { parseDuration } from '../config/duration.js';
import { assertHomeTrusted } from '../config/homeTrust.js';
import { homePaths, resolveHome } from '../config/paths.js';
import { DianeError, ExitCode } from '../errors.js';
import type { RejectedItem } from '../mcp/nameTable.js';
import { terminalSafeJson } from './terminalText.js';

/** Global options every command sees. */
export interface GlobalOptions {
  home?: string;
}

export function homeFrom(opts: GlobalOptions): string {
  return resolveHome(opts.home ? { ...process.env, DIANE_HOME: opts.home } : process.env);
}

export function adminClientFor(opts: GlobalOptions): AdminClient {
  const home = homeFrom(opts);
  const paths = homePaths(home);
  // The socket, and the token the daemon hands out through it, are only as safe as the home.
  assertHomeTrusted(paths);
  return new AdminClient(paths.socket, home);
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
  process.stdout.write(`${terminalSafeJson(value, 2)}\n`);
}

/** One JSON object on one line (NDJSON), for output a script reads line by line. */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${terminalSafeJson(value)}\n`);
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

/** `--all`: also list what is not exposed, with the reason. */
export function allOption(what: string): Option {
  return new Option('--all', `include ${what} that are not exposed, with the reason`).env('DIANE_ALL');
}

/** The "Not exposed" section of `tools list --all` and its siblings. */
export function printRejected(column: string, rejected: readonly RejectedItem[]): void {
  if (!rejected.length) return;
  process.stdout.write('\nNot exposed:\n');
  printTable(
    [column, 'UPSTREAM', 'REASON'],
    rejected.map((r) => [r.exposedName, `${r.upstream}:${r.originalName}`, `${r.reason}: ${r.detail}`]),
  );
}

/** The first line of a description, cut to fit a table. */
export function firstLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}
