import type { Logger } from '../log.js';
import type { AuditRecord, AuditRepos, AuditStore, StoredAuditEvent } from '../store/index.js';
import type { AuditEvent } from './auditEvent.js';
import { DEFAULT_REDACTION_LIMITS, type RedactionLimits, redactArguments } from './redact.js';

export interface AuditSettings {
  /** Queued events are written at most this long after they were recorded. */
  flushIntervalMs: number;
  /** A queue this long is written on the next turn of the event loop, without waiting. */
  flushBatchSize: number;
  /** Most rows written in one transaction; a longer queue is written in several, yielding between. */
  maxRowsPerTransaction: number;
  /**
   * Events held in memory while the database cannot take them (busy, failing). Past this the
   * oldest are dropped, counted, logged and recorded as one `audit/dropped` row.
   */
  maxQueued: number;
  /** Rows older than this are deleted (`--audit-retention`). */
  retentionMs: number;
  /** Beyond this many rows the oldest are deleted (`--audit-max-rows`). */
  maxRows: number;
  /** How often retention runs (and once at start). */
  trimIntervalMs: number;
  /** Rows deleted per statement while trimming; the event loop gets a turn between chunks. */
  trimChunkRows: number;
  /** Dropped events are logged at most once per this interval. */
  dropWarningIntervalMs: number;
  /** Caps of recorded arguments. */
  redaction: RedactionLimits;
}

export const DEFAULT_AUDIT_SETTINGS: AuditSettings = {
  flushIntervalMs: 250,
  flushBatchSize: 500,
  maxRowsPerTransaction: 5000,
  maxQueued: 100_000,
  retentionMs: 30 * 86_400_000,
  maxRows: 1_000_000,
  trimIntervalMs: 10 * 60_000,
  trimChunkRows: 10_000,
  dropWarningIntervalMs: 60_000,
  redaction: DEFAULT_REDACTION_LIMITS,
};

export interface AuditStats {
  /** Waiting in memory to be written. */
  queued: number;
  /** Written since the log was created (the `audit/dropped` rows included). */
  written: number;
  /** Lost since the log was created: queue full, or recorded after close. */
  dropped: number;
}

export type AuditListener = (event: StoredAuditEvent) => void;

const MAX_NAME_CHARS = 512;
const MAX_ERROR_CHARS = 500;

/**
 * The audit trail's writer. `record` is what the router calls on every call: synchronous, O(1),
 * never throws and never touches the disk; it only queues. The queue is written in batches, one
 * transaction each, on a short timer or as soon as a batch is full, through `tryWrite`: when
 * another process holds the database the batch stays queued for the next round instead of
 * freezing the event loop. Only a queue past `maxQueued` loses events, oldest first, and says so
 * in the log and in the trail itself. Listeners (`subscribe`) see each row once it is written,
 * with its id.
 */
export class AuditLog {
  private readonly queue = new Queue<AuditRecord>();
  private readonly listeners = new Set<AuditListener>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushImmediate: NodeJS.Immediate | undefined;
  private trimTimer: NodeJS.Timeout | undefined;
  private trimImmediate: NodeJS.Immediate | undefined;
  private trimmedThisRound = 0;
  /** Rows of the current flush round still to write. */
  private backlog = 0;
  private closed = false;
  private written = 0;
  private dropped = 0;
  /** Drops not yet recorded in the trail: how many, and when the first happened. */
  private unrecordedDrops = 0;
  private firstUnrecordedDropAt: Date | undefined;
  private unloggedDrops = 0;
  private lastDropWarningAt = Number.NEGATIVE_INFINITY;
  private lastWriteErrorAt = Number.NEGATIVE_INFINITY;
  /** The batch being written: batches go one at a time, in queue order. */
  private writing: Promise<boolean> = Promise.resolve(true);
  private trimming = false;

  constructor(
    private readonly store: AuditStore,
    private readonly settings: AuditSettings,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Starts retention: a trim now, then every `trimIntervalMs`. */
  start(): void {
    if (this.closed || this.trimTimer) return;
    this.trimTimer = setInterval(() => void this.trimInBackground(), this.settings.trimIntervalMs);
    this.trimTimer.unref();
    void this.trimInBackground();
  }

  /** Queues one event. Never throws, never blocks; see the class comment. */
  record(event: AuditEvent): void {
    try {
      if (this.closed) {
        this.dropped++;
        return;
      }
      const record = this.toRecord(event);
      if (this.queue.length >= this.settings.maxQueued) {
        this.queue.dropOldest();
        this.noteDrop();
      }
      this.queue.push(record);
      this.scheduleFlush();
    } catch (err) {
      // Nothing about an event may break the call it describes.
      try {
        this.noteDrop();
        this.scheduleFlush();
        this.logger.debug({ err: (err as Error).message }, 'audit: could not record an event');
      } catch {
        // Not even that: the event is lost, and counted.
      }
    }
  }

  /** Called with every row once it is written. Returns the unsubscribe function. */
  subscribe(listener: AuditListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): AuditStats {
    return { queued: this.queue.length, written: this.written, dropped: this.dropped };
  }

  /**
   * Writes what is queued now, without waiting for another process's lock. Returns false when
   * something is still queued (the database was busy or failing); the timer tries again.
   */
  async flush(): Promise<boolean> {
    while (this.queue.length > 0 || this.unrecordedDrops > 0) {
      if (!(await this.writeBatch('try'))) return false;
    }
    return true;
  }

  /**
   * Stops the timers and writes everything queued, waiting for the database lock if it must
   * (shutdown may take that long). Events recorded afterwards are dropped.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.flushTimer);
    clearImmediate(this.flushImmediate);
    clearInterval(this.trimTimer);
    clearImmediate(this.trimImmediate);
    this.flushTimer = this.flushImmediate = this.trimTimer = this.trimImmediate = undefined;
    while (this.queue.length > 0 || this.unrecordedDrops > 0) {
      if (!(await this.writeBatch('wait'))) {
        const lost = this.queue.length;
        this.dropped += lost;
        this.logger.error({ lost }, 'audit: could not write the last events before shutdown');
        return;
      }
    }
  }

  /**
   * Applies retention now (every chunk, without waiting for a lock). Returns the rows deleted,
   * or undefined when the database was busy.
   */
  async trim(): Promise<number | undefined> {
    let total = 0;
    for (;;) {
      const deleted = await this.trimChunk();
      if (deleted === undefined) return undefined;
      total += deleted;
      if (deleted < this.settings.trimChunkRows) return total;
    }
  }

  private toRecord(e: AuditEvent): AuditRecord {
    const at = e.at instanceof Date && !Number.isNaN(e.at.getTime()) ? e.at : this.now();
    return {
      at,
      agent: text(e.agent, MAX_NAME_CHARS),
      kind: text(e.kind, MAX_NAME_CHARS) ?? 'unknown',
      exposedName: text(e.exposedName, MAX_NAME_CHARS),
      host: text(e.host, MAX_NAME_CHARS),
      server: text(e.server, MAX_NAME_CHARS),
      originalName: text(e.originalName, MAX_NAME_CHARS),
      durationMs: amount(e.durationMs),
      outcome: text(e.outcome, MAX_NAME_CHARS) ?? 'unknown',
      error: text(e.error, MAX_ERROR_CHARS),
      bytesIn: wholeAmount(e.bytesIn),
      bytesOut: wholeAmount(e.bytesOut),
      arguments: e.arguments === undefined ? null : redactArguments(e.arguments, this.settings.redaction),
      callId: text(e.callId, MAX_NAME_CHARS),
    };
  }

  private scheduleFlush(): void {
    if (this.closed || this.flushImmediate) return;
    if (this.queue.length >= this.settings.flushBatchSize) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      this.flushImmediate = setImmediate(() => {
        this.flushImmediate = undefined;
        void this.flushRound();
      });
      return;
    }
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flushRound();
    }, this.settings.flushIntervalMs);
    this.flushTimer.unref();
  }

  /**
   * One transaction per round. A round writes what was queued when it began: while some of that
   * is left (more than `maxRowsPerTransaction`), the next round comes on the next turn of the
   * event loop; what came in meanwhile waits for the timer or a full batch.
   */
  private async flushRound(): Promise<void> {
    if (this.closed) return;
    if (this.backlog === 0) this.backlog = this.queue.length;
    const before = this.queue.length;
    const wrote = await this.writeBatch('try');
    if (this.closed) return;
    if (wrote) this.backlog = Math.max(0, this.backlog - (before - this.queue.length));
    else this.backlog = 0;
    if (this.queue.length === 0 && this.unrecordedDrops === 0) {
      this.backlog = 0;
      return;
    }
    if (this.backlog > 0) {
      this.flushImmediate ??= setImmediate(() => {
        this.flushImmediate = undefined;
        void this.flushRound();
      });
      return;
    }
    if (wrote) {
      this.scheduleFlush();
      return;
    }
    // Busy or failing: wait a whole interval, whatever the queue's length.
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flushRound();
      }, this.settings.flushIntervalMs);
      this.flushTimer.unref();
    }
  }

  /** Writes the oldest queued rows (and a pending `audit/dropped` row first); false if nothing was. */
  private writeBatch(lock: 'try' | 'wait'): Promise<boolean> {
    const next = this.writing.then(() => this.writeOneBatch(lock));
    this.writing = next;
    return next;
  }

  /** Never throws: a failure is logged and the rows stay queued. */
  private async writeOneBatch(lock: 'try' | 'wait'): Promise<boolean> {
    const count = Math.min(this.queue.length, this.settings.maxRowsPerTransaction);
    const batch = this.queue.peek(count);
    const dropCount = this.unrecordedDrops;
    const records = dropCount > 0 ? [this.dropRecord(dropCount), ...batch] : batch;
    if (records.length === 0) return true;
    let stored: StoredAuditEvent[];
    try {
      const insert = (tx: AuditRepos) => tx.auditEvents.insertMany(records);
      if (lock === 'wait') stored = await this.store.transaction(insert);
      else {
        const result = await this.store.tryWrite(insert);
        if (!result.written) return false;
        stored = result.value;
      }
    } catch (err) {
      this.noteWriteError(err, records.length);
      return false;
    }
    this.queue.remove(count);
    this.unrecordedDrops -= dropCount;
    if (this.unrecordedDrops === 0) this.firstUnrecordedDropAt = undefined;
    this.written += stored.length;
    this.notify(stored);
    return true;
  }

  private dropRecord(count: number): AuditRecord {
    return {
      at: this.firstUnrecordedDropAt ?? this.now(),
      agent: null,
      kind: 'audit/dropped',
      exposedName: null,
      host: null,
      server: null,
      originalName: null,
      durationMs: null,
      outcome: 'dropped',
      error: `${count} audit event${count === 1 ? ' was' : 's were'} dropped: more than ${this.settings.maxQueued} were waiting to be written`,
      bytesIn: null,
      bytesOut: null,
      arguments: null,
      callId: null,
    };
  }

  private notify(rows: readonly StoredAuditEvent[]): void {
    if (this.listeners.size === 0) return;
    for (const row of rows) {
      for (const listener of [...this.listeners]) {
        try {
          listener(row);
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'audit: a listener failed');
        }
      }
    }
  }

  private noteDrop(): void {
    this.dropped++;
    this.unrecordedDrops++;
    this.firstUnrecordedDropAt ??= this.now();
    this.unloggedDrops++;
    const now = Date.now();
    if (now - this.lastDropWarningAt < this.settings.dropWarningIntervalMs) return;
    this.logger.warn(
      { dropped: this.unloggedDrops, droppedTotal: this.dropped, queued: this.queue.length },
      'audit: the queue is full, dropping the oldest events (is the database locked or failing?)',
    );
    this.lastDropWarningAt = now;
    this.unloggedDrops = 0;
  }

  private noteWriteError(err: unknown, rows: number): void {
    const now = Date.now();
    if (now - this.lastWriteErrorAt < this.settings.dropWarningIntervalMs) return;
    this.lastWriteErrorAt = now;
    this.logger.error(
      { err: (err as Error).message, rows, queued: this.queue.length },
      'audit: could not write events; they stay queued and are tried again',
    );
  }

  /** Deletes one chunk; undefined when the database was busy. */
  private async trimChunk(): Promise<number | undefined> {
    const { retentionMs, maxRows, trimChunkRows } = this.settings;
    try {
      const result = await this.store.tryWrite((tx) =>
        tx.auditEvents.trim(retentionMs, maxRows, trimChunkRows),
      );
      return result.written ? result.value : undefined;
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'audit: retention failed');
      return undefined;
    }
  }

  /** One chunk per turn of the event loop, so that a large first trim does not stall calls. */
  private async trimInBackground(): Promise<void> {
    if (this.closed || this.trimImmediate || this.trimming) return;
    this.trimming = true;
    let deleted: number | undefined;
    try {
      deleted = await this.trimChunk();
    } finally {
      this.trimming = false;
    }
    if (this.closed) return;
    if (deleted !== undefined) this.trimmedThisRound += deleted;
    if (deleted !== undefined && deleted >= this.settings.trimChunkRows) {
      this.trimImmediate = setImmediate(() => {
        this.trimImmediate = undefined;
        void this.trimInBackground();
      });
      return;
    }
    if (this.trimmedThisRound > 0) {
      this.logger.info({ deleted: this.trimmedThisRound }, 'audit: deleted rows past retention');
    }
    this.trimmedThisRound = 0;
  }
}

function text(value: unknown, max: number): string | null {
  if (value === undefined || value === null) return null;
  const s = typeof value === 'string' ? value : String(value);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function amount(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

function wholeAmount(value: unknown): number | null {
  const n = amount(value);
  return n === null ? null : Math.round(n);
}

/** A FIFO whose removals from the front are O(1) amortized. */
class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(count: number): T[] {
    return this.items.slice(this.head, this.head + count) as T[];
  }

  remove(count: number): void {
    for (let i = 0; i < count; i++) this.items[this.head + i] = undefined;
    this.head += count;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  dropOldest(): void {
    if (this.length > 0) this.remove(1);
  }
}
