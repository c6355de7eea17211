import type { Logger } from '../log.js';
import type { MasterStore } from '../store/index.js';

export interface LastSeenSettings {
  /** How often the hosts seen since the last write are written, all in one transaction. */
  flushIntervalMs: number;
}

export const DEFAULT_LAST_SEEN_SETTINGS: LastSeenSettings = Object.freeze({ flushIntervalMs: 10_000 });

/**
 * Records when each host was last heard from. A heartbeat only notes the time in memory (O(1));
 * a timer writes every host noted since the last write in one transaction, without waiting for a
 * lock held by another process (`Store.tryWrite`): what could not be written is kept for the next
 * round, and a later heartbeat of the same host replaces it.
 */
export class LastSeenWriter {
  private readonly noted = new Map<string, Date>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly store: Pick<MasterStore, 'tryWrite'>,
    private readonly logger: Logger,
    private readonly settings: LastSeenSettings = DEFAULT_LAST_SEEN_SETTINGS,
  ) {}

  seen(hostId: string, at: Date): void {
    this.noted.set(hostId, at);
    this.arm();
  }

  /** Hosts noted and not written yet. */
  get pending(): number {
    return this.noted.size;
  }

  /** Writes what was noted; true when it was written (or there was nothing to write). */
  async flush(): Promise<boolean> {
    if (this.noted.size === 0) return true;
    const batch = [...this.noted];
    let written = false;
    try {
      written = (await this.store.tryWrite((tx) => tx.slaveServers.updateLastSeenMany(batch))).written;
    } catch (err) {
      this.logger.warn({ hosts: batch.length, err: (err as Error).message }, 'could not record last_seen');
    }
    if (written) {
      // A host heard from again while writing keeps its newer time for the next round.
      for (const [hostId, at] of batch) if (this.noted.get(hostId) === at) this.noted.delete(hostId);
    }
    if (this.noted.size > 0) this.arm();
    return written;
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.settings.flushIntervalMs);
    this.timer.unref();
  }

  /** Writes what is left (at shutdown) and stops the timer. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!(await this.flush()))
      this.logger.warn({ hosts: this.noted.size }, 'last_seen of some hosts was not written');
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
