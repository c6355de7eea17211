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
  readonly exposed: readonly ExposedItem<T>[];
  readonly rejected: readonly RejectedItem[];
}

export function emptyNameTable<T extends Named>(): NameTable<T> {
  return { byName: new Map(), exposed: [], rejected: [] };
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

/**
 * Builds `exposed name → (upstream, original name)`. Routing reads this table; nothing ever
 * splits a name on `_`. Every claimant of a colliding name is refused, so the outcome never
 * depends on which upstream happened to start first, and names over the limit are refused
 * rather than truncated (a truncated name could silently point at another item later).
 */
export function buildNameTable<T extends Named>(
  sources: readonly UpstreamItems<T>[],
  maxNameLength: number,
  expose: ExposeName = prefixedName,
  /** Refused before naming (limits, charset); they are listed with the table's own refusals. */
  refusedEarlier: readonly RejectedItem[] = [],
): NameTable<T> {
  const claims = new Map<string, ExposedItem<T>[]>();
  const rejected: RejectedItem[] = [...refusedEarlier];
  for (const { upstream, items } of sources) {
    for (const item of items) {
      const exposedName = expose(upstream, item.name);
      const entry: ExposedItem<T> = {
        exposedName,
        upstream,
        originalName: item.name,
        definition: { ...item, name: exposedName },
      };
      if (exposedName.length > maxNameLength) {
        rejected.push({
          ...withoutDefinition(entry),
          reason: 'too-long',
          detail: `${exposedName.length} characters, the limit is ${maxNameLength}`,
        });
        continue;
      }
      const list = claims.get(exposedName);
      if (list) list.push(entry);
      else claims.set(exposedName, [entry]);
    }
  }
  const byName = new Map<string, ExposedItem<T>>();
  const exposed: ExposedItem<T>[] = [];
  for (const [name, entries] of claims) {
    if (entries.length === 1) {
      byName.set(name, entries[0]!);
      exposed.push(entries[0]!);
      continue;
    }
    const owners = entries.map((e) => `${e.upstream}:${e.originalName}`).join(', ');
    for (const e of entries) {
      rejected.push({ ...withoutDefinition(e), reason: 'collision', detail: `claimed by ${owners}` });
    }
  }
  return { byName, exposed, rejected };
}

function withoutDefinition<T extends Named>(e: ExposedItem<T>): Omit<ExposedItem<T>, 'definition'> {
  return { exposedName: e.exposedName, upstream: e.upstream, originalName: e.originalName };
}

/** True when two tables would look the same to an agent (names and definitions). */
export function sameExposed<T extends Named>(a: NameTable<T>, b: NameTable<T>): boolean {
  if (a.exposed.length !== b.exposed.length) return false;
  for (const item of a.exposed) {
    const other = b.byName.get(item.exposedName);
    if (!other || JSON.stringify(other.definition) !== JSON.stringify(item.definition)) return false;
  }
  return true;
}
