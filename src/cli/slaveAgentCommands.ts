import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { parseMasterList } from '../cluster/masterList.js';
import type { SlaveStatus, SlaveStatusFile } from '../cluster/slaveAgent.js';
import { assertHomeTrusted } from '../config/homeTrust.js';
import { homePaths } from '../config/paths.js';
import { isProcessAlive, readPid } from '../daemon/pidFile.js';
import { runSlaveDaemon } from '../daemon/slaveDaemon.js';
import { DianeError, ExitCode } from '../errors.js';
import { createLogger } from '../log.js';
import type { ExposedAndHidden, ServerExposure } from '../mcp/exposure.js';
import { type GlobalOptions, homeFrom, jsonOption, printJson } from './common.js';
import {
  type AuditOptions,
  auditOptions,
  auditSettingsFrom,
  routerSettingsFrom,
  type SharedDaemonOptions,
  sharedDaemonOptions,
} from './sharedOptions.js';

interface StartOptions extends SharedDaemonOptions, AuditOptions {
  detach?: boolean;
  master?: string[];
  /** commander's `--no-renewal`: true unless the flag was given. */
  renewal: boolean;
}

const OUTCOME_MESSAGES = {
  revoked: ['Credentials revoked. Please re-pair with master', ExitCode.revoked],
  superseded: [
    'Credentials revoked: superseded, this host paired again with another key. Please re-pair with master',
    ExitCode.revoked,
  ],
  expired: ['Certificate expired. Please re-pair with master', ExitCode.certExpired],
  'ca-changed': [
    "The master's CA changed: a CA rollover finished while this host was away (or its CA was retired). " +
      'Please re-pair with master',
    ExitCode.masterCaChanged,
  ],
} as const;

/** Slave-side commands: run the slave agent, stop it, ask what it is doing. */
export function registerSlaveAgentCommands(slave: Command): void {
  const start = slave
    .command('start')
    .description("connect this machine's MCP servers to its master (after `diane slave pair`)")
    .addOption(
      new Option(
        '--detach',
        'run in the background (log: slave.log in the home); stop with `diane slave stop`',
      ).env('DIANE_DETACH'),
    )
    .addOption(
      new Option(
        '--master <url>',
        'the masters to link to, in order (repeatable or a comma list; default: the one paired with). ' +
          'One name with several addresses is dialed at each address in turn',
      )
        .env('DIANE_MASTER')
        .argParser((value: string, previous: string[] = []) => [...previous, value]),
    )
    .addOption(
      new Option(
        '--no-renewal',
        'never renew the certificate over the link: the slave then exits when it expires (exit 11)',
      ),
    );
  for (const option of sharedDaemonOptions()) start.addOption(option);
  for (const option of auditOptions()) start.addOption(option);
  start.action(async (opts: StartOptions, cmd: Command) => {
    const home = homeFrom(cmd.optsWithGlobals<GlobalOptions>());
    // The slave's status, pid and log files are for its user only.
    process.umask(0o077);
    // Checked before detaching, so that a typo fails here and not in the background.
    const masters = parseMasterList(opts.master ?? []);
    if (opts.detach) return detach(home);
    const outcome = await runSlaveDaemon({
      masters,
      home,
      logger: createLogger(opts.logLevel),
      router: routerSettingsFrom(opts),
      heartbeatIntervalMs: opts.heartbeatInterval,
      heartbeatTimeoutMs: opts.heartbeatTimeout,
      maxPayloadBytes: opts.maxPayload,
      renewal: opts.renewal,
      audit: auditSettingsFrom(opts),
      metricsListen: opts.metricsListen,
    });
    if (outcome !== 'stopped') {
      const [message, code] = OUTCOME_MESSAGES[outcome];
      throw new DianeError(message, code, outcome);
    }
  });

  slave
    .command('stop')
    .description('stop the slave started with --detach (gracefully: SIGTERM, then wait)')
    .action(async (_opts: unknown, cmd: Command) => {
      const paths = homePaths(homeFrom(cmd.optsWithGlobals<GlobalOptions>()));
      // The pid file decides which process gets the signal.
      assertHomeTrusted(paths);
      const pid = readPid(paths.slavePid);
      if (pid === undefined || !isProcessAlive(pid))
        throw new DianeError('no Diane slave is running for this home');
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (isProcessAlive(pid)) {
        if (Date.now() > deadline) throw new DianeError(`the slave (pid ${pid}) did not stop within 15s`);
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stdout.write(`Stopped the slave (pid ${pid}).\n`);
    });

  slave
    .command('status')
    .description(
      'what the local slave is doing (connected, reconnecting, revoked...) and what it exposes to the master',
    )
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const paths = homePaths(homeFrom(cmd.optsWithGlobals<GlobalOptions>()));
      const status = readStatus(paths.slaveStatus);
      const pid = readPid(paths.slavePid);
      const running = pid !== undefined && isProcessAlive(pid);
      const view = {
        running,
        pid: running ? pid : undefined,
        ...(status ?? {}),
        ...(running ? {} : stoppedState(status)),
      };
      if (opts.json) return printJson(view);
      if (!status && !running) {
        process.stdout.write(
          'No slave has run in this home. Pair with `diane slave pair`, then `diane slave start`.\n',
        );
        process.exitCode = ExitCode.failure;
        return;
      }
      const lines = [
        `Slave ${view.host_id ?? '?'}: ${view.state ?? 'unknown'}${running ? ` (pid ${pid})` : ' (not running)'}`,
        `${view.state === 'connected' ? 'Linked to:    ' : 'Master:       '}${view.master ?? '?'}${view.master_address ? ` (at ${view.master_address})` : ''}`,
      ];
      if (view.masters && view.masters.length > 1) lines.push(`Masters:      ${view.masters.join(', ')}`);
      if (view.connected_at) lines.push(`Connected at: ${view.connected_at}`);
      if (view.cert_expires_at) lines.push(`Cert expires: ${view.cert_expires_at}`);
      if (view.next_renewal_at)
        lines.push(`Next renewal: ${view.next_renewal_at} (over the link, while connected)`);
      if (view.last_renewed_at) lines.push(`Last renewal: ${view.last_renewed_at}`);
      if (view.renewal_error) lines.push(`Renewal error: ${view.renewal_error}`);
      if (view.next_retry_at) lines.push(`Next retry:   ${view.next_retry_at}`);
      if (view.last_error) lines.push(`Last error:   ${view.last_error}`);
      if (view.exposure) lines.push(...exposureLines(view.exposure));
      process.stdout.write(`${lines.join('\n')}\n`);
      if (!running) process.exitCode = ExitCode.failure;
    });
}

/**
 * What the master may see, per server, as counts; `--json` has the names. Hidden entries are
 * those that `expose`/`hide` in mcp-servers.json keep from the master.
 */
function exposureLines(exposure: readonly ServerExposure[]): string[] {
  if (exposure.length === 0) return ['Exposed:      no MCP servers running'];
  const count = (what: string, ...parts: ExposedAndHidden[]) => {
    const exposed = parts.reduce((n, p) => n + p.exposed.length, 0);
    const hidden = parts.reduce((n, p) => n + p.hidden.length, 0);
    return `${what} ${exposed} exposed${hidden > 0 ? `, ${hidden} hidden` : ''}`;
  };
  const width = Math.max(...exposure.map((s) => s.server.length));
  return [
    'Exposed to the master (expose/hide in mcp-servers.json):',
    ...exposure.map(
      (s) =>
        `  ${s.server.padEnd(width)}  ${count('tools', s.tools)}; ${count('prompts', s.prompts)}; ` +
        count('resources', s.resources, s.resourceTemplates),
    ),
  ];
}

function readStatus(path: string): (SlaveStatus & Partial<SlaveStatusFile>) | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The states in which the slave gave up for good; `slave status` keeps showing them. */
function isFinal(state: SlaveStatus['state'] | undefined): boolean {
  return state === 'revoked' || state === 'superseded' || state === 'expired';
}

function stoppedState(status: SlaveStatus | undefined): Partial<SlaveStatus> {
  if (!status || isFinal(status.state)) return {};
  return { state: 'stopped' };
}

/** Starts `diane slave start` in the background and reports once it has tried to connect. */
async function detach(home: string): Promise<void> {
  const paths = homePaths(home);
  const running = readPid(paths.slavePid);
  if (running !== undefined && isProcessAlive(running)) {
    throw new DianeError(`a Diane slave is already running for this home (pid ${running})`);
  }
  const log = openSync(join(paths.home, 'slave.log'), 'a', 0o600);
  const args = process.argv.slice(1).filter((a) => a !== '--detach');
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, DIANE_HOME: home },
  });
  child.unref();
  const deadline = Date.now() + 20_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const read = readStatus(paths.slaveStatus);
    const status = read?.pid === child.pid ? read : undefined;
    if (child.exitCode !== null || isFinal(status?.state)) {
      const why = status ? (status.last_error ?? status.state) : `see ${join(paths.home, 'slave.log')}`;
      throw new DianeError(`the slave exited: ${why}`);
    }
    if (status?.state === 'connected' || status?.state === 'backoff') {
      const logPath = join(paths.home, 'slave.log');
      process.stdout.write(
        `Slave started in the background (pid ${child.pid}): ${status.state}. Log: ${logPath}\n`,
      );
      return;
    }
    if (Date.now() > deadline) {
      process.stdout.write(`Slave started in the background (pid ${child.pid}); still connecting.\n`);
      return;
    }
  }
}
