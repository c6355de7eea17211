import { Option } from 'commander';
import { DEFAULT_ROUTER_SETTINGS } from '../mcp/router.js';
import { durationArg, positiveIntArg } from './common.js';

/**
 * The flags `serve` and `slave start` share: both run a router of local MCP servers and one
 * end of the master-slave link, so they are tuned with the same names and variables.
 */
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
    new Option('--log-level <level>', 'log level (logs go to stderr)')
      .env('DIANE_LOG_LEVEL')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
      .default('info'),
  ];
}
