import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';
import type { Logger } from '../log.js';
import { buildNameTable, EMPTY_NAME_TABLE, type NameTable, sameExposedTools } from './nameTable.js';
import type { ToolCallRequestOptions, ToolSource } from './toolSource.js';
import {
  toolError,
  type Upstream,
  type UpstreamStatus,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from './upstream.js';

export interface AggregatorSettings {
  maxToolNameLength: number;
  /** Default idle timeout of a call; progress restarts it. */
  callTimeoutMs: number;
  /** No call lives longer than this, progress or not. */
  callTimeoutCapMs: number;
  /** Bursts of tool changes (a reload, a slave reconnecting) become one notification. */
  listChangedDebounceMs: number;
}

export const DEFAULT_AGGREGATOR_SETTINGS: AggregatorSettings = {
  maxToolNameLength: 64,
  callTimeoutMs: 60_000,
  callTimeoutCapMs: 600_000,
  listChangedDebounceMs: 100,
};

interface Registration {
  upstream: Upstream;
  timeoutMs?: number;
  unsubscribe: () => void;
}

/**
 * The one tool namespace agents see. Upstreams come and go (configured servers, connected
 * slaves); the aggregator keeps the name table in step with them, routes each call through the
 * table, and tells agents when the visible set changes.
 */
export class Aggregator implements ToolSource {
  private readonly registrations = new Map<string, Registration>();
  private table: NameTable = EMPTY_NAME_TABLE;
  private readonly changeListeners = new Set<() => void>();
  private debounceTimer?: NodeJS.Timeout;
  private reportedRejections = new Set<string>();

  constructor(
    private readonly settings: AggregatorSettings,
    private readonly logger: Logger,
  ) {}

  add(upstream: Upstream, opts: { timeoutMs?: number } = {}): void {
    if (this.registrations.has(upstream.name)) {
      throw new Error(`an upstream named ${upstream.name} is already registered`);
    }
    const unsubscribe = upstream.subscribe((event) => {
      if (event === 'tools') this.rebuild();
    });
    this.registrations.set(upstream.name, { upstream, timeoutMs: opts.timeoutMs, unsubscribe });
    this.rebuild();
  }

  /** Removes an upstream from routing; it does not stop it. */
  remove(name: string): Upstream | undefined {
    const reg = this.registrations.get(name);
    if (!reg) return undefined;
    reg.unsubscribe();
    this.registrations.delete(name);
    this.rebuild();
    return reg.upstream;
  }

  get(name: string): Upstream | undefined {
    return this.registrations.get(name)?.upstream;
  }

  upstreams(): Upstream[] {
    return [...this.registrations.values()].map((r) => r.upstream);
  }

  statuses(): UpstreamStatus[] {
    return this.upstreams().map((u) => u.status());
  }

  nameTable(): NameTable {
    return this.table;
  }

  async listTools(): Promise<Tool[]> {
    return this.table.exposed.map((t) => t.definition);
  }

  onToolsChanged(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  async callTool(
    name: string,
    args: Record<string, unknown> | undefined,
    opts: ToolCallRequestOptions,
  ): Promise<CallToolResult> {
    const entry = this.table.byName.get(name);
    if (!entry) return this.unknownTool(name);
    const reg = this.registrations.get(entry.upstream);
    if (!reg) return toolError(`Tool ${name} is not available`);
    try {
      const forward = opts.onprogress;
      return await reg.upstream.callTool(entry.originalName, args, {
        signal: opts.signal,
        // Always ask the upstream for progress: it is what keeps a long call from timing out,
        // whether or not the agent wants to see it.
        onprogress: (update) => forward?.(update),
        timeoutMs: Math.min(reg.timeoutMs ?? this.settings.callTimeoutMs, this.settings.callTimeoutCapMs),
        maxTotalMs: this.settings.callTimeoutCapMs,
      });
    } catch (err) {
      if (err instanceof UpstreamUnavailableError) return toolError(err.message);
      if (err instanceof UpstreamTimeoutError) {
        return toolError(`Tool ${name} timed out (${err.message}); the call was cancelled upstream`);
      }
      throw err;
    }
  }

  private unknownTool(name: string): CallToolResult {
    // Only for the error message: routing never parses names, but a person deserves to hear
    // that the host is offline rather than that the tool does not exist.
    for (const { upstream } of this.registrations.values()) {
      if (name.startsWith(`${upstream.name}_`) && upstream.status().state !== 'connected') {
        return toolError(upstream.unavailableMessage());
      }
    }
    const rejected = this.table.rejected.find((r) => r.exposedName === name);
    if (rejected) {
      throw new ProtocolError(
        ProtocolErrorCode.InvalidParams,
        `Tool ${name} is not exposed: ${rejected.reason} (${rejected.detail})`,
      );
    }
    throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${name}`);
  }

  private rebuild(): void {
    const sources = [...this.registrations.values()]
      .map((r) => ({ upstream: r.upstream.name, tools: r.upstream.tools() }))
      .sort((a, b) => a.upstream.localeCompare(b.upstream));
    const next = buildNameTable(sources, this.settings.maxToolNameLength);
    this.reportRejections(next);
    const changed = !sameExposedTools(this.table, next);
    this.table = next;
    if (changed) this.scheduleListChanged();
  }

  private reportRejections(table: NameTable): void {
    const current = new Set<string>();
    for (const r of table.rejected) {
      const key = `${r.upstream}\u0000${r.originalName}\u0000${r.reason}`;
      current.add(key);
      if (!this.reportedRejections.has(key)) {
        this.logger.warn(
          {
            upstream: r.upstream,
            tool: r.originalName,
            exposedName: r.exposedName,
            reason: r.reason,
            detail: r.detail,
          },
          'tool not exposed',
        );
      }
    }
    this.reportedRejections = current;
  }

  private scheduleListChanged(): void {
    if (this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      for (const l of this.changeListeners) {
        try {
          l();
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'tools-changed listener failed');
        }
      }
    }, this.settings.listChangedDebounceMs);
  }

  close(): void {
    clearTimeout(this.debounceTimer);
    for (const reg of this.registrations.values()) reg.unsubscribe();
    this.registrations.clear();
  }
}
