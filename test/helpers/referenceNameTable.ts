import {
  type ExposedItem,
  type ExposeName,
  type Named,
  type NameTable,
  prefixedName,
  type RejectedItem,
  type UpstreamItems,
} from '../../src/mcp/nameTable.js';

/**
 * The name table's rules as one rebuild over every upstream (the router's algorithm before it
 * became incremental), kept as the oracle the property tests hold `LiveNameTable` to.
 * `sources` must come in code-unit order of their upstream names, as the router orders them.
 */
export function referenceNameTable<T extends Named>(
  sources: readonly UpstreamItems<T>[],
  maxNameLength: number,
  expose: ExposeName = prefixedName,
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
