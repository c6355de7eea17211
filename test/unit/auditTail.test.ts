import { describe, expect, it } from 'vitest';
import { AuditTail } from '../../src/audit/index.js';
import { silentLogger } from '../../src/log.js';
import type { AuditQuery, AuditRepo } from '../../src/store/index.js';
import { storedAuditRow } from '../helpers/auditRows.js';
import { waitFor } from '../helpers/wait.js';

const row = (id: number) => storedAuditRow(id);

/** A table the test appends to, and a store that fails when told to. */
function fakeRepo() {
  const fake = {
    table: [row(1), row(2)],
    reads: 0,
    failing: false,
    repo: {
      maxId: async () => {
        if (fake.failing) throw new Error('store away');
        return fake.table.at(-1)?.id ?? 0;
      },
      query: async (q: AuditQuery) => {
        fake.reads++;
        if (fake.failing) throw new Error('store away');
        return fake.table.filter((r) => r.id > (q.afterId ?? 0)).slice(0, q.limit);
      },
    } as unknown as AuditRepo,
  };
  return fake;
}

describe('AuditTail', () => {
  it('hands over rows after the newest at start, across a store outage, and reads only while followed', async () => {
    const fake = fakeRepo();
    let wake: (() => void) | undefined;
    const tail = new AuditTail(fake.repo, { pollMs: 20, pageRows: 2 }, silentLogger, (read) => {
      wake = read;
      return () => {
        wake = undefined;
      };
    });
    const seen: number[] = [];
    const off = tail.subscribe((r) => seen.push(r.id));
    await tail.ready();
    fake.table.push(row(3), row(4), row(5));
    wake?.();
    await waitFor(() => seen.length === 3, { what: 'rows 3 to 5, over two pages', timeoutMs: 2_000 });
    fake.failing = true;
    fake.table.push(row(6));
    await new Promise((resolve) => setTimeout(resolve, 60));
    fake.failing = false;
    await waitFor(() => seen.length === 4, { what: 'row 6 once the store is back', timeoutMs: 2_000 });
    expect(seen).toEqual([3, 4, 5, 6]);

    off();
    expect(wake).toBeUndefined();
    const reads = fake.reads;
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(fake.reads).toBe(reads);
    tail.close();
  });

  it('waits in ready() for a store that cannot say where the trail ends yet', async () => {
    const fake = fakeRepo();
    fake.failing = true;
    const tail = new AuditTail(fake.repo, { pollMs: 20, pageRows: 10 }, silentLogger);
    const seen: number[] = [];
    tail.subscribe((r) => seen.push(r.id));
    let ready = false;
    void tail.ready().then(() => {
      ready = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(ready).toBe(false);
    fake.failing = false;
    await waitFor(() => ready, { what: 'ready', timeoutMs: 2_000 });
    fake.table.push(row(3));
    await waitFor(() => seen.length === 1, { what: 'row 3', timeoutMs: 2_000 });
    expect(seen).toEqual([3]);
    tail.close();
  });
});
