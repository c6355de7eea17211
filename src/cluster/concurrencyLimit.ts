/** A task never started: its caller gave up while it waited in the queue. */
export class QueueAbortedError extends Error {
  constructor(reason: unknown) {
    super(reason instanceof Error ? reason.message : 'the caller gave up while waiting in the queue');
    this.name = 'QueueAbortedError';
  }
}

/** A task never started: its deadline passed while it waited in the queue. */
export class QueueDeadlineError extends Error {
  constructor() {
    super('the call waited in the queue until its time was up');
    this.name = 'QueueDeadlineError';
  }
}

export interface RunOptions {
  /** Aborting leaves the queue at once. */
  signal?: AbortSignal;
  /** Epoch ms: a task still queued then leaves the queue with QueueDeadlineError. */
  deadline?: number;
}

/**
 * At most `limit` tasks at once; up to `maxQueued` more wait in order; beyond that, `run`
 * rejects at once rather than letting a flood of calls pile up behind one slow slave. A waiter
 * whose signal aborts leaves the queue at once, so it neither holds a place nor runs later.
 */
export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limit: number,
    private readonly maxQueued: number,
  ) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T>, onFull: () => Error, opts: RunOptions = {}): Promise<T> {
    const { signal, deadline } = opts;
    if (signal?.aborted) throw new QueueAbortedError(signal.reason);
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.maxQueued) throw onFull();
      await new Promise<void>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const wake = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const leave = (err: Error) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const i = this.waiting.indexOf(wake);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(err);
        };
        const onAbort = () => leave(new QueueAbortedError(signal?.reason));
        this.waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
        if (deadline !== undefined) {
          timer = setTimeout(() => leave(new QueueDeadlineError()), Math.max(0, deadline - Date.now()));
        }
      });
    }
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
