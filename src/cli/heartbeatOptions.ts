import { Option } from 'commander';
import { durationArg } from './common.js';

/** The same heartbeat flags on `serve` and `slave start`. */
export function heartbeatOptions(): Option[] {
  return [
    new Option('--heartbeat-interval <duration>', 'WebSocket ping interval on the master-slave link')
      .env('DIANE_HEARTBEAT_INTERVAL')
      .argParser(durationArg('--heartbeat-interval'))
      .default(10_000, '10s'),
    new Option('--heartbeat-timeout <duration>', 'a peer silent this long is dropped')
      .env('DIANE_HEARTBEAT_TIMEOUT')
      .argParser(durationArg('--heartbeat-timeout'))
      .default(30_000, '30s'),
  ];
}
