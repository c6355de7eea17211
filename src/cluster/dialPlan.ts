import type { LookupAddress, LookupOptions } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { MasterEntry } from './masterList.js';

/** One dial: a master's link URL and, for a name with several addresses, the address to use. */
export interface DialTarget extends MasterEntry {
  /** Connect here instead of resolving the URL's host again; TLS still checks the name. */
  address?: string;
  family?: 4 | 6;
}

export type ResolveAll = (host: string) => Promise<LookupAddress[]>;

export const DIAL_PLAN_DEFAULTS = {
  /** Addresses tried per name and round; a name with more is cut to these. */
  maxAddressesPerName: 16,
} as const;

const resolveAll: ResolveAll = (host) => lookup(host, { all: true });

/**
 * The order in which a slave dials its masters: each master in turn, and each address of a
 * master's name in turn (resolved again every round, so DNS changes are followed). `next()` is
 * called once per attempt: after a failed dial or a dropped link the slave moves on to the next
 * target; the caller's backoff spaces the attempts.
 */
export class DialPlan {
  private index = -1;
  private pending: DialTarget[] = [];

  constructor(
    readonly masters: readonly MasterEntry[],
    private readonly resolve: ResolveAll = resolveAll,
  ) {
    if (masters.length === 0) throw new Error('a dial plan needs at least one master');
  }

  /** How many masters (not addresses) the plan goes through. */
  get masterCount(): number {
    return this.masters.length;
  }

  async next(): Promise<DialTarget> {
    if (this.pending.length === 0) {
      this.index = (this.index + 1) % this.masters.length;
      this.pending = await this.expand(this.masters[this.index]!);
    }
    return this.pending.shift()!;
  }

  private async expand(entry: MasterEntry): Promise<DialTarget[]> {
    const host = new URL(entry.wsUrl).hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) return [{ ...entry }];
    let addresses: LookupAddress[];
    try {
      addresses = await this.resolve(host);
    } catch {
      // The dial itself then fails with the resolver's error, which the status shows.
      return [{ ...entry }];
    }
    const seen = new Set<string>();
    const targets: DialTarget[] = [];
    for (const { address, family } of addresses) {
      if (seen.has(address) || (family !== 4 && family !== 6)) continue;
      seen.add(address);
      targets.push({ ...entry, address, family });
      if (targets.length >= DIAL_PLAN_DEFAULTS.maxAddressesPerName) break;
    }
    return targets.length > 0 ? targets : [{ ...entry }];
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for the socket that answers with the target's address: the URL keeps the name, so
 * the Host header and the TLS servername (and the certificate check against it) stay the name's.
 */
export function pinnedLookup(
  target: DialTarget,
): ((host: string, options: LookupOptions, callback: LookupCallback) => void) | undefined {
  const { address, family } = target;
  if (address === undefined || family === undefined) return undefined;
  return (_host, options, callback) => {
    // Node asks for every address when it races IPv4 and IPv6 (autoSelectFamily).
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}
