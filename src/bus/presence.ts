import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import { BUS_WIRE_VERSION, type PresenceEntry, PresenceEntrySchema, presenceBucket } from './busWire.js';

export interface PresenceOptions {
  prefix: string;
  masterId: string;
  ttlMs: number;
  heartbeatMs: number;
  logger: Logger;
}

/** What a holder announces about one of its links. */
export interface HeldLink {
  since: Date;
  serial: string;
  revision: number;
}

/** Where a live link of a host is: a presence entry, and when it lapses unless renewed. */
interface LiveEntry {
  entry: PresenceEntry;
  expiresAt: number;
}

/**
 * Which master holds the link of which host, in a JetStream KV bucket (`<prefix>-presence`,
 * key = host id). Each master puts its own links and renews them on a heartbeat; the bucket's
 * max age removes what a dead master left. Every master watches the bucket and keeps its own
 * view, where an entry lapses `ttlMs` after it was last seen put: the watch gives no event when
 * the server ages an entry out (NATS 2.9 has no delete markers), so expiry is judged locally, on
 * this master's clock only.
 */
export class PresenceBoard {
  private readonly held = new Map<string, { link: HeldLink; seq?: number }>();
  private readonly live = new Map<string, LiveEntry>();
  private readonly listeners = new Set<(hostId: string, entry: PresenceEntry | undefined) => void>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private watching?: { stop(): void };

  private constructor(
    private readonly nc: NatsConnection,
    private kv: KV,
    private readonly opts: PresenceOptions,
  ) {}

  static async open(nc: NatsConnection, opts: PresenceOptions): Promise<PresenceBoard> {
    const board = new PresenceBoard(nc, await PresenceBoard.bucket(nc, opts), opts);
    await board.startWatch();
    board.timers.push(setInterval(() => board.renewAll(), opts.heartbeatMs).unref());
    board.timers.push(setInterval(() => board.sweep(), Math.min(1_000, opts.ttlMs / 4)).unref());
    return board;
  }

  /** `create` opens the bucket when another master made it already. */
  private static bucket(nc: NatsConnection, opts: PresenceOptions): Promise<KV> {
    return new Kvm(nc).create(presenceBucket(opts.prefix), { history: 1, ttl: opts.ttlMs });
  }

  /**
   * After NATS came back: puts through a KV handle from before a server restart were seen
   * timing out for seconds after the reconnect (NATS 2.9, @nats-io/kv 3.4), and a restarted
   * server may have lost the bucket. So the bucket is opened again (created if need be), the
   * watch restarted, and every entry of this master put again at once.
   */
  async reopen(): Promise<void> {
    if (this.stopped) return;
    try {
      this.kv = await PresenceBoard.bucket(this.nc, this.opts);
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'bus: could not reopen the presence bucket');
      return;
    }
    this.watching?.stop();
    await this.startWatch();
    this.renewAll();
  }

  /** Called with the host's new entry, or `undefined` when it went away; own entries included. */
  onChange(listener: (hostId: string, entry: PresenceEntry | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The live entry of a host, whoever holds it. */
  get(hostId: string): PresenceEntry | undefined {
    return this.live.get(hostId)?.entry;
  }

  entries(): Map<string, PresenceEntry> {
    return new Map([...this.live].map(([host, l]) => [host, l.entry]));
  }

  /** This master holds the link of `hostId` (or its catalogue changed: a new revision). */
  async announce(hostId: string, link: HeldLink): Promise<void> {
    const held = this.held.get(hostId);
    this.held.set(hostId, { link, seq: held?.seq });
    await this.put(hostId);
  }

  /** This master no longer holds the link: its entry goes, unless another master's replaced it. */
  async withdraw(hostId: string): Promise<void> {
    const held = this.held.get(hostId);
    if (!held) return;
    this.held.delete(hostId);
    try {
      if (held.seq !== undefined) await this.kv.delete(hostId, { previousSeq: held.seq });
    } catch {
      // Another master put the key since: the link is theirs now, and so is the entry.
    }
  }

  /** Removes an entry this master left before a restart, unless it holds the link again. */
  async dropStale(hostId: string): Promise<void> {
    if (this.held.has(hostId) || this.live.get(hostId)?.entry.master !== this.opts.masterId) return;
    await this.kv.delete(hostId).catch(() => {});
  }

  private async put(hostId: string): Promise<void> {
    const held = this.held.get(hostId);
    if (!held || this.stopped) return;
    const entry: PresenceEntry = {
      v: BUS_WIRE_VERSION,
      master: this.opts.masterId,
      since: held.link.since.toISOString(),
      revision: held.link.revision,
      serial: held.link.serial,
    };
    try {
      const seq = await this.kv.put(hostId, JSON.stringify(entry));
      if (this.held.get(hostId) === held) held.seq = seq;
    } catch (err) {
      // While NATS is away every renewal fails; the reconnect puts them all again (`reopen`).
      if (this.stopped || this.nc.isClosed() || this.nc.isDraining()) return;
      this.opts.logger.warn({ host: hostId, err: (err as Error).message }, 'bus: could not announce a link');
    }
  }

  /** Puts every entry of this master again (a heartbeat, or after a reconnect). */
  renewAll(): void {
    for (const hostId of this.held.keys()) void this.put(hostId);
  }

  private async startWatch(): Promise<void> {
    const iter = await this.kv.watch();
    this.watching = iter;
    void (async () => {
      for await (const e of iter) {
        if (e.operation !== 'PUT') {
          this.set(e.key, undefined);
          continue;
        }
        const parsed = PresenceEntrySchema.safeParse(safeJson(e.string()));
        if (!parsed.success) {
          this.opts.logger.warn({ host: e.key }, 'bus: ignored a malformed presence entry');
          continue;
        }
        // Judged on this master's clock only (the server's may differ): an entry read at start,
        // up to one TTL old already, may seem live for up to twice the TTL.
        this.set(e.key, { entry: parsed.data, expiresAt: Date.now() + this.opts.ttlMs });
      }
      // The watch ends when the connection closes for good, or when `reopen` replaced it;
      // anything else is a fault to retry.
      if (!this.stopped && this.watching === iter) {
        setTimeout(() => void this.startWatch().catch(() => {}), 1_000).unref();
      }
    })();
  }

  private set(hostId: string, live: LiveEntry | undefined): void {
    const before = this.live.get(hostId)?.entry;
    if (live) this.live.set(hostId, live);
    else this.live.delete(hostId);
    const after = live?.entry;
    if (sameEntry(before, after)) return;
    for (const l of this.listeners) l(hostId, after);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [hostId, l] of this.live) if (l.expiresAt <= now) this.set(hostId, undefined);
  }

  /** Withdraws every link this master holds, then stops. */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await Promise.all([...this.held.keys()].map((h) => this.withdraw(h)));
    this.stopped = true;
    this.watching?.stop();
  }
}

function sameEntry(a: PresenceEntry | undefined, b: PresenceEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.master === b.master && a.since === b.since && a.revision === b.revision && a.serial === b.serial;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
