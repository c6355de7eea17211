import { definitionFacts } from './definitionFacts.js';
import type { RejectedItem } from './nameTable.js';

/** What one upstream may put in one list (its tools, its prompts, or its resources). */
export interface UpstreamLimits {
  /** Entries; the rest are refused. */
  maxEntries: number;
  /** Serialized definition bytes; entries past the budget are refused. */
  maxBytes: number;
}

/** The MCP charset for tool and prompt names (the 2025-11-25 revision's SHOULD). */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Keeps one upstream's list within the limits, in the upstream's own order: a name outside the
 * MCP charset is refused, and once the entry count or the byte budget is used up the rest is
 * refused in one summary row. A paired slave is not trusted to be small: 60,000 tools
 * re-announced every 20 ms once stalled a master.
 */
export function withinLimits<T extends object>(
  upstream: string,
  kind: string,
  items: readonly T[],
  limits: UpstreamLimits,
  nameOf?: (item: T) => string,
): { kept: T[]; rejected: RejectedItem[] } {
  const kept: T[] = [];
  const rejected: RejectedItem[] = [];
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const name = nameOf?.(item);
    if (name !== undefined && !NAME_PATTERN.test(name)) {
      rejected.push({
        exposedName: name,
        upstream,
        originalName: name,
        reason: 'bad-name',
        detail: 'names may use only A-Z a-z 0-9 _ . - (1 to 128 characters)',
      });
      continue;
    }
    const size = definitionFacts(item).bytes;
    const overCount = kept.length >= limits.maxEntries;
    if (overCount || bytes + size > limits.maxBytes) {
      const rest = items.length - i;
      rejected.push({
        exposedName: `${upstream}/*`,
        upstream,
        originalName: `${rest} more ${kind}`,
        reason: overCount ? 'upstream-cap' : 'too-large',
        detail: overCount
          ? `${upstream} offers ${items.length} ${kind}; at most ${limits.maxEntries} per upstream are exposed`
          : `${upstream}'s ${kind} definitions pass ${limits.maxBytes} bytes; the rest are not exposed`,
      });
      break;
    }
    bytes += size;
    kept.push(item);
  }
  return { kept, rejected };
}
