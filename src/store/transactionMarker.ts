import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Marks the async context of a store's transactions, so that the store can refuse to be used
 * from inside one of them (such a statement would wait for the transaction waiting for it).
 *
 * On Node 20 an enabled AsyncLocalStorage installs promise hooks for the whole process, and every
 * promise anywhere pays for them: 2–3 % of a daemon's CPU under load (profiled at c=64), for a
 * check that only means something while a transaction runs. So the storage is enabled only
 * while a transaction of its owner runs, and disabled when the last one ends.
 */
export class TransactionMarker<Owner> {
  private readonly storage = new AsyncLocalStorage<Owner>();
  private running = 0;

  constructor(private readonly owner: Owner) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await this.storage.run(this.owner, fn);
    } finally {
      if (--this.running === 0) this.storage.disable();
    }
  }

  /** Whether the caller runs inside one of the owner's transactions. */
  get inside(): boolean {
    return this.running > 0 && this.storage.getStore() === this.owner;
  }
}
