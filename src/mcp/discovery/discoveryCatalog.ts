import type { Tool } from '@modelcontextprotocol/client';
import { splitServerName } from '../nameTable.js';
import type { Router } from '../router.js';
import { LOCAL_HOST, type Scope } from '../scope.js';
import type { JsonObject } from '../upstream.js';
import { type SearchResult, type ServerSummary, type ToolEntry, ToolIndex } from './toolIndex.js';

/**
 * The router's tools, kept in a search index for discovery mode. It follows the router's
 * catalogue changes upstream by upstream: an upstream whose list did not change is not touched,
 * and an upstream that goes offline keeps its tools in the index, marked offline, so an agent
 * learns the tool exists but its host is away rather than finding nothing.
 */
export class DiscoveryCatalog {
  private readonly index = new ToolIndex();
  /** Per upstream, the tool table's version of it that its entries were built from. */
  private readonly builtFrom = new Map<string, number>();
  private unsubscribe?: () => void;

  /** The index is built on the first search: a master nobody uses in discovery mode pays nothing. */
  constructor(private readonly router: Router) {}

  private started(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.router.onCatalogChanged(() => this.refresh());
    this.refresh();
  }

  /** Brings the index up to date with the router; only upstreams whose exposed tools changed are reindexed. */
  refresh(): void {
    const table = this.router.toolTable();
    const present = new Set<string>();
    for (const upstream of this.router.upstreams()) {
      present.add(upstream.name);
      const online = upstream.status().state === 'connected';
      if (!online && this.index.hasUpstream(upstream.name)) {
        this.index.setOnline(upstream.name, false);
        continue;
      }
      const version = table.versionOf(upstream.name);
      if (this.index.hasUpstream(upstream.name) && this.builtFrom.get(upstream.name) === version) {
        this.index.setOnline(upstream.name, online);
        continue;
      }
      const entries = table
        .entriesOf(upstream.name)
        .map((item) => this.entryOf(item.upstream, item.exposedName, item.originalName, item.definition));
      this.index.upsertUpstream(upstream.name, entries, online);
      this.builtFrom.set(upstream.name, version);
    }
    for (const key of [...this.builtFrom.keys()]) {
      if (present.has(key)) continue;
      this.index.removeUpstream(key);
      this.builtFrom.delete(key);
    }
  }

  search(
    query: { query: string; host?: string; server?: string; limit: number },
    scope: Scope,
  ): SearchResult[] {
    this.started();
    return this.index.search({ ...query, filter: scopeFilter(scope) });
  }

  servers(scope: Scope): ServerSummary[] {
    this.started();
    return this.index.summary(scopeFilter(scope));
  }

  close(): void {
    this.unsubscribe?.();
  }

  private entryOf(upstream: string, name: string, originalName: string, tool: Tool): ToolEntry {
    const host = this.router.hostOf(upstream);
    // A slave's tools are `<server>_<tool>` on the slave, and server names have no `_`.
    const split = host === LOCAL_HOST ? undefined : splitServerName(originalName);
    return {
      name,
      host,
      server: split?.server ?? upstream,
      originalName: split?.name ?? originalName,
      ...(tool.title ? { title: tool.title } : {}),
      ...(tool.description ? { description: tool.description } : {}),
      inputSchema: (tool.inputSchema ?? { type: 'object' }) as JsonObject,
    };
  }
}

function scopeFilter(scope: Scope): ((name: string, host: string) => boolean) | undefined {
  return scope.isFull ? undefined : (name, host) => scope.allows('tool', name, host);
}
