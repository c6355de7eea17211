import { definitionFacts } from './definitionFacts.js';
import { UpstreamOrder } from './upstreamOrder.js';

/** Anything exposed under a name: a tool or a prompt. */
export interface Named {
  name: string;
}

/** One upstream's contribution to a table, in a stable order. */
export interface UpstreamItems<T extends Named> {
  upstream: string;
  items: readonly T[];
}

export interface ExposedItem<T extends Named> {
  exposedName: string;
  upstream: string;
  originalName: string;
  /** The definition as agents see it: the upstream's item under its exposed name. */
  definition: T;
}

export type RejectionReason =
  | 'collision'
  | 'too-long'
  | 'not-a-uri'
  | 'bad-name'
  | 'upstream-cap'
  | 'too-large';

export interface RejectedItem {
  exposedName: string;
  upstream: string;
  originalName: string;
  reason: RejectionReason;
  detail: string;
}

export interface NameTable<T extends Named> {
  readonly byName: ReadonlyMap<string, ExposedItem<T>>;
  /** Upstreams in code-unit order, each in its own order. */
  readonly exposed: readonly ExposedItem<T>[];
  /** Refusals before naming, then names over the limit, then collisions by first claimant. */
  readonly rejected: readonly RejectedItem[];
}

/** What one upstream's update did to a table. */
export interface TableDelta {
  /** Exposed names that appeared, went, or whose definition changed, with their upstream. */
  changed: { exposedName: string; upstream: string }[];
  /** Refusals that were not there before the update (a collision refuses other upstreams too). */
  newlyRejected: RejectedItem[];
}

export type ExposeName = (upstream: string, name: string) => string;

export const prefixedName: ExposeName = (upstream, name) => `${upstream}_${name}`;

/**
 * The server and tool (or prompt) of a name a slave exposes, `<server>_<name>`: server names have
 * no `_` (config/mcpServers.ts), so the first `_` is the separator. Undefined for anything else.
 */
export function splitServerName(name: string): { server: string; name: string } | undefined {
  const at = name.indexOf('_');
  if (at <= 0 || at === name.length - 1) return undefined;
  return { server: name.slice(0, at), name: name.slice(at + 1) };
}

interface Claim<T extends Named> {
  /** The upstream's own item: the same object next time is the same definition. */
  item: T;
  entry: ExposedItem<T>;
  digest: number;
  /** Its place in its upstream's list: with the upstream's rank, its place in every list. */
  index: number;
}

interface Contribution<T extends Named> {
  items: readonly T[];
  refusedEarlier: readonly RejectedItem[];
  /** Items within the name length limit, in the upstream's order. */
  claims: Claim<T>[];
  tooLong: RejectedItem[];
  /** Bumped whenever what this upstream has exposed changes (its own update or a collision). */
  version: number;
}

const NO_CHANGE: TableDelta = Object.freeze({ changed: [], newlyRejected: [] });

/**
 * `exposed name → (upstream, original name)`, updated one upstream at a time: an attach, a drop
 * or a re-read list costs that upstream's entries (and the few names it shares), never all of
 * them. Routing reads this table; nothing ever splits a name on `_`. Every claimant of a colliding
 * name is refused, so the outcome never depends on which upstream happened to start first (and a
 * claimant comes back when the collision goes away), and names over the limit are refused rather
 * than truncated (a truncated name could silently point at another item later). Whatever the
 * order of updates, the table equals one built from scratch (`buildNameTable`).
 */
export class LiveNameTable<T extends Named> implements NameTable<T> {
  private readonly contributions = new Map<string, Contribution<T>>();
  private readonly order = new UpstreamOrder();
  /** Every claimant of each name, in list order; more than one is a collision. */
  private readonly claims = new Map<string, Claim<T>[]>();
  private readonly collided = new Set<string>();
  private readonly sole = new Map<string, ExposedItem<T>>();
  private versions = 0;
  private exposedList?: ExposedItem<T>[];
  private rejectedList?: RejectedItem[];

  constructor(
    private readonly maxNameLength: number,
    private readonly expose: ExposeName = prefixedName,
  ) {}

  get byName(): ReadonlyMap<string, ExposedItem<T>> {
    return this.sole;
  }

  get exposed(): readonly ExposedItem<T>[] {
    if (!this.exposedList) {
      const list: ExposedItem<T>[] = [];
      for (const upstream of this.order) {
        for (const claim of this.contributions.get(upstream)!.claims) {
          if (this.sole.get(claim.entry.exposedName) === claim.entry) list.push(claim.entry);
        }
      }
      this.exposedList = list;
    }
    return this.exposedList;
  }

  get rejected(): readonly RejectedItem[] {
    if (!this.rejectedList) {
      const list: RejectedItem[] = [];
      for (const upstream of this.order) list.push(...this.contributions.get(upstream)!.refusedEarlier);
      for (const upstream of this.order) list.push(...this.contributions.get(upstream)!.tooLong);
      const groups = [...this.collided].map((name) => this.claims.get(name)!);
      groups.sort((a, b) => this.compare(a[0]!, b[0]!));
      for (const group of groups) list.push(...collisionRejections(group));
      this.rejectedList = list;
    }
    return this.rejectedList;
  }

  /** One upstream's exposed entries, in its order. */
  entriesOf(upstream: string): ExposedItem<T>[] {
    const claims = this.contributions.get(upstream)?.claims ?? [];
    return claims.filter((c) => this.sole.get(c.entry.exposedName) === c.entry).map((c) => c.entry);
  }

  /** Changes whenever what `upstream` has exposed changes; 0 for an upstream not in the table. */
  versionOf(upstream: string): number {
    return this.contributions.get(upstream)?.version ?? 0;
  }

  /**
   * Replaces one upstream's items. `refusedEarlier`: its items refused before naming (limits,
   * charset), listed with the table's own refusals.
   */
  set(upstream: string, items: readonly T[], refusedEarlier: readonly RejectedItem[] = []): TableDelta {
    const before = this.contributions.get(upstream);
    if (before && sameItems(before.items, items) && sameRejections(before.refusedEarlier, refusedEarlier)) {
      return NO_CHANGE;
    }
    return this.replace(upstream, before, this.contributionOf(upstream, items, refusedEarlier, before));
  }

  delete(upstream: string): TableDelta {
    const before = this.contributions.get(upstream);
    return before ? this.replace(upstream, before, undefined) : NO_CHANGE;
  }

  private contributionOf(
    upstream: string,
    items: readonly T[],
    refusedEarlier: readonly RejectedItem[],
    before: Contribution<T> | undefined,
  ): Contribution<T> {
    // The same item object is the same definition: its entry and digest are kept.
    const known = new Map<T, Claim<T>>();
    for (const claim of before?.claims ?? []) known.set(claim.item, claim);
    const claims: Claim<T>[] = [];
    const tooLong: RejectedItem[] = [];
    items.forEach((item, index) => {
      const old = known.get(item);
      if (old) {
        claims.push({ item, entry: old.entry, digest: old.digest, index });
        return;
      }
      const exposedName = this.expose(upstream, item.name);
      if (exposedName.length > this.maxNameLength) {
        tooLong.push({
          exposedName,
          upstream,
          originalName: item.name,
          reason: 'too-long',
          detail: `${exposedName.length} characters, the limit is ${this.maxNameLength}`,
        });
        return;
      }
      const definition = { ...item, name: exposedName };
      const entry = { exposedName, upstream, originalName: item.name, definition };
      claims.push({ item, entry, digest: definitionFacts(item).digest, index });
    });
    return { items, refusedEarlier, claims, tooLong, version: 0 };
  }

  private replace(
    upstream: string,
    before: Contribution<T> | undefined,
    after: Contribution<T> | undefined,
  ): TableDelta {
    const touched = new Set<string>();
    for (const c of before?.claims ?? []) touched.add(c.entry.exposedName);
    for (const c of after?.claims ?? []) touched.add(c.entry.exposedName);
    const exposedBefore = new Map<string, Claim<T> | undefined>();
    const rejectedBefore = new Set<string>();
    for (const r of [...(before?.refusedEarlier ?? []), ...(before?.tooLong ?? [])]) {
      rejectedBefore.add(rejectionKey(r));
    }
    for (const name of touched) {
      const claimants = this.claims.get(name);
      exposedBefore.set(name, claimants?.length === 1 ? claimants[0] : undefined);
      if (claimants && claimants.length > 1) {
        for (const r of collisionRejections(claimants)) rejectedBefore.add(rejectionKey(r));
      }
    }

    for (const claim of before?.claims ?? []) this.unclaim(claim);
    if (after) {
      this.contributions.set(upstream, after);
      this.order.add(upstream);
      for (const claim of after.claims) this.claim(claim);
    } else {
      this.contributions.delete(upstream);
      this.order.delete(upstream);
    }

    const delta: TableDelta = { changed: [], newlyRejected: [] };
    const bumped = new Set<string>([upstream]);
    for (const name of touched) {
      const claimants = this.claims.get(name);
      const now = claimants?.length === 1 ? claimants[0] : undefined;
      if (now) this.sole.set(name, now.entry);
      else this.sole.delete(name);
      if (claimants && claimants.length > 1) this.collided.add(name);
      else this.collided.delete(name);
      const was = exposedBefore.get(name);
      if (was === now) continue;
      if (was && now && was.digest === now.digest && was.entry.upstream === now.entry.upstream) continue;
      const changed = (was ?? now)!.entry;
      delta.changed.push({ exposedName: name, upstream: changed.upstream });
      for (const c of [was, now]) if (c) bumped.add(c.entry.upstream);
    }
    const rejectedAfter = [...(after?.refusedEarlier ?? []), ...(after?.tooLong ?? [])];
    for (const name of touched) {
      const claimants = this.claims.get(name);
      if (claimants && claimants.length > 1) rejectedAfter.push(...collisionRejections(claimants));
    }
    for (const r of rejectedAfter) if (!rejectedBefore.has(rejectionKey(r))) delta.newlyRejected.push(r);

    for (const name of bumped) {
      const contribution = this.contributions.get(name);
      if (contribution) contribution.version = ++this.versions;
    }
    this.exposedList = undefined;
    this.rejectedList = undefined;
    return delta;
  }

  private claim(claim: Claim<T>): void {
    const name = claim.entry.exposedName;
    const claimants = this.claims.get(name);
    if (!claimants) {
      this.claims.set(name, [claim]);
      return;
    }
    claimants.push(claim);
    claimants.sort((a, b) => this.compare(a, b));
  }

  private unclaim(claim: Claim<T>): void {
    const name = claim.entry.exposedName;
    const claimants = this.claims.get(name);
    if (!claimants) return;
    const left = claimants.filter((c) => c !== claim);
    if (left.length > 0) this.claims.set(name, left);
    else this.claims.delete(name);
  }

  /** List order: the upstream's rank, then the item's place in its upstream. */
  private compare(a: Claim<T>, b: Claim<T>): number {
    if (a.entry.upstream !== b.entry.upstream) {
      return this.order.rank(a.entry.upstream) - this.order.rank(b.entry.upstream);
    }
    return a.index - b.index;
  }
}

/**
 * A table built from scratch. `refusedEarlier`: items refused before naming (limits, charset),
 * listed with the table's own refusals.
 */
export function buildNameTable<T extends Named>(
  sources: readonly UpstreamItems<T>[],
  maxNameLength: number,
  expose: ExposeName = prefixedName,
  refusedEarlier: readonly RejectedItem[] = [],
): NameTable<T> {
  const table = new LiveNameTable<T>(maxNameLength, expose);
  for (const { upstream, items } of sources) {
    table.set(
      upstream,
      items,
      refusedEarlier.filter((r) => r.upstream === upstream),
    );
  }
  return table;
}

function collisionRejections<T extends Named>(claimants: readonly Claim<T>[]): RejectedItem[] {
  const owners = claimants.map((c) => `${c.entry.upstream}:${c.entry.originalName}`).join(', ');
  return claimants.map(({ entry }) => ({
    exposedName: entry.exposedName,
    upstream: entry.upstream,
    originalName: entry.originalName,
    reason: 'collision',
    detail: `claimed by ${owners}`,
  }));
}

function rejectionKey(r: RejectedItem): string {
  return `${r.upstream}\u0000${r.originalName}\u0000${r.reason}`;
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

function sameRejections(a: readonly RejectedItem[], b: readonly RejectedItem[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => {
      const o = b[i]!;
      return (
        r.exposedName === o.exposedName &&
        r.originalName === o.originalName &&
        r.reason === o.reason &&
        r.detail === o.detail
      );
    })
  );
}
