import { type Command, InvalidArgumentError, Option } from 'commander';
import type { InfoResponse } from '../admin/types.js';
import { DEFAULT_BUS_SETTINGS } from '../bus/busSettings.js';
import { PREFIX_PATTERN } from '../bus/busWire.js';
import { checkMasterId } from '../bus/masterId.js';
import { AGENT_AUTH_MODES, type AgentAuth } from '../daemon/agentToken.js';
import { startDaemon } from '../daemon/daemon.js';
import { parseListenAddress } from '../daemon/listenAddress.js';
import { DEFAULT_CLUSTER_LISTENER_LIMITS } from '../http/listenerLimits.js';
import { createLogger } from '../log.js';
import { DEFAULT_SESSION_LIMITS } from '../mcp/httpFront.js';
import { DEFAULT_ROUTER_SETTINGS } from '../mcp/router.js';
import { DEFAULT_PAIRING_SETTINGS, redactJoinToken } from '../pairing/index.js';
import { DEFAULT_CA_EXPIRY_SETTINGS } from '../pki/index.js';
import { durationArg, type GlobalOptions, homeFrom, positiveIntArg } from './common.js';
import {
  type AuditOptions,
  auditOptions,
  auditSettingsFrom,
  routerSettingsFrom,
  type SharedDaemonOptions,
  sharedDaemonOptions,
} from './sharedOptions.js';

interface ServeOptions extends SharedDaemonOptions, AuditOptions {
  mcpListen: string;
  agentAuth: AgentAuth;
  allowOrigin: string[];
  maxSessionsPerToken: number;
  listen: string;
  publicHost: string[];
  pairingTtl: number;
  pairingToken: 'off' | 'required';
  certValidity: number;
  caExpiryWarning: number;
  maxInFlight: number;
  maxClusterConnections: number;
  maxToolNameLength: number;
  callTimeoutCap: number;
  bus?: string[];
  busPrefix: string;
  masterId?: string;
  store?: string;
}

export function registerServeCommand(program: Command): void {
  const serve = program
    .command('serve')
    .description('run the Diane daemon: the agent MCP endpoint and the admin socket')
    .addOption(
      new Option('--mcp-listen <host:port>', 'agent MCP endpoint (Streamable HTTP at /mcp)')
        .env('DIANE_MCP_LISTEN')
        .default('127.0.0.1:8764'),
    )
    .addOption(
      new Option('--agent-auth <mode>', 'how agents authenticate: the bearer token, or none (loopback only)')
        .env('DIANE_AGENT_AUTH')
        .choices(AGENT_AUTH_MODES)
        .default('token'),
    )
    .addOption(
      new Option(
        '--allow-origin <host>',
        'a browser Origin hostname allowed on /mcp besides loopback (repeatable)',
      )
        .env('DIANE_ALLOW_ORIGIN')
        .argParser((value: string, previous: string[] = []) => [
          ...previous,
          ...value.split(',').filter(Boolean),
        ])
        .default([]),
    )
    .addOption(
      new Option('--max-sessions-per-token <n>', 'open 2025-era agent sessions per credential')
        .env('DIANE_MAX_SESSIONS_PER_TOKEN')
        .argParser(positiveIntArg('--max-sessions-per-token', 1, 100_000))
        .default(DEFAULT_SESSION_LIMITS.maxPerCredential),
    )
    .addOption(
      new Option('--listen <host:port>', 'cluster listener for slaves (HTTPS + WSS, mutual TLS)')
        .env('DIANE_LISTEN')
        .default('0.0.0.0:8765'),
    )
    .addOption(
      new Option('--public-host <name>', 'a name or IP slaves use to reach this master (repeatable)')
        .env('DIANE_PUBLIC_HOST')
        .argParser((value: string, previous: string[] = []) => [
          ...previous,
          ...value.split(',').filter(Boolean),
        ])
        .default([]),
    )
    .addOption(
      new Option('--pairing-ttl <duration>', 'how long a pairing request waits for approval')
        .env('DIANE_PAIRING_TTL')
        .argParser(durationArg('--pairing-ttl'))
        .default(DEFAULT_PAIRING_SETTINGS.ttlMs, '10m'),
    )
    .addOption(
      new Option(
        '--pairing-token <mode>',
        'required: only slaves with the join token (see `diane info`) may request pairing',
      )
        .env('DIANE_PAIRING_TOKEN')
        .choices(['off', 'required'])
        .default(DEFAULT_PAIRING_SETTINGS.requireJoinToken ? 'required' : 'off'),
    )
    .addOption(
      new Option(
        '--cert-validity <duration>',
        'validity of the slave certificates this master signs; slaves renew at about 2/3 of it',
      )
        .env('DIANE_CERT_VALIDITY')
        .argParser(durationArg('--cert-validity'))
        .default(DEFAULT_PAIRING_SETTINGS.certValidityMs, '30d'),
    )
    .addOption(
      new Option(
        '--ca-expiry-warning <duration>',
        '`diane info` and the log warn when the slave CA ends within this',
      )
        .env('DIANE_CA_EXPIRY_WARNING')
        .argParser(durationArg('--ca-expiry-warning'))
        .default(DEFAULT_CA_EXPIRY_SETTINGS.warningWindowMs, '365d'),
    )
    .addOption(
      new Option('--max-in-flight <n>', 'concurrent calls per slave; more wait in a bounded queue')
        .env('DIANE_MAX_IN_FLIGHT')
        .argParser(positiveIntArg('--max-in-flight', 1, 10_000))
        .default(64),
    )
    .addOption(
      new Option(
        '--max-cluster-connections <n>',
        'connections the cluster listener holds at once, one per linked slave (at most half of ulimit -n)',
      )
        .env('DIANE_MAX_CLUSTER_CONNECTIONS')
        .argParser(positiveIntArg('--max-cluster-connections', 16, 1_000_000))
        .default(DEFAULT_CLUSTER_LISTENER_LIMITS.maxConnections),
    )
    .addOption(
      new Option('--max-tool-name-length <n>', 'longest exposed tool name; longer ones are not exposed')
        .env('DIANE_MAX_TOOL_NAME_LENGTH')
        .argParser(positiveIntArg('--max-tool-name-length', 3, 1024))
        .default(DEFAULT_ROUTER_SETTINGS.maxToolNameLength),
    )
    .addOption(
      new Option('--call-timeout-cap <duration>', 'hard cap on any call, progress or not')
        .env('DIANE_CALL_TIMEOUT_CAP')
        .argParser(durationArg('--call-timeout-cap'))
        .default(DEFAULT_ROUTER_SETTINGS.callTimeoutCapMs, '10m'),
    )
    .addOption(
      new Option(
        '--bus <url>',
        'NATS server(s) connecting several masters that share one store (repeatable, or comma-separated)',
      )
        .env('DIANE_BUS')
        .argParser(busUrlArg),
    )
    .addOption(
      new Option('--bus-prefix <prefix>', 'subject prefix and presence bucket name; one per cluster')
        .env('DIANE_BUS_PREFIX')
        .argParser(busPrefixArg)
        .default(DEFAULT_BUS_SETTINGS.prefix),
    )
    .addOption(
      new Option('--master-id <id>', "this master's name on the bus (default: chosen once, kept in the home)")
        .env('DIANE_MASTER_ID')
        .argParser(masterIdArg),
    )
    .addOption(
      new Option(
        '--store <url>',
        'where the state lives: sqlite:<path>, or postgres://user@host/db[?schema=name] shared by several masters',
      )
        .env('DIANE_STORE')
        .default(undefined, '$DIANE_HOME/diane.db'),
    );

  for (const option of auditOptions()) serve.addOption(option);
  for (const option of sharedDaemonOptions()) serve.addOption(option);
  serve.action(async (opts: ServeOptions, cmd: Command) => {
    const home = homeFrom(cmd.optsWithGlobals<GlobalOptions>());
    const logger = createLogger(opts.logLevel);
    const daemon = await startDaemon({
      home,
      mcpListen: parseListenAddress(opts.mcpListen, '--mcp-listen'),
      agentAuth: opts.agentAuth,
      allowedOrigins: opts.allowOrigin,
      agentSessions: { ...DEFAULT_SESSION_LIMITS, maxPerCredential: opts.maxSessionsPerToken },
      clusterListen: parseListenAddress(opts.listen, '--listen'),
      publicHosts: opts.publicHost,
      pairing: {
        ...DEFAULT_PAIRING_SETTINGS,
        ttlMs: opts.pairingTtl,
        certValidityMs: opts.certValidity,
        requireJoinToken: opts.pairingToken === 'required',
      },
      caExpiry: { warningWindowMs: opts.caExpiryWarning },
      link: {
        heartbeatIntervalMs: opts.heartbeatInterval,
        heartbeatTimeoutMs: opts.heartbeatTimeout,
        maxPayloadBytes: opts.maxPayload,
        maxInFlightPerSlave: opts.maxInFlight,
        maxQueuedPerSlave: opts.maxInFlight * 16,
        maxClusterConnections: opts.maxClusterConnections,
      },
      router: {
        ...routerSettingsFrom(opts),
        maxToolNameLength: opts.maxToolNameLength,
        callTimeoutCapMs: Math.max(opts.callTimeoutCap, opts.callTimeout),
      },
      audit: auditSettingsFrom(opts),
      metricsListen: opts.metricsListen,
      ...(opts.bus
        ? {
            bus: {
              servers: opts.bus,
              prefix: opts.busPrefix,
              ...(opts.masterId === undefined ? {} : { masterId: opts.masterId }),
            },
          }
        : {}),
      ...(opts.store === undefined ? {} : { store: opts.store }),
      logger,
    });
    const info = daemon.info();
    process.stderr.write(banner(info));
    logger.info({ mcp: info.mcp.listen, home: info.home, pid: process.pid }, 'diane is serving');

    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        const force = setTimeout(() => {
          logger.error('shutdown took too long; exiting anyway');
          process.exit(1);
        }, 15_000);
        force.unref();
        daemon.stop().finally(resolve);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      process.on('SIGHUP', () => {
        logger.info('SIGHUP: reloading mcp-servers.json');
        daemon.reload().catch((err) => logger.error({ err: (err as Error).message }, 'reload failed'));
      });
    });
  });
}

/** `nats://`, `tls://`, `ws://` or `wss://` URLs; several by repeating the flag or with commas. */
function busUrlArg(value: string, previous: string[] = []): string[] {
  const urls = value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  for (const url of urls) {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      throw new InvalidArgumentError(`--bus: ${JSON.stringify(url)} is not a URL (nats://host:4222)`);
    }
    if (!['nats:', 'tls:'].includes(protocol)) {
      throw new InvalidArgumentError(`--bus: ${url} is not a nats:// or tls:// URL`);
    }
  }
  return [...previous, ...urls];
}

function masterIdArg(value: string): string {
  try {
    return checkMasterId(value);
  } catch (err) {
    throw new InvalidArgumentError(`--master-id: ${(err as Error).message}`);
  }
}

function busPrefixArg(value: string): string {
  if (!PREFIX_PATTERN.test(value)) {
    throw new InvalidArgumentError('--bus-prefix: use 1-32 letters, digits, "-" or "_"');
  }
  return value;
}

function banner(info: InfoResponse): string {
  const { url, tokenRequired } = info.mcp;
  return [
    '',
    `Diane is running. Home: ${info.home}`,
    '',
    '  Connect an agent:',
    `    over HTTP:   ${url}${tokenRequired ? '   (bearer token required)' : ''}`,
    '    over stdio:  command "diane", args ["mcp"]   (Claude Desktop, Cursor: see README)',
    '    `diane info` prints ready-to-paste configs for Claude Code and Cursor, token included.',
    ...(tokenRequired
      ? []
      : ['', '  WARNING: --agent-auth none: any local user or process can call every tool as this user.']),
    '',
    '  Pair a slave: on the other machine run',
    // The banner often ends up in a log; the token is for `diane info` only.
    `    ${redactJoinToken(info.pair_command)}`,
    '  then approve it here with `diane slave pending` and `diane slave approve <host> <code>`.',
    '',
    '  MCP servers: edit mcp-servers.json in the home, then `diane servers reload`.',
    '  Inspect:     diane servers list | diane tools list | diane info',
    '',
  ].join('\n');
}
