import { Option } from 'commander';
import { type AuditSettings, DEFAULT_AUDIT_SETTINGS } from '../audit/index.js';
import { type ListenAddress, parseListenAddress } from '../daemon/listenAddress.js';
import { DEFAULT_ROUTER_SETTINGS, type RouterSettings } from '../mcp/router.js';
import { durationArg, positiveIntArg } from './common.js';

/**
 * The flags `serve` and `slave start` share: both run a router of local MCP servers and one
 * end of the master-slave link, so they are tuned with the same names and variables.
 */
export interface SharedDaemonOptions {
  heartbeatInterval: number;
  heartbeatTimeout: number;
  maxPayload: number;
  callTimeout: number;
  listPageSize: number;
  inputTimeout: number;
  maxUpstreamEntries: number;
  maxUpstreamBytes: number;
  logLevel: string;
  /** `--metrics-listen`, parsed; undefined: no metrics listener. */
  metricsListen?: ListenAddress;
}

/** The router settings the shared flags choose. */
export function routerSettingsFrom(opts: SharedDaemonOptions): RouterSettings {
  return {
    ...DEFAULT_ROUTER_SETTINGS,
    callTimeoutMs: opts.callTimeout,
    listPageSize: opts.listPageSize,
    inputTimeoutMs: opts.inputTimeout,
    upstreamLimits: { maxEntries: opts.maxUpstreamEntries, maxBytes: opts.maxUpstreamBytes },
  };
}

export function sharedDaemonOptions(): Option[] {
  return [
    new Option('--heartbeat-interval <duration>', 'WebSocket ping interval on the master-slave link')
      .env('DIANE_HEARTBEAT_INTERVAL')
      .argParser(durationArg('--heartbeat-interval'))
      .default(10_000, '10s'),
    new Option('--heartbeat-timeout <duration>', 'a peer silent this long is dropped')
      .env('DIANE_HEARTBEAT_TIMEOUT')
      .argParser(durationArg('--heartbeat-timeout'))
      .default(30_000, '30s'),
    new Option('--max-payload <bytes>', 'largest WebSocket message accepted on the master-slave link')
      .env('DIANE_MAX_PAYLOAD')
      .argParser(positiveIntArg('--max-payload', 1024))
      .default(16 * 1024 * 1024, '16 MiB'),
    new Option('--call-timeout <duration>', 'default per-call timeout, restarted by progress')
      .env('DIANE_CALL_TIMEOUT')
      .argParser(durationArg('--call-timeout'))
      .default(DEFAULT_ROUTER_SETTINGS.callTimeoutMs, '60s'),
    new Option('--list-page-size <n>', "entries per page of Diane's tool, prompt and resource lists")
      .env('DIANE_LIST_PAGE_SIZE')
      .argParser(positiveIntArg('--list-page-size', 1, 100_000))
      .default(DEFAULT_ROUTER_SETTINGS.listPageSize),
    new Option(
      '--max-upstream-entries <n>',
      'most tools, prompts or resources one upstream (a server, a slave host) may put in each list',
    )
      .env('DIANE_MAX_UPSTREAM_ENTRIES')
      .argParser(positiveIntArg('--max-upstream-entries', 1, 1_000_000))
      .default(DEFAULT_ROUTER_SETTINGS.upstreamLimits.maxEntries),
    new Option('--max-upstream-bytes <bytes>', 'most definition bytes one upstream may put in each list')
      .env('DIANE_MAX_UPSTREAM_BYTES')
      .argParser(positiveIntArg('--max-upstream-bytes', 1024))
      .default(DEFAULT_ROUTER_SETTINGS.upstreamLimits.maxBytes, '4 MiB'),
    new Option(
      '--input-timeout <duration>',
      'how long a call waits for the agent to answer an upstream request (sampling, elicitation, roots)',
    )
      .env('DIANE_INPUT_TIMEOUT')
      .argParser(durationArg('--input-timeout'))
      .default(DEFAULT_ROUTER_SETTINGS.inputTimeoutMs, '10m'),
    new Option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics at GET /metrics on this address (off by default; keep it on loopback)',
    )
      .env('DIANE_METRICS_LISTEN')
      .argParser((value: string) => parseListenAddress(value, '--metrics-listen')),
    new Option('--log-level <level>', 'log level (logs go to stderr)')
      .env('DIANE_LOG_LEVEL')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
      .default('info'),
  ];
}

/** The audit trail's retention flags: `serve` has them (and `slave start` may take them too). */
export interface AuditOptions {
  auditRetention: number;
  auditMaxRows: number;
}

export function auditOptions(): Option[] {
  return [
    new Option('--audit-retention <duration>', 'audit events older than this are deleted')
      .env('DIANE_AUDIT_RETENTION')
      .argParser(durationArg('--audit-retention'))
      .default(DEFAULT_AUDIT_SETTINGS.retentionMs, '30d'),
    new Option('--audit-max-rows <n>', 'past this many audit events the oldest are deleted')
      .env('DIANE_AUDIT_MAX_ROWS')
      .argParser(positiveIntArg('--audit-max-rows', 1000, 1_000_000_000))
      .default(DEFAULT_AUDIT_SETTINGS.maxRows),
  ];
}

/** The audit settings the retention flags choose. */
export function auditSettingsFrom(opts: AuditOptions): AuditSettings {
  return { ...DEFAULT_AUDIT_SETTINGS, retentionMs: opts.auditRetention, maxRows: opts.auditMaxRows };
}
