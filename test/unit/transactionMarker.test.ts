import { executionAsyncId } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { TransactionMarker } from '../../src/store/transactionMarker.js';

/**
 * Whether promise hooks are installed in this process: with them every promise continuation runs
 * under an async id of its own; without them, under 0.
 */
async function promiseHooksOn(): Promise<boolean> {
  await null;
  return executionAsyncId() !== 0;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('TransactionMarker', () => {
  it('tells the flow of a transaction from any other, across awaits', async () => {
    const marker = new TransactionMarker('store');
    const release = deferred();
    const seen: boolean[] = [];
    const running = marker.run(async () => {
      seen.push(marker.inside);
      await release.promise;
      await new Promise((r) => setImmediate(r));
      seen.push(marker.inside);
    });
    // A flow started outside while the transaction runs is not inside it.
    await null;
    expect(marker.inside).toBe(false);
    release.resolve();
    await running;
    expect(seen).toEqual([true, true]);
    expect(marker.inside).toBe(false);
  });

  it('does not mistake another owner for its own', async () => {
    const a = new TransactionMarker('a');
    const b = new TransactionMarker('b');
    await a.run(async () => {
      await b.run(async () => {
        expect(a.inside).toBe(true);
        expect(b.inside).toBe(true);
      });
      expect(b.inside).toBe(false);
      expect(a.inside).toBe(true);
    });
  });

  it('leaves no promise hooks behind once the last transaction ends (Node 20 installs them while enabled)', async () => {
    expect(await promiseHooksOn()).toBe(false);
    const marker = new TransactionMarker('store');
    const first = deferred();
    const second = deferred();
    const one = marker.run(async () => {
      await first.promise;
      expect(marker.inside).toBe(true);
    });
    const two = marker.run(async () => {
      await second.promise;
      // The first transaction ended meanwhile; this one is still marked.
      expect(marker.inside).toBe(true);
    });
    expect(await promiseHooksOn()).toBe(true);
    first.resolve();
    await one;
    expect(await promiseHooksOn()).toBe(true);
    second.resolve();
    await two;
    expect(await promiseHooksOn()).toBe(false);
  });

  it('ends its mark when the transaction fails', async () => {
    const marker = new TransactionMarker('store');
    await expect(
      marker.run(async () => {
        await null;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(marker.inside).toBe(false);
    expect(await promiseHooksOn()).toBe(false);
  });
});
