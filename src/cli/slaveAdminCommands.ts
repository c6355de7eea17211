import { type Command, Option } from 'commander';
import type { PendingRequestJson } from '../admin/pairingRoutes.js';
import { formatDuration } from '../config/duration.js';
import { DianeError, ExitCode } from '../errors.js';
import { adminClientFor, type GlobalOptions, jsonOption, printJson, printTable } from './common.js';
import { confirm, isInteractive } from './prompt.js';

/** Master-side pairing commands: they act through the admin socket of the local daemon. */
export function registerSlaveAdminCommands(slave: Command): void {
  slave
    .command('pending')
    .description('pairing requests waiting for approval')
    .addOption(jsonOption())
    .addOption(
      new Option('--watch', 'keep running and show requests and decisions as they happen').env('DIANE_WATCH'),
    )
    .action(async (opts: { json?: boolean; watch?: boolean }, cmd: Command) => {
      const client = adminClientFor(cmd.optsWithGlobals<GlobalOptions>());
      const { pending } = await client.pending();
      if (opts.json && !opts.watch) return printJson({ pending });
      if (opts.json) for (const p of pending) printJson({ type: 'pending', ...p });
      else printPending(pending);
      if (!opts.watch) return;
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      process.once('SIGTERM', () => abort.abort());
      await client.streamEvents(
        '/api/slave/events',
        (type, data) => {
          const e = data as { host_id: string; pairing_code: string; key_fingerprint: string; at: string };
          if (opts.json) return process.stdout.write(`${JSON.stringify({ type, ...e })}\n`);
          const hint = type === 'new' ? `   approve: diane slave approve ${e.host_id} ${e.pairing_code}` : '';
          process.stdout.write(
            `${e.at}  ${type.padEnd(8)}  ${e.host_id}  ${e.pairing_code}  ${e.key_fingerprint}${hint}\n`,
          );
        },
        abort.signal,
        // Only once the daemon holds the stream, so that a script may start acting on this line.
        () => process.stderr.write('\nWatching for pairing events (Ctrl-C to stop)...\n'),
      );
    });
  slave
    .command('approve <host> <code>')
    .description('approve a pairing request: the master signs the slave certificate')
    .addOption(jsonOption())
    .action(async (host: string, code: string, opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).approve(host, code);
      if (opts.json) return printJson(res);
      process.stdout.write(
        `Approved ${res.host_id}${res.re_pair ? ' (re-pair: its previous certificate is revoked)' : ''}. ` +
          `Certificate ${res.cert_serial} valid until ${res.expires_at}.\n`,
      );
    });
  slave
    .command('deny <host> <code>')
    .description('deny a pairing request')
    .addOption(jsonOption())
    .action(async (host: string, code: string, opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).deny(host, code);
      if (opts.json) return printJson(res);
      process.stdout.write(`Denied the pairing request of ${res.host_id}.\n`);
    });
  slave
    .command('join-token')
    .description('the join token slaves must give to request pairing (with --pairing-token required)')
    .command('rotate')
    .description('replace the join token: pair commands printed before stop working; pending requests stay')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).rotateJoinToken();
      if (opts.json) return printJson(res);
      process.stdout.write(`Join token rotated. Pair a slave with:\n  ${res.pair_command}\n`);
    });
}

/** What `slave list` says of a host's renewal: a refusal is shown until a renewal succeeds. */
function renewalState(s: {
  renewal_pending: boolean;
  renewal_error?: string;
  renewal_error_at?: string;
}): string {
  if (s.renewal_error) return `failing since ${s.renewal_error_at ?? '?'}: ${s.renewal_error}`;
  return s.renewal_pending ? 'issued, awaiting reconnect' : 'ok';
}

function printPending(pending: PendingRequestJson[]): void {
  if (pending.length === 0) {
    process.stdout.write('No pending pairing requests.\n');
    return;
  }
  printTable(
    ['HOST', 'CODE', 'SOURCE', 'KEY FINGERPRINT', 'AGE', 'EXPIRES IN', 'RE-PAIR'],
    pending.map((p) => [
      p.host_id,
      p.pairing_code,
      p.source_address,
      p.key_fingerprint,
      formatDuration(p.age_seconds * 1000),
      formatDuration(Math.max(0, Date.parse(p.expires_at) - Date.now())),
      p.re_pair ? 'yes' : 'no',
    ]),
  );
}

/** Master-side slave management: list, revoke, revocation log. */
export function registerSlaveManagementCommands(slave: Command): void {
  slave
    .command('list')
    .description('every paired host: status, last heartbeat, tool count, certificate expiry')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { slaves } = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).slaveHealth();
      if (opts.json) return printJson({ slaves });
      if (slaves.length === 0) return void process.stdout.write('No paired slaves.\n');
      // With a bus (several masters), which master holds each link; one master alone has no column.
      const clustered = slaves.some((s) => s.master !== undefined);
      printTable(
        [
          'HOST',
          'STATUS',
          ...(clustered ? ['MASTER'] : []),
          'LAST HEARTBEAT',
          'TOOLS',
          'CERT EXPIRES',
          'LAST RENEWAL',
          'RENEWAL',
          'REMOTE',
        ],
        slaves.map((s) => [
          s.host_id,
          s.enabled ? s.status : 'revoked',
          ...(clustered ? [s.master ?? '-'] : []),
          s.last_heartbeat ?? s.last_seen ?? '-',
          String(s.tool_count),
          s.cert_expires_at,
          s.last_renewed_at ?? '-',
          renewalState(s),
          s.remote_address ?? '',
        ]),
      );
    });
  slave
    .command('revoke [host]')
    .description('revoke a slave (or --all): its link is cut at once and it must pair again')
    .addOption(new Option('--all', 'revoke every paired slave').env('DIANE_REVOKE_ALL'))
    .addOption(new Option('--reason <text>', 'recorded in the revocation log').env('DIANE_REVOKE_REASON'))
    .addOption(
      new Option('--yes', 'do not ask for confirmation (required when not on a terminal)').env('DIANE_YES'),
    )
    .addOption(jsonOption())
    .action(
      async (
        host: string | undefined,
        opts: { all?: boolean; reason?: string; yes?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        if (Boolean(host) === Boolean(opts.all)) {
          throw new DianeError('name one host to revoke, or pass --all', ExitCode.usage);
        }
        const target = opts.all ? 'EVERY paired slave' : `slave ${host}`;
        if (!opts.yes) {
          if (!isInteractive()) {
            throw new DianeError(
              `refusing to revoke ${target} without --yes when not on a terminal`,
              ExitCode.usage,
            );
          }
          if (
            !(await confirm(
              `Revoke ${target}? Its live connection is cut and it must pair again. Are you sure?`,
            ))
          ) {
            throw new DianeError('not revoked', ExitCode.failure);
          }
        }
        const client = adminClientFor(cmd.optsWithGlobals<GlobalOptions>());
        const res = await client.revoke(opts.all ? { all: true } : { host_id: host! }, opts.reason);
        if (opts.json) return printJson(res);
        if (res.revoked.length === 0) process.stdout.write('No slave to revoke.\n');
        for (const r of res.revoked)
          process.stdout.write(`Revoked ${r.host_id} (certificate ${r.cert_serial}).\n`);
      },
    );
  slave
    .command('revoked')
    .description('the revocation log: host, certificate serial, time, reason')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { revoked } = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).revoked();
      if (opts.json) return printJson({ revoked });
      if (revoked.length === 0) return void process.stdout.write('No revoked credentials.\n');
      printTable(
        ['HOST', 'SERIAL', 'REVOKED AT', 'REASON'],
        revoked.map((r) => [r.host_id, r.cert_serial, r.revoked_at, r.reason ?? '']),
      );
    });
}
