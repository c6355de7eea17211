/**
 * One holder at a time, the others queued in order. SQLite has one connection per process and
 * an async transaction can be interleaved with other work at each await, so the connection is
 * held by one transaction from BEGIN to COMMIT.
 */
export class AsyncLock {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  get held(): boolean {
    return this.holders > 0;
  }

  /** Resolves once nobody holds the lock (it may be taken again right after). */
  async idle(): Promise<void> {
    while (this.holders > 0) await this.tail;
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.holders++;
    try {
      await before;
      return await fn();
    } finally {
      this.holders--;
      release();
    }
  }
}
