import { type Command, Option } from 'commander';
import { MAX_AUDIT_LIMIT } from '../admin/auditRoutes.js';
import type { AuditParams } from '../admin/types.js';
import { AUDIT_KINDS, AUDIT_OUTCOMES, type AuditEventJson } from '../audit/index.js';
import { formatDuration, parseDuration } from '../config/duration.js';
import { DianeError, ExitCode } from '../errors.js';
import { adminClientFor, type GlobalOptions, jsonOption, positiveIntArg, printJsonLine } from './common.js';

/** The filters and switches `diane audit` and `diane slave audit` share. */
export interface AuditCommandOptions {
  since?: Date;
  until?: Date;
  outcome?: string;
  kind?: string;
  limit: number;
  json?: boolean;
  follow?: boolean;
}

const DEFAULT_LIMIT = 50;

/** `--since 1h` (back from now) or `--since 2025-03-01T10:00:00Z`. */
export function timeArg(flag: string) {
  return (value: string): Date => {
    if (/^\d/.test(value) && !/^\d{4}-\d{2}-\d{2}/.test(value)) {
      try {
        return new Date(Date.now() - parseDuration(value));
      } catch (err) {
        throw new DianeError(`${flag}: ${(err as Error).message}`, ExitCode.usage);
      }
    }
    const at = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN);
    if (Number.isNaN(at.getTime())) {
      throw new DianeError(
        `${flag}: expected a duration back from now (30m, 1h, 7d) or an ISO-8601 time (2025-03-01T10:00:00Z), got "${value}"`,
        ExitCode.usage,
      );
    }
    return at;
  };
}

/** The options both audit commands take, `--agent` and `--host` aside. */
export function auditFilterOptions(): Option[] {
  return [
    new Option(
      '--since <when>',
      'only events from this time on: a duration back (1h, 7d) or an ISO time',
    ).argParser(timeArg('--since')),
    new Option('--until <when>', 'only events before this time: a duration back or an ISO time').argParser(
      timeArg('--until'),
    ),
    new Option('--outcome <outcome>', 'only events that ended this way').choices(AUDIT_OUTCOMES),
    new Option('--kind <kind>', 'only events of this kind').choices(AUDIT_KINDS),
    new Option('--limit <n>', 'show at most the newest n events (before following)')
      .argParser(positiveIntArg('--limit', 1, MAX_AUDIT_LIMIT))
      .default(DEFAULT_LIMIT),
    new Option('--follow', 'keep running and show events as they are written (Ctrl-C to stop)'),
    jsonOption(),
  ];
}

/** One column of the human table: its header, its minimum width, and its cell. */
export interface AuditColumn<E> {
  header: string;
  width: number;
  cell: (event: E) => string;
}

/** The columns of `diane audit`; `slave audit` drops HOST and renames AGENT. */
export function auditColumns(): AuditColumn<AuditEventJson>[] {
  return [
    { header: 'TIME', width: 24, cell: (e) => e.at },
    { header: 'AGENT', width: 12, cell: (e) => e.agent ?? '-' },
    { header: 'KIND', width: 14, cell: (e) => e.kind },
    { header: 'NAME', width: 24, cell: (e) => e.exposed_name ?? '-' },
    { header: 'HOST', width: 8, cell: (e) => e.host ?? '-' },
    { header: 'OUTCOME', width: 13, cell: (e) => e.outcome },
    {
      header: 'DURATION',
      width: 8,
      cell: (e) => (e.duration_ms === null ? '-' : formatDuration(e.duration_ms)),
    },
    { header: 'BYTES IN/OUT', width: 12, cell: (e) => `${bytes(e.bytes_in)}/${bytes(e.bytes_out)}` },
    { header: 'ERROR', width: 0, cell: (e) => e.error ?? '' },
  ];
}

function bytes(n: number | null): string {
  if (n === null) return '-';
  if (n < 1024) return String(n);
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}K`;
  return `${(n / (1024 * 1024)).toFixed(1)}M`;
}

/**
 * Prints events as a table whose columns keep the widths of the first rows, so that the lines
 * a `--follow` adds later line up under them; with `--json`, one object per line (NDJSON).
 * Everything goes through the terminal guard (names and errors come from agents and slaves).
 */
export class AuditPrinter<E> {
  private widths: number[] | undefined;

  constructor(
    private readonly columns: AuditColumn<E>[],
    private readonly json: boolean,
    private readonly toJson: (event: E) => unknown = (e) => e,
  ) {}

  print(events: readonly E[]): void {
    if (this.json) {
      for (const e of events) printJsonLine(this.toJson(e));
      return;
    }
    const rows = events.map((e) => this.columns.map((c) => oneLine(c.cell(e))));
    if (this.widths === undefined) {
      this.widths = this.columns.map((c, i) =>
        Math.max(c.width, c.header.length, ...rows.map((r) => r[i]!.length)),
      );
      this.line(this.columns.map((c) => c.header));
    }
    for (const row of rows) this.line(row);
  }

  private line(cells: string[]): void {
    const widths = this.widths!;
    const text = cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    process.stdout.write(`${text.trimEnd()}\n`);
  }
}

/** A cell never breaks the table: newlines and tabs in an error become spaces. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\t]+/g, ' ');
}

/** Ctrl-C or SIGTERM ends a `--follow` normally. */
export function stopSignal(): AbortSignal {
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  return stop.signal;
}

/** `diane audit`: the master's audit trail, through the admin socket. */
export function registerAuditCommand(program: Command): void {
  const audit = program
    .command('audit')
    .description('the audit trail: every call of every agent (newest last); --follow to watch')
    .addOption(new Option('--agent <name>', 'only the calls of this agent'))
    .addOption(new Option('--host <host>', 'only calls served by this slave host'));
  for (const option of auditFilterOptions()) audit.addOption(option);
  audit.action(async (opts: AuditCommandOptions & { agent?: string; host?: string }, cmd: Command) => {
    const client = adminClientFor(cmd.optsWithGlobals<GlobalOptions>());
    const params: AuditParams = {
      ...(opts.agent === undefined ? {} : { agent: opts.agent }),
      ...(opts.host === undefined ? {} : { host: opts.host }),
      ...(opts.outcome === undefined ? {} : { outcome: opts.outcome }),
      ...(opts.kind === undefined ? {} : { kind: opts.kind }),
      ...(opts.since === undefined ? {} : { since: opts.since.toISOString() }),
      ...(opts.until === undefined ? {} : { until: opts.until.toISOString() }),
    };
    const first = await client.audit({ ...params, limit: opts.limit });
    const printer = new AuditPrinter(auditColumns(), Boolean(opts.json));
    if (first.events.length > 0 || (opts.follow && !opts.json)) printer.print(first.events);
    else if (!opts.json) process.stdout.write('No audit events.\n');
    if (first.more && !opts.json) {
      process.stderr.write(
        `(older events not shown: raise --limit, up to ${MAX_AUDIT_LIMIT}, or use --since)\n`,
      );
    }
    if (!opts.follow) return;
    await client.followAudit(
      { ...params, after_id: first.last_id },
      (event) => printer.print([event]),
      stopSignal(),
      // Only once the daemon holds the stream, so that a script may start acting on this line.
      () => process.stderr.write('Following the audit trail (Ctrl-C to stop)...\n'),
    );
  });
}
