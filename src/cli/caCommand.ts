import type { Command } from 'commander';
import { Option } from 'commander';
import type { CaRolloverStatus } from '../cluster/caRollover.js';
import { adminClientFor, type GlobalOptions, jsonOption, printJson, printTable } from './common.js';

/** `diane ca`: the slave CA's lifecycle on this master, through the admin socket. */
export function registerCaCommand(program: Command): void {
  const ca = program.command('ca').description("the master's slave CA: status and rollover");
  ca.command('status')
    .description('the current CA, the next one during a rollover, and which CA each host is on')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const status = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).caStatus();
      if (opts.json) return printJson(status);
      printStatus(status);
    });
  ca.command('rotate')
    .description('start a CA rollover: a new CA, trusted next to the current one; slaves renew onto it')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const status = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).caRotate();
      if (opts.json) return printJson(status);
      process.stdout.write(
        `CA rollover started. New certificates now come from ${status.next?.fingerprint}.\n` +
          'Connected slaves renew onto it within a minute; `diane ca status` shows who is left.\n' +
          'When every host is on the next CA, run `diane ca finish`.\n\n',
      );
      printStatus(status);
    });
  ca.command('finish')
    .description('end the rollover: the next CA becomes the only one and the old key is deleted')
    .addOption(new Option('--force', 'finish even if some hosts have not renewed (they must pair again)'))
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean; force?: boolean }, cmd: Command) => {
      const result = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).caFinish(opts.force === true);
      if (opts.json) return printJson(result);
      process.stdout.write(`CA rollover finished. The CA is now ${result.current.fingerprint}.\n`);
      if (result.left_behind.length > 0) {
        process.stdout.write(
          `These hosts were still on the old CA and must pair again: ${result.left_behind.join(', ')}\n`,
        );
      }
    });
}

function printStatus(status: CaRolloverStatus): void {
  const line = (label: string, d: { fingerprint: string; not_after: string }) =>
    process.stdout.write(`${label.padEnd(9)}${d.fingerprint}  (until ${d.not_after})\n`);
  line('current', status.current);
  if (status.next) line('next', status.next);
  if (status.retired) line('retired', status.retired);
  process.stdout.write(
    status.state === 'rolling'
      ? `\nRollover under way; waiting for: ${status.waiting_for.length ? status.waiting_for.join(', ') : 'nobody (run `diane ca finish`)'}\n\n`
      : '\nNo rollover under way.\n\n',
  );
  if (status.hosts.length === 0) return;
  printTable(
    ['HOST', 'CA', 'LINK', 'ENABLED', 'RENEWAL'],
    status.hosts.map((h) => [
      h.host_id,
      h.ca,
      h.connected ? 'connected' : '-',
      h.enabled ? 'yes' : 'no',
      h.renewal_pending ? 'pending' : '-',
    ]),
  );
}
