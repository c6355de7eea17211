import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ExposeName,
  LiveNameTable,
  type Named,
  type NameTable,
  prefixedName,
  type RejectedItem,
} from '../../src/mcp/nameTable.js';
import { referenceNameTable } from '../helpers/referenceNameTable.js';

interface Item extends Named {
  description: string;
}

/** Upstream and item names chosen so that `a` + `b_x` and `a_b` + `x` collide, and long ones pass 8. */
const UPSTREAMS = ['a', 'a_b', 'b', 'zz'];
const NAMES = ['x', 'b_x', 'y', 'long_name', 'x'];
const MAX_NAME = 8;

type Op =
  | { kind: 'set'; upstream: string; items: number[]; refused: number }
  | { kind: 'delete'; upstream: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    upstream: fc.constantFrom(...UPSTREAMS),
    items: fc.array(fc.nat(11), { maxLength: 6 }),
    refused: fc.nat(2),
  }),
  fc.record({ kind: fc.constant('delete' as const), upstream: fc.constantFrom(...UPSTREAMS) }),
);

/** Twelve item objects: a name each, and two descriptions for the same name (a changed definition). */
const POOL: Item[] = Array.from({ length: 12 }, (_, i) => ({
  name: NAMES[i % NAMES.length]!,
  description: i < 6 ? 'first' : 'second',
}));

function refusedOf(upstream: string, count: number): RejectedItem[] {
  return Array.from({ length: count }, (_, i) => ({
    exposedName: `${upstream}/*`,
    upstream,
    originalName: `${i + 1} more tools`,
    reason: 'upstream-cap' as const,
    detail: `cap ${i}`,
  }));
}

function snapshot<T extends Named>(table: NameTable<T>) {
  return {
    exposed: table.exposed.map((e) => ({ ...e })),
    byName: [...table.byName.keys()].sort(),
    rejected: table.rejected.map((r) => ({ ...r })),
  };
}

const rejectionKey = (r: RejectedItem) => `${r.upstream}\u0000${r.originalName}\u0000${r.reason}`;

function runSequence(ops: readonly Op[], expose: ExposeName): void {
  const live = new LiveNameTable<Item>(MAX_NAME, expose);
  const state = new Map<string, { items: Item[]; refused: RejectedItem[] }>();
  const reference = () => {
    const upstreams = [...state.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    return referenceNameTable(
      upstreams.map((upstream) => ({ upstream, items: state.get(upstream)!.items })),
      MAX_NAME,
      expose,
      upstreams.flatMap((u) => state.get(u)!.refused),
    );
  };
  let before = reference();
  for (const op of ops) {
    const delta =
      op.kind === 'set'
        ? live.set(
            op.upstream,
            op.items.map((i) => POOL[i]!),
            refusedOf(op.upstream, op.refused),
          )
        : live.delete(op.upstream);
    if (op.kind === 'set') {
      state.set(op.upstream, {
        items: op.items.map((i) => POOL[i]!),
        refused: refusedOf(op.upstream, op.refused),
      });
    } else {
      state.delete(op.upstream);
    }
    const after = reference();
    expect(snapshot(live)).toEqual(snapshot(after));

    // The delta names exactly the entries an agent sees appear, go or change.
    const expectedChanged = new Set<string>();
    for (const e of before.exposed) {
      const now = after.byName.get(e.exposedName);
      if (
        !now ||
        now.upstream !== e.upstream ||
        JSON.stringify(now.definition) !== JSON.stringify(e.definition)
      )
        expectedChanged.add(e.exposedName);
    }
    for (const e of after.exposed) if (!before.byName.has(e.exposedName)) expectedChanged.add(e.exposedName);
    expect(new Set(delta.changed.map((c) => c.exposedName))).toEqual(expectedChanged);

    const wasRejected = new Set(before.rejected.map(rejectionKey));
    const newly = new Set(after.rejected.map(rejectionKey).filter((k) => !wasRejected.has(k)));
    expect(new Set(delta.newlyRejected.map(rejectionKey))).toEqual(newly);
    before = after;
  }
}

describe('LiveNameTable', () => {
  it('equals a rebuild from scratch after any sequence of attach, update and detach', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 30 }), (ops) => runSequence(ops, prefixedName)),
      { numRuns: 400 },
    );
  });

  it('does so with transparent names too (the diane mcp bridge)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 20 }), (ops) => runSequence(ops, (_u, name) => name)),
      { numRuns: 200 },
    );
  });

  it('frees a claimant when the collision goes away', () => {
    const table = new LiveNameTable<Item>(64);
    table.set('a', [{ name: 'b_x', description: '' }]);
    const collided = table.set('a_b', [{ name: 'x', description: '' }]);
    expect(table.byName.has('a_b_x')).toBe(false);
    expect(collided.newlyRejected.map((r) => r.upstream)).toEqual(['a', 'a_b']);
    const freed = table.delete('a_b');
    expect(table.byName.get('a_b_x')?.upstream).toBe('a');
    expect(freed.changed).toEqual([{ exposedName: 'a_b_x', upstream: 'a' }]);
    expect(table.rejected).toEqual([]);
  });

  it('takes the same items and equal refusals as no change, and a refusal changed in any field as one', () => {
    const table = new LiveNameTable<Item>(64);
    const items = [{ name: 'x', description: '' }];
    const refusal = (over: Partial<RejectedItem> = {}): RejectedItem => ({
      exposedName: 'a/*',
      upstream: 'a',
      originalName: '1 more tools',
      reason: 'upstream-cap',
      detail: 'cap 1',
      ...over,
    });
    table.set('a', items, [refusal()]);
    const version = table.versionOf('a');
    const exposed = table.exposed;
    const rejected = table.rejected;
    expect(table.set('a', items, [refusal()])).toEqual({ changed: [], newlyRejected: [] });
    expect(table.versionOf('a')).toBe(version);
    // The lists are built once per change, not on every read.
    expect(table.exposed).toBe(exposed);
    expect(table.rejected).toBe(rejected);
    for (const change of [
      { exposedName: 'a/+' },
      { originalName: '2 more tools' },
      { reason: 'too-large' as const },
      { detail: 'cap 2' },
    ]) {
      table.set('a', items, [refusal()]);
      expect(table.rejected).toEqual([refusal()]);
      table.set('a', items, [refusal(change)]);
      expect(table.rejected).toEqual([refusal(change)]);
    }
    // Every refusal of the list counts, not only the first.
    table.set('a', items, [refusal(), refusal({ originalName: 'first' })]);
    table.set('a', items, [refusal(), refusal({ originalName: 'second' })]);
    expect(table.rejected).toEqual([refusal(), refusal({ originalName: 'second' })]);
    // Its own update moves the upstream's version even when no name changed.
    const beforeDrop = table.versionOf('a');
    table.set('a', items, []);
    expect(table.versionOf('a')).toBeGreaterThan(beforeDrop);
    expect(table.rejected).toEqual([]);
  });

  it("keeps the entry of an item object it already had, and lists an upstream's own entries", () => {
    const table = new LiveNameTable<Item>(64);
    expect(table.entriesOf('nobody')).toEqual([]);
    expect(table.versionOf('nobody')).toBe(0);
    const x = { name: 'b_x', description: '' };
    table.set('a', [x, { name: 'y', description: '' }]);
    const entry = table.byName.get('a_b_x');
    table.set('a', [x, { name: 'y', description: 'changed' }]);
    expect(table.byName.get('a_b_x')).toBe(entry);
    expect(table.entriesOf('a').map((e) => e.exposedName)).toEqual(['a_b_x', 'a_y']);
    // A collision takes the name from both claimants' entries, and moves the other's version.
    const versionOfA = table.versionOf('a');
    table.set('a_b', [{ name: 'x', description: '' }]);
    expect(table.entriesOf('a').map((e) => e.exposedName)).toEqual(['a_y']);
    expect(table.entriesOf('a_b')).toEqual([]);
    expect(table.versionOf('a')).toBeGreaterThan(versionOfA);
  });

  it('leaves the other upstreams alone: their version moves only when a collision touches them', () => {
    const table = new LiveNameTable<Item>(64);
    table.set('a', [{ name: 'x', description: '' }]);
    table.set('b', [{ name: 'y', description: '' }]);
    const a = table.versionOf('a');
    const b = table.versionOf('b');
    table.set('c', [{ name: 'z', description: '' }]);
    expect([table.versionOf('a'), table.versionOf('b')]).toEqual([a, b]);
    table.set('a_x', []);
    table.set('a', [
      { name: 'x', description: '' },
      { name: 'w', description: '' },
    ]);
    expect(table.versionOf('a')).toBeGreaterThan(a);
    expect(table.versionOf('b')).toBe(b);
  });
});
