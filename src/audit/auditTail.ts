import type { Logger } from '../log.js';
import type { AuditRepo, StoredAuditEvent } from '../store/index.js';
import type { AuditListener } from './auditLog.js';

/** Where live audit rows come from, for a follower (`GET /api/audit?follow=1`). */
export interface AuditLiveSource {
  /**
   * `listener` gets each row written from now on, once, in id order. Rows written shortly before
   * the call may come too: a follower drops what it has sent already, by id.
   */
  subscribe(listener: AuditListener): () => void;
  /**
   * Resolves once every row written from now on will reach the listeners subscribed before the
   * call: a follower reads the rows written before it from the store after this, so nothing falls
   * between its catch-up and the live rows.
   */
  ready?(): Promise<void>;
}

export interface AuditTailSettings {
  /** How often the table is read for rows written by other masters. */
  pollMs: number;
  /** Rows per read; a full page is followed at once by the next. */
  pageRows: number;
}

export const DEFAULT_AUDIT_TAIL_SETTINGS: AuditTailSettings = { pollMs: 250, pageRows: 1_000 };

/**
 * The whole cluster's audit trail, live, for masters sharing a PostgreSQL store: each master's
 * AuditLog only sees its own writes, so this reads the table itself, "every row after the last id
 * seen", on a short timer and whenever this master wrote a batch (`wake`). That read is sound only
 * because ids are handed out in commit order (the append lock of SqlDialect.commitOrderLock):
 * without it a row with a lower id could commit after a higher one was read, and be skipped.
 * Alternatives weighed: LISTEN/NOTIFY plus re-reading a window behind the high-water mark misses a
 * row whose transaction stays open longer than the window; ordering by the writing transaction's
 * xid8 against `pg_snapshot_xmin` is exact but needs a schema change and makes `after_id`
 * meaningless for resuming. One read serves every follower of this master, and runs only while
 * there is one. SQLite's single master keeps following its AuditLog directly.
 */
export class AuditTail implements AuditLiveSource {
  private readonly listeners = new Set<AuditListener>();
  /** The id of the last row handed to the listeners; set once started. */
  private cursor: number | undefined;
  private started: Promise<void> | undefined;
  /** Bumped on every stop, so that a read still in flight from before hands nothing over. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private unwake: (() => void) | undefined;
  private reading = false;
  private readAgain = false;
  private lastErrorAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly repo: Pick<AuditRepo, 'query' | 'maxId'>,
    private readonly settings: AuditTailSettings,
    private readonly logger: Logger,
    /** Called with a function to run when this master has just written rows. */
    private readonly wake?: (read: () => void) => () => void,
  ) {}

  subscribe(listener: AuditListener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.start();
    return () => {
      if (!this.listeners.delete(listener)) return;
      if (this.listeners.size === 0) this.stop();
    };
  }

  ready(): Promise<void> {
    return this.started ?? Promise.resolve();
  }

  /** Stops reading, whoever is still subscribed (daemon shutdown). */
  close(): void {
    this.listeners.clear();
    this.stop();
  }

  private start(): void {
    const generation = this.generation;
    this.started = (async () => {
      // Starts from the newest row: a follower reads what came before from the store itself.
      // A store that is away is asked again; followers wait in ready() meanwhile.
      for (;;) {
        try {
          const id = await this.repo.maxId();
          if (generation !== this.generation) return;
          this.cursor = id;
          break;
        } catch (err) {
          if (generation !== this.generation) return;
          this.noteError(err);
          await new Promise((resolve) => setTimeout(resolve, this.settings.pollMs));
          if (generation !== this.generation) return;
        }
      }
      this.timer = setInterval(() => this.read(), this.settings.pollMs);
      this.timer.unref();
      this.unwake = this.wake?.(() => this.read());
    })();
  }

  private stop(): void {
    this.generation++;
    clearInterval(this.timer);
    this.unwake?.();
    this.timer = this.unwake = this.cursor = this.started = undefined;
  }

  /** One read at a time; a wake-up during a read makes it read once more. */
  private read(): void {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    void this.readAll().finally(() => {
      this.reading = false;
      if (this.readAgain) {
        this.readAgain = false;
        if (this.cursor !== undefined) this.read();
      }
    });
  }

  private async readAll(): Promise<void> {
    const generation = this.generation;
    try {
      for (;;) {
        if (this.cursor === undefined) return;
        const page = await this.repo.query({ afterId: this.cursor, limit: this.settings.pageRows });
        if (generation !== this.generation) return;
        for (const row of page) {
          this.cursor = row.id;
          this.emit(row);
        }
        if (page.length < this.settings.pageRows) return;
      }
    } catch (err) {
      // The next tick reads again from the same id: nothing is skipped while the store is away.
      this.noteError(err);
    }
  }

  private noteError(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorAt < 60_000) return;
    this.lastErrorAt = now;
    this.logger.warn({ err: (err as Error).message }, 'audit: could not read the trail for followers');
  }

  private emit(row: StoredAuditEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(row);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'audit: a follower failed');
      }
    }
  }
}
