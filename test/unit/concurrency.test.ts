import { describe, expect, it } from 'vitest';
import {
  ConcurrencyLimit,
  QueueAbortedError,
  QueueDeadlineError,
} from '../../src/cluster/concurrencyLimit.js';
import { Backoff } from '../../src/mcp/backoff.js';

describe('ConcurrencyLimit', () => {
  it('lets a cancelled waiter leave the queue at once, and it never runs', async () => {
    const limit = new ConcurrencyLimit(1, 4);
    let release!: () => void;
    const first = limit.run(
      () => new Promise<void>((r) => (release = r)),
      () => new Error('full'),
    );
    const agent = new AbortController();
    let ran = false;
    const waiting = limit.run(
      async () => (ran = true),
      () => new Error('full'),
      { signal: agent.signal },
    );
    expect(limit.queued).toBe(1);
    agent.abort();
    await expect(waiting).rejects.toBeInstanceOf(QueueAbortedError);
    expect(limit.queued).toBe(0);
    release();
    await first;
    await new Promise((r) => setTimeout(r, 0));
    expect(ran).toBe(false);
    const already = new AbortController();
    already.abort();
    await expect(
      limit.run(
        async () => 1,
        () => new Error('full'),
        { signal: already.signal },
      ),
    ).rejects.toBeInstanceOf(QueueAbortedError);
  });

  it('takes a waiter out of the queue when its deadline passes', async () => {
    const limit = new ConcurrencyLimit(1, 4);
    let release!: () => void;
    const first = limit.run(
      () => new Promise<void>((r) => (release = r)),
      () => new Error('full'),
    );
    const late = limit.run(
      async () => 'ran',
      () => new Error('full'),
      { deadline: Date.now() + 30 },
    );
    await expect(late).rejects.toBeInstanceOf(QueueDeadlineError);
    expect(limit.queued).toBe(0);
    release();
    await first;
    expect(limit.inFlight).toBe(0);
  });

  it('runs at most `limit` tasks, queues a bounded number in order, and refuses the rest', async () => {
    const limit = new ConcurrencyLimit(2, 2);
    const releases: (() => void)[] = [];
    const started: number[] = [];
    const task = (n: number) => () =>
      new Promise<number>((resolve) => {
        started.push(n);
        releases.push(() => resolve(n));
      });
    const full = () => new Error('full');
    const runs = [1, 2, 3, 4].map((n) => limit.run(task(n), full));
    await expect(limit.run(task(5), full)).rejects.toThrow('full');
    await Promise.resolve();
    expect(started).toEqual([1, 2]);
    expect(limit.inFlight).toBe(2);
    expect(limit.queued).toBe(2);
    releases.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual([1, 2, 3]);
    while (releases.length) {
      releases.shift()!();
      await new Promise((r) => setTimeout(r, 0));
    }
    expect(await Promise.all(runs)).toEqual([1, 2, 3, 4]);
    expect(limit.inFlight).toBe(0);
  });

  it('frees the slot when a task fails', async () => {
    const limit = new ConcurrencyLimit(1, 0);
    await expect(
      limit.run(
        () => Promise.reject(new Error('boom')),
        () => new Error('full'),
      ),
    ).rejects.toThrow('boom');
    expect(
      await limit.run(
        async () => 'next',
        () => new Error('full'),
      ),
    ).toBe('next');
  });
});

describe('Backoff', () => {
  it('doubles from the base up to the cap, and starts over after reset', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000 });
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(() => b.next())).toEqual([
      1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000,
    ]);
    b.reset();
    expect(b.next()).toBe(1000);
  });

  it('with full jitter, waits a random time up to the ceiling', () => {
    const values = [0, 0.5, 0.999];
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, jitter: 'full', random: () => values.shift()! });
    expect(b.next()).toBe(0);
    expect(b.next()).toBe(1000);
    expect(b.next()).toBe(Math.round(0.999 * 4000));
  });
});
