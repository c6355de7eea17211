import { type Command, Option } from 'commander';
import { pairWithMaster } from '../cluster/pairingClient.js';
import { saveSlaveCredentials } from '../cluster/slaveCredentials.js';
import { formatDuration } from '../config/duration.js';
import { assertHomeTrusted } from '../config/homeTrust.js';
import { ensureHome, homePaths } from '../config/paths.js';
import { DianeError, ExitCode } from '../errors.js';
import { checkHostId, isJoinTokenShaped } from '../pairing/index.js';
import { type GlobalOptions, homeFrom, jsonOption, printJson } from './common.js';
import { confirm, isInteractive } from './prompt.js';

interface PairOptions {
  master: string;
  hostId: string;
  caFingerprint?: string;
  joinToken?: string;
  json?: boolean;
}

export function registerSlavePairCommand(slave: Command): void {
  slave
    .command('pair')
    .description('enroll this machine as a slave of a master (waits for an admin to approve)')
    .addOption(
      new Option('--master <url>', 'the master, e.g. https://main:8765')
        .env('DIANE_MASTER')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--host-id <name>', 'the name this machine takes on the master')
        .env('DIANE_HOST_ID')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option(
        '--ca-fingerprint <sha256:hex>',
        "the master's CA fingerprint from `diane info` on the master",
      ).env('DIANE_CA_FINGERPRINT'),
    )
    .addOption(
      new Option(
        '--join-token <token>',
        "the master's join token, when it requires one (in the pair command of `diane info`)",
      ).env('DIANE_JOIN_TOKEN'),
    )
    .addOption(jsonOption())
    .action(async (opts: PairOptions, cmd: Command) => {
      try {
        checkHostId(opts.hostId);
      } catch (err) {
        throw new DianeError(`invalid --host-id: ${(err as Error).message}`, ExitCode.usage);
      }
      if (opts.caFingerprint !== undefined && !/^sha256:[0-9a-fA-F]{64}$/.test(opts.caFingerprint)) {
        throw new DianeError(
          'invalid --ca-fingerprint: expected sha256: followed by 64 hex digits',
          ExitCode.usage,
        );
      }
      // Never echo the value: a mistyped token is still most of a secret.
      if (opts.joinToken !== undefined && !isJoinTokenShaped(opts.joinToken)) {
        throw new DianeError(
          'invalid --join-token: expected the token from `diane info` on the master (letters, digits, - and _)',
          ExitCode.usage,
        );
      }
      if (opts.caFingerprint === undefined && !isInteractive()) {
        throw new DianeError(
          '--ca-fingerprint is required when not on a terminal (read it with `diane info` on the master)',
          ExitCode.usage,
        );
      }
      const home = homeFrom(cmd.optsWithGlobals<GlobalOptions>());
      const paths = homePaths(home);
      // Before pairing, so that an untrusted home does not cost an approval.
      assertHomeTrusted(paths);
      const tty = process.stderr.isTTY && !opts.json;
      let countdown: NodeJS.Timeout | undefined;
      try {
        const creds = await pairWithMaster({
          masterUrl: opts.master,
          hostId: opts.hostId,
          caFingerprint: opts.caFingerprint,
          ...(opts.joinToken === undefined ? {} : { joinToken: opts.joinToken }),
          confirmCa: async (fp) => {
            process.stderr.write(
              `The master's CA fingerprint is\n  ${fp}\nCompare it with \`diane info\` on the master.\n`,
            );
            return confirm('Trust this master?');
          },
          onPending: ({ pairingCode, keyFingerprint, expiresAt }) => {
            process.stderr.write(
              [
                '',
                `Pairing code:     ${pairingCode}`,
                `Key fingerprint:  ${keyFingerprint}`,
                '',
                'On the master, check the code and fingerprint, then run:',
                `  diane slave approve ${opts.hostId} ${pairingCode}`,
                '',
              ].join('\n'),
            );
            if (tty) {
              countdown = setInterval(() => {
                const left = Math.max(0, expiresAt.getTime() - Date.now());
                process.stderr.write(
                  `\rWaiting for approval... ${formatDuration(Math.ceil(left / 1000) * 1000)} left   `,
                );
              }, 1000);
            } else {
              process.stderr.write(`Waiting for approval (expires at ${expiresAt.toISOString()})...\n`);
            }
          },
        });
        clearInterval(countdown);
        if (tty) process.stderr.write('\n');
        ensureHome(home);
        saveSlaveCredentials(paths.slaveCredentials, creds);
        if (opts.json) {
          printJson({
            status: 'approved',
            host_id: creds.host_id,
            ws_url: creds.ws_url,
            expires_at: creds.expires_at,
          });
        } else {
          process.stdout.write(
            `Approved. Credentials saved to ${paths.slaveCredentials}.\nStart the slave with: diane slave start\n`,
          );
        }
      } finally {
        clearInterval(countdown);
        if (countdown && tty) process.stderr.write('\n');
      }
    });
}
