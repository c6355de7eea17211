/**
 * Capped exponential backoff with full jitter: attempt n waits a random time in
 * [0, min(cap, base * 2^n)]. Full jitter keeps many restarting peers (slaves after a master
 * restart, upstreams after a crash loop) from retrying in lockstep. `reset()` is called by the
 * owner once a connection has been stable for a while.
 */
export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  /** 'full' picks uniformly in [0, delay]; 'none' always waits the full delay. */
  jitter?: 'full' | 'none';
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly jitter: 'full' | 'none';
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 1000;
    this.capMs = opts.capMs ?? 60_000;
    this.jitter = opts.jitter ?? 'none';
    this.random = opts.random ?? Math.random;
  }

  /** The ceiling for the next wait, before jitter. */
  peekCeiling(): number {
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  next(): number {
    const ceiling = this.peekCeiling();
    this.attempt++;
    return this.jitter === 'full' ? Math.round(this.random() * ceiling) : ceiling;
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
