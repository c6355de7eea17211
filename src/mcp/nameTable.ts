import type { Tool } from '@modelcontextprotocol/client';

/** One upstream's contribution to the table, in a stable order. */
export interface UpstreamTools {
  upstream: string;
  tools: readonly Tool[];
}

export interface ExposedTool {
  exposedName: string;
  upstream: string;
  originalName: string;
  /** The definition as agents see it: the upstream's tool under its exposed name. */
  definition: Tool;
}

export type RejectionReason = 'collision' | 'too-long';

export interface RejectedTool {
  exposedName: string;
  upstream: string;
  originalName: string;
  reason: RejectionReason;
  detail: string;
}

export interface NameTable {
  readonly byName: ReadonlyMap<string, ExposedTool>;
  readonly exposed: readonly ExposedTool[];
  readonly rejected: readonly RejectedTool[];
}

export const EMPTY_NAME_TABLE: NameTable = { byName: new Map(), exposed: [], rejected: [] };

export function exposedNameOf(upstream: string, tool: string): string {
  return `${upstream}_${tool}`;
}

/**
 * Builds `exposed name → (upstream, original name)`. Routing reads this table; nothing ever
 * splits a name on `_`. Every claimant of a colliding name is refused, so the outcome never
 * depends on which upstream happened to start first, and names over the limit are refused
 * rather than truncated (a truncated name could silently point at another tool later).
 */
export function buildNameTable(sources: readonly UpstreamTools[], maxNameLength: number): NameTable {
  const claims = new Map<string, ExposedTool[]>();
  const rejected: RejectedTool[] = [];
  for (const { upstream, tools } of sources) {
    for (const tool of tools) {
      const exposedName = exposedNameOf(upstream, tool.name);
      const entry: ExposedTool = {
        exposedName,
        upstream,
        originalName: tool.name,
        definition: { ...tool, name: exposedName },
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
  const byName = new Map<string, ExposedTool>();
  const exposed: ExposedTool[] = [];
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

function withoutDefinition(e: ExposedTool): Omit<ExposedTool, 'definition'> {
  return { exposedName: e.exposedName, upstream: e.upstream, originalName: e.originalName };
}

/** True when two tables would look the same to an agent (names and definitions). */
export function sameExposedTools(a: NameTable, b: NameTable): boolean {
  if (a.exposed.length !== b.exposed.length) return false;
  for (const tool of a.exposed) {
    const other = b.byName.get(tool.exposedName);
    if (!other || JSON.stringify(other.definition) !== JSON.stringify(tool.definition)) return false;
  }
  return true;
}
