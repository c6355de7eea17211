import { DianeError, ExitCode } from '../errors.js';
import { parseMasterUrl } from './masterCa.js';
import { MAX_MASTERS, type SlaveCredentials } from './slaveCredentials.js';

/** Where the hub listens for slave links on every master (`GET /slave/connect`). */
export const SLAVE_CONNECT_PATH = '/slave/connect';

/** One master a slave may link to: its https origin, and the WebSocket URL to dial there. */
export interface MasterEntry {
  /** https://HOST:PORT, as `--master` names it. */
  master: string;
  /** wss://HOST:PORT/slave/connect */
  wsUrl: string;
}

/**
 * `--master` values of `diane slave start` (the flag repeated, each a comma list) as https
 * origins, in order, without duplicates. Each must be a valid master URL.
 */
export function parseMasterList(values: readonly string[]): string[] {
  const origins: string[] = [];
  for (const value of values) {
    for (const part of value.split(',')) {
      const text = part.trim();
      if (text === '') continue;
      const origin = parseMasterUrl(text).origin;
      if (!origins.includes(origin)) origins.push(origin);
    }
  }
  if (origins.length > MAX_MASTERS) {
    throw new DianeError(`--master: at most ${MAX_MASTERS} masters, got ${origins.length}`, ExitCode.usage);
  }
  return origins;
}

export function wsUrlOf(masterOrigin: string): string {
  const url = new URL(SLAVE_CONNECT_PATH, masterOrigin);
  url.protocol = 'wss:';
  return url.toString();
}

/**
 * The masters to dial, in order: `override` (from `--master`) when given, otherwise the list in
 * the credentials. A file from before several masters keeps its own link URL, exactly as paired.
 */
export function mastersToDial(creds: SlaveCredentials, override: readonly string[] = []): MasterEntry[] {
  if (override.length > 0) return override.map((master) => ({ master, wsUrl: wsUrlOf(master) }));
  if (!creds.masters) return [{ master: new URL(creds.master_url).origin, wsUrl: creds.ws_url }];
  return creds.masters.map((master) => ({ master: new URL(master).origin, wsUrl: wsUrlOf(master) }));
}
