import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { adminSocketAnswers } from '../admin/socketProbe.js';
import type { CaRolloverStatus } from '../cluster/caRollover.js';
import { writeFileAtomic } from '../config/files.js';
import { assertHomeTrusted } from '../config/homeTrust.js';
import { ensureHome, homePaths } from '../config/paths.js';
import { DianeError, ExitCode } from '../errors.js';
import {
  exportTrustBundle,
  installTrustBundle,
  markShared,
  openTrustBundle,
  SEALED_BOX_DEFAULTS,
} from '../pki/index.js';
import { adminClientFor, type GlobalOptions, homeFrom, jsonOption, printJson, printTable } from './common.js';
import { askSecret, isInteractive } from './prompt.js';

/** Never a flag: a flag's value shows in `ps` and in shell history. */
const PASSPHRASE_ENV = 'DIANE_CA_PASSPHRASE';

/** `diane ca`: the slave CA's lifecycle on this master, through the admin socket. */
export function registerCaCommand(program: Command): void {
  const ca = program
    .command('ca')
    .description("the master's slave CA: status, rollover, and sharing it with other masters");
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
      if (status.warning) process.stderr.write(`WARNING: ${status.warning}\n`);
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
      if (result.warning) process.stderr.write(`WARNING: ${result.warning}\n`);
      if (opts.json) return printJson(result);
      process.stdout.write(`CA rollover finished. The CA is now ${result.current.fingerprint}.\n`);
      if (result.left_behind.length > 0) {
        process.stdout.write(
          `These hosts were still on the old CA and must pair again: ${result.left_behind.join(', ')}\n`,
        );
      }
    });
  registerBundleCommands(ca);
}

/** `diane ca export` / `diane ca import`: the CA and shared secrets, sealed, between masters' homes. */
function registerBundleCommands(ca: Command): void {
  ca.command('export')
    .description(
      `write this master's CA and shared secrets to a file sealed under a passphrase ($${PASSPHRASE_ENV} or a prompt), for \`diane ca import\` on another master`,
    )
    .requiredOption('--out <file>', 'the file to write (mode 0600)')
    .addOption(jsonOption())
    .action(async (opts: { out: string; json?: boolean }, cmd: Command) => {
      const paths = homePaths(homeFrom(cmd.optsWithGlobals<GlobalOptions>()));
      assertHomeTrusted(paths);
      const passphrase = await passphraseFor('export');
      const { text, result } = await exportTrustBundle(paths, passphrase);
      const out = resolve(opts.out);
      writeFileAtomic(out, text, 0o600);
      markShared(paths, result.fingerprint, 'exported');
      if (opts.json) return printJson({ file: out, ...result });
      process.stdout.write(
        [
          `Wrote ${out} (CA ${result.fingerprint}${result.included.length ? `; with ${result.included.join(', ')}` : ''}).`,
          'It holds the CA key: move it to the new master over a channel you trust, import it there',
          '(`diane ca import FILE`, the master stopped), then delete it. The passphrase travels separately.',
          '',
        ].join('\n'),
      );
    });
  ca.command('import')
    .description('install a CA bundle from `diane ca export` in this home (the master must be stopped)')
    .argument('<file>', 'the sealed bundle')
    .addOption(
      new Option('--force', "replace this home's own, different CA (its slaves would have to pair again)"),
    )
    .addOption(jsonOption())
    .action(async (file: string, opts: { force?: boolean; json?: boolean }, cmd: Command) => {
      const home = homeFrom(cmd.optsWithGlobals<GlobalOptions>());
      const paths = homePaths(home);
      ensureHome(home);
      if (await adminSocketAnswers(paths.socket)) {
        throw new DianeError(
          `a Diane master is running on ${home} (its admin socket answers). It holds the CA in memory and ` +
            'would not see the import: stop it first, import, then start it again.',
          ExitCode.failure,
        );
      }
      const text = readBundleFile(file);
      const passphrase = await passphraseFor('import');
      // Everything is decrypted and checked before the first write.
      const opened = await openTrustBundle(text, passphrase);
      const result = installTrustBundle(paths, opened, { force: opts.force === true });
      if (opts.json) return printJson(result);
      const changed = result.files.filter((f) => f.change !== 'unchanged');
      process.stdout.write(
        [
          `Imported CA ${result.fingerprint}${result.nextFingerprint ? ` (rollover under way to ${result.nextFingerprint})` : ''}.`,
          ...(changed.length
            ? changed.map((f) => `  ${f.change.padEnd(8)} ${f.path}`)
            : ['  every file was already up to date']),
          'Start the master (`diane serve`, with --public-host for the names slaves use to reach it):',
          'it issues its own server certificate from this CA.',
          '',
        ].join('\n'),
      );
    });
}

function readBundleFile(file: string): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new DianeError(`cannot read ${file}: ${(err as Error).message}`, ExitCode.usage);
  }
  if (size > SEALED_BOX_DEFAULTS.maxFileBytes) {
    throw new DianeError(`${file} is ${size} bytes: too large for a Diane CA bundle`, ExitCode.pki);
  }
  return readFileSync(file, 'utf8');
}

/** From $DIANE_CA_PASSPHRASE, or asked on the terminal (twice when it seals a new file). */
async function passphraseFor(purpose: 'export' | 'import'): Promise<string> {
  const fromEnv = process.env[PASSPHRASE_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!isInteractive()) {
    throw new DianeError(
      `no passphrase: set ${PASSPHRASE_ENV} or run on a terminal to be asked for it`,
      ExitCode.usage,
    );
  }
  const first = await askSecret(purpose === 'export' ? 'Passphrase for the bundle: ' : 'Passphrase: ');
  if (purpose === 'import') return first;
  const again = await askSecret('The same passphrase again: ');
  if (again !== first)
    throw new DianeError('the two passphrases differ; nothing was written', ExitCode.usage);
  return first;
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
