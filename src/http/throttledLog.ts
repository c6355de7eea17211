import type { Logger } from '../log.js';

/**
 * Logs the first occurrence at once and then at most one summary per interval: a flood must
 * show up in the log without becoming a second flood there.
 */
export class ThrottledLog {
  private lastAt = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly level: 'debug' | 'warn' | 'error',
    private readonly message: string,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  note(fields: Record<string, unknown> = {}): void {
    const now = this.now();
    if (now - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.logger[this.level]({ ...fields, alsoSinceLastLog: this.suppressed }, this.message);
    this.lastAt = now;
    this.suppressed = 0;
  }
}
