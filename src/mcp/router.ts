import type {
  ClientCapabilities,
  LoggingLevel,
  LoggingMessageNotificationParams,
  Prompt,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  Tool,
} from '@modelcontextprotocol/client';
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';
import type { Context as TraceContext } from '@opentelemetry/api';
import type { Logger } from '../log.js';
import type { AgentIdentity } from './agentIdentity.js';
import {
  AGENT_META_KEY,
  approximateJsonBytes,
  type CallOutcome,
  type CallRecord,
  errorOutcome,
  errorText,
  type RecordedMethod,
  resultOutcome,
} from './callRecords.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { Exposure, type ServerExposure } from './exposure.js';
import {
  type ExposeName,
  LiveNameTable,
  type Named,
  type NameTable,
  prefixedName,
  type RejectedItem,
  splitServerName,
  type TableDelta,
} from './nameTable.js';
import { type ChangedUri, LiveResourceListing, type ResourceListing } from './resourceListing.js';
import { CALL_META_KEY, exposeUri, parseExposedUri, type RoutedUri } from './resourceUris.js';
import { type CallStep, RoutedCall } from './routedCall.js';
import { type EntryKind, LOCAL_HOST, Scope } from './scope.js';
import {
  type AgentRequest,
  CATALOG_KINDS,
  type CatalogKind,
  type JsonObject,
  type ProgressUpdate,
  toolError,
  type Upstream,
  type UpstreamCatalog,
  type UpstreamStatus,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from './upstream.js';
import { type UpstreamLimits, withinLimits } from './upstreamLimits.js';
import { exposeResultUris } from './uriRewrite.js';

export type { ResourceListing } from './resourceListing.js';

export interface RouterSettings {
  /** Longest exposed tool or prompt name; longer ones are refused, never truncated. */
  maxToolNameLength: number;
  /** Default idle timeout of a call; progress restarts it, waiting for the agent pauses it. */
  callTimeoutMs: number;
  /** No call lives longer than this, progress or not. */
  callTimeoutCapMs: number;
  /** Bursts of list changes (a reload, a slave reconnecting) become one notification. */
  listChangedDebounceMs: number;
  /**
   * Entries per page of Diane's own lists: small enough that the first page of a master with
   * thousands of slaves is quick to serialise, large enough that a usual list is one page.
   */
  listPageSize: number;
  /** How long a call waits for the agent to come back with answers to an input request. */
  inputTimeoutMs: number;
  /**
   * `prefixed`: names become `<upstream>_<name>` and URIs `diane://<upstream>/…` (master, slave).
   * `transparent`: one upstream whose names and URIs pass unchanged (the `diane mcp` bridge).
   */
  naming: 'prefixed' | 'transparent';
  /** What one upstream may put in each list; a transparent router (one trusted daemon) has none. */
  upstreamLimits: UpstreamLimits;
}

export const DEFAULT_ROUTER_SETTINGS: RouterSettings = {
  maxToolNameLength: 64,
  callTimeoutMs: 60_000,
  callTimeoutCapMs: 600_000,
  listChangedDebounceMs: 100,
  listPageSize: 1000,
  inputTimeoutMs: 600_000,
  naming: 'prefixed',
  upstreamLimits: { maxEntries: 2000, maxBytes: 4 * 1024 * 1024 },
};

/** The calls whose requests to the upstream can carry agent input. */
export type RoutedMethod = 'tools/call' | 'prompts/get' | 'resources/read';

export interface CallContext {
  /**
   * The agent's cancellation. The relay path leaves it out and cancels the returned call itself
   * (`RoutedCall.cancel`), which saves an AbortController per call.
   */
  signal?: AbortSignal;
  onprogress?: (update: ProgressUpdate) => void;
  /** What the agent declared it can answer (sampling, elicitation, roots). */
  capabilities?: ClientCapabilities;
  /** What the agent may use; default: everything. */
  scope?: Scope;
  /** Who is calling, for the audit trail (`onCallFinished`). */
  agent?: AgentIdentity;
  /** The trace context of the call's route span (mcp/tracing.ts). */
  trace?: TraceContext;
}

/** How the router reaches one connected agent session, for notifications. */
export interface AgentPeer {
  notify(method: string, params?: JsonObject): void;
}

/** One agent session's state in the router: its scope, log level and resource subscriptions. */
export interface AgentSession {
  readonly peer: AgentPeer;
  /** The agent's name, so that `setAgentScope` finds its sessions. */
  readonly agent?: string;
  /** Discovery mode: its tool list is the fixed meta-tools, so tool list changes are not its. */
  readonly fixedTools?: boolean;
  /** What the session may see and use; changed with `Router.setScope`. */
  readonly scope: Scope;
  logLevel?: LoggingLevel;
  readonly subscriptions: Set<string>;
}

/** The requests a server's exposure (`expose`/`hide`) can refuse. */
export type RefusableMethod =
  | 'tools/call'
  | 'prompts/get'
  | 'resources/read'
  | 'resources/subscribe'
  | 'completion/complete';

/**
 * A request for an entry that exists but was refused as if it did not: `hidden` by its server's
 * exposure (`expose`/`hide`, the host owner's consent), or outside the caller's `scope`. A name
 * that exists nowhere is not a refusal.
 */
export interface RefusedRequest {
  method: RefusableMethod;
  reason: 'hidden' | 'scope';
  kind: EntryKind;
  /** The name or Diane URI the caller used. */
  exposedName: string;
  /** The host of the entry (`local` for this machine's servers). */
  host: string;
  /** The upstream (on this machine: the configured server) that has the entry. */
  server: string;
  /** The server's own name or URI of the entry. */
  name: string;
  /** The caller's scope (the one that refused, for `scope`); `Scope.full()` for the owner. */
  scope: Scope;
  /** Who asked, when known: the agent, or on a slave what the master said. */
  agent?: string;
}

export type ListKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

interface Registration {
  upstream: Upstream;
  timeoutMs?: number;
  /** The owner's consent: what of the upstream is offered at all. */
  exposure: Exposure;
  unsubscribe: () => void;
  connected: boolean;
}

/** An entry that appeared, went or changed in a list, for the sessions that can see it. */
interface ListChange {
  kind: EntryKind;
  /** The exposed name or URI. */
  name: string;
  host: string;
}

/** A scope's filtered lists and served pages for one generation of the tables. */
interface ScopeView {
  generation: number;
  lists: Map<ListKind, readonly unknown[]>;
  /** `<list>:<offset>` → the page served from there. */
  pages: Map<string, CachedPage>;
  /** The upstreams with at least one entry in the view: their log messages reach the session. */
  upstreams?: ReadonlySet<string>;
}

export interface ListPage {
  items: unknown[];
  nextCursor?: string;
}

/** A page as the result of its list request: the items under the list's kind, and the cursor. */
export function listResult(kind: ListKind, page: ListPage): Record<string, unknown> {
  return page.nextCursor === undefined
    ? { [kind]: page.items }
    : { [kind]: page.items, nextCursor: page.nextCursor };
}

interface CachedPage extends ListPage {
  /** The page's result as JSON text, made when the relay path first asks for it. */
  json?: string;
}

/** The lists agents page through, per list an upstream announces a change of. */
const LISTS_OF: Record<CatalogKind, readonly ListKind[]> = {
  tools: ['tools'],
  prompts: ['prompts'],
  resources: ['resources', 'resourceTemplates'],
};

const LIST_CHANGED: Record<CatalogKind, string> = {
  tools: 'notifications/tools/list_changed',
  prompts: 'notifications/prompts/list_changed',
  resources: 'notifications/resources/list_changed',
};

const LOG_SEVERITY: Record<LoggingLevel, number> = {
  debug: 0,
  info: 1,
  notice: 2,
  warning: 3,
  error: 4,
  critical: 5,
  alert: 6,
  emergency: 7,
};

/** An agent that never set a level gets these and above. */
const DEFAULT_AGENT_LOG_LEVEL: LoggingLevel = 'info';

/**
 * The one namespace agents see, for every MCP capability. Upstreams come and go (configured
 * servers, connected slaves); the router keeps a name table for tools and prompts and a URI
 * scheme for resources in step with them, routes each request through them, tells agents when
 * a list changes, and carries what flows the other way: log messages, resource updates, and
 * the upstreams' own requests (sampling, elicitation, roots) to the agent whose call caused them.
 */
export class Router {
  private readonly registrations = new Map<string, Registration>();
  private readonly tools: LiveNameTable<Tool>;
  private readonly prompts: LiveNameTable<Prompt>;
  private readonly resources: LiveResourceListing;
  /** Each list's definitions as agents see them, unscoped; dropped when the list changes. */
  private readonly fullLists = new Map<ListKind, readonly unknown[]>();
  private readonly changeListeners = new Set<(kind: CatalogKind) => void>();
  private readonly debounceTimers = new Map<CatalogKind, NodeJS.Timeout>();
  /** What changed in each list since its last announcement. */
  private readonly pendingChanges = new Map<CatalogKind, ListChange[]>();
  private readonly catalogListeners = new Set<() => void>();
  private catalogTimer?: NodeJS.Timeout;
  private readonly refusedListeners = new Set<(event: RefusedRequest) => void>();
  private readonly callListeners = new Set<(record: CallRecord) => void>();
  private readonly agentRequestClaims = new Set<AgentRequestClaim>();
  /** The agent whose request is being routed right now (route() is synchronous). */
  private caller?: string;
  /** Upstream name → host; kept after a removal, so the entries it took away can still be judged. */
  private readonly hosts = new Map<string, string>();
  /** Bumped by every change of a list: the scopes' cached views are of one generation. */
  private generation = 0;
  private readonly views = new WeakMap<Scope, ScopeView>();
  private readonly inflight = new Map<string, Map<string, RoutedCall>>();
  private readonly parked = new Map<string, { call: RoutedCall; timer: NodeJS.Timeout }>();
  private readonly sessions = new Set<AgentSession>();
  /** `<upstream>\0<its uri>` → how many agent sessions subscribed to it. */
  private readonly upstreamSubscriptions = new Map<string, number>();
  private upstreamLogLevel?: LoggingLevel;
  private readonly exposeName: ExposeName;

  constructor(
    private readonly settings: RouterSettings,
    private readonly logger: Logger,
  ) {
    this.exposeName = settings.naming === 'transparent' ? (_upstream, name) => name : prefixedName;
    this.tools = new LiveNameTable(settings.maxToolNameLength, this.exposeName);
    this.prompts = new LiveNameTable(settings.maxToolNameLength, this.exposeName);
    this.resources = new LiveResourceListing(settings.naming === 'transparent');
  }

  /** `exposure`: what of the upstream is offered at all (default: everything). */
  add(upstream: Upstream, opts: { timeoutMs?: number; exposure?: Exposure } = {}): void {
    if (this.registrations.has(upstream.name)) {
      throw new Error(`an upstream named ${upstream.name} is already registered`);
    }
    if (this.settings.naming === 'transparent' && this.registrations.size > 0) {
      throw new Error('a transparent router serves exactly one upstream');
    }
    const unsubscribe = upstream.subscribe((event) => {
      switch (event.type) {
        case 'catalog':
          return this.update(event.kind, upstream.name);
        case 'state':
          return this.onStateChange(upstream.name);
        case 'log':
          return this.deliverLog(upstream.name, event.params);
        case 'resource-updated':
          return this.deliverResourceUpdate(upstream.name, event.uri);
      }
    });
    upstream.agentRequests = (request, signal) => this.routeAgentRequest(upstream.name, request, signal);
    this.hosts.set(upstream.name, upstream.host ?? LOCAL_HOST);
    this.registrations.set(upstream.name, {
      upstream,
      timeoutMs: opts.timeoutMs,
      exposure: opts.exposure ?? Exposure.all(),
      unsubscribe,
      connected: false,
    });
    this.onStateChange(upstream.name);
    for (const kind of CATALOG_KINDS) this.update(kind, upstream.name);
  }

  /** Removes an upstream from routing; it does not stop it. */
  remove(name: string): Upstream | undefined {
    const reg = this.registrations.get(name);
    if (!reg) return undefined;
    reg.unsubscribe();
    reg.upstream.agentRequests = undefined;
    this.registrations.delete(name);
    for (const kind of CATALOG_KINDS) this.update(kind, name);
    return reg.upstream;
  }

  get(name: string): Upstream | undefined {
    return this.registrations.get(name)?.upstream;
  }

  /** Applies an upstream's new exposure at once (a reload), for every session. */
  setExposure(name: string, exposure: Exposure): void {
    const reg = this.registrations.get(name);
    if (!reg || reg.exposure.sameAs(exposure)) return;
    reg.exposure = exposure;
    this.logger.info({ server: name, expose: exposure.expose, hide: exposure.hide }, 'exposure changed');
    for (const kind of CATALOG_KINDS) this.update(kind, name);
  }

  /** Each upstream's entries, by its own names, split into exposed and hidden by its exposure. */
  exposureSummary(): ServerExposure[] {
    return this.sortedRegistrations().map((r) => r.exposure.summarize(r.upstream.name, r.upstream.catalog()));
  }

  /** The host an upstream's entries belong to, for `host:` scope patterns. */
  hostOf(upstream: string): string {
    return this.hosts.get(upstream) ?? LOCAL_HOST;
  }

  upstreams(): Upstream[] {
    return [...this.registrations.values()].map((r) => r.upstream);
  }

  statuses(): UpstreamStatus[] {
    return this.upstreams().map((u) => u.status());
  }

  toolTable(): LiveNameTable<Tool> {
    return this.tools;
  }

  promptTable(): LiveNameTable<Prompt> {
    return this.prompts;
  }

  resourceListing(): ResourceListing {
    return this.resources;
  }

  /**
   * Called (debounced) when a list changed, whoever can see the change. Agent sessions do not
   * need it: each is told by the router, and only of changes within its scope. It serves the
   * fronts without a session (2026-07-28 `subscriptions/listen` streams).
   */
  onListChanged(listener: (kind: CatalogKind) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Called (debounced) after any upstream's catalog or exposure changed, even when no agent can
   * see the difference (only hidden entries changed): `diane slave status` keeps its summary
   * of what is exposed with it.
   */
  onCatalogChanged(listener: () => void): () => void {
    this.catalogListeners.add(listener);
    return () => this.catalogListeners.delete(listener);
  }

  /**
   * Called for every request refused for an entry that exists: hidden by its server's exposure
   * (also logged as a warning, with the server's own names only), or outside the caller's scope.
   */
  /**
   * Every finished call, and every server request relayed to an agent, for the audit trail.
   * Listeners run on the call path: they must only queue.
   */
  onCallFinished(listener: (record: CallRecord) => void): () => void {
    this.callListeners.add(listener);
    return () => this.callListeners.delete(listener);
  }

  private recordCall(record: CallRecord): void {
    for (const listener of this.callListeners) {
      try {
        listener(record);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'call listener failed');
      }
    }
  }

  onRefused(listener: (event: RefusedRequest) => void): () => void {
    this.refusedListeners.add(listener);
    return () => this.refusedListeners.delete(listener);
  }

  /** Calls in flight (parked ones included) per upstream, read by the metrics on each scrape. */
  callsInFlight(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [upstream, calls] of this.inflight) if (calls.size > 0) counts.set(upstream, calls.size);
    return counts;
  }

  /**
   * One page of a list as `scope` sees it, behind an opaque cursor. The offsets count within
   * the scope's view, so paging is as consistent as for the whole list.
   */
  list(kind: ListKind, cursor: string | undefined, scope: Scope = Scope.full()): ListPage {
    const page = this.cachedPage(kind, cursor, scope);
    // The front puts the items in its own result object; the cached page itself is never handed out.
    return { items: page.items, nextCursor: page.nextCursor };
  }

  /**
   * The same page as `list`, as the JSON text of its result (`{"tools":[…],"nextCursor":…}`),
   * serialised once per page, scope and generation: the relay path writes it as it is, where
   * the SDK path would check and serialise a thousand definitions for every request.
   */
  listJson(kind: ListKind, cursor: string | undefined, scope: Scope = Scope.full()): string {
    const page = this.cachedPage(kind, cursor, scope);
    page.json ??= JSON.stringify(listResult(kind, page));
    return page.json;
  }

  private cachedPage(kind: ListKind, cursor: string | undefined, scope: Scope): CachedPage {
    const offset = cursor === undefined ? 0 : decodeCursor(cursor, kind);
    const view = this.viewOf(scope);
    const key = `${kind}:${offset}`;
    let page = view.pages.get(key);
    if (!page) {
      const all = this.visible(kind, scope);
      const end = offset + this.settings.listPageSize;
      page = {
        items: all.slice(offset, end),
        nextCursor: end < all.length ? encodeCursor(kind, end) : undefined,
      };
      view.pages.set(key, page);
    }
    return page;
  }

  private fullList(kind: ListKind): readonly unknown[] {
    let list = this.fullLists.get(kind);
    if (!list) {
      list =
        kind === 'tools'
          ? this.tools.exposed.map((t) => t.definition)
          : kind === 'prompts'
            ? this.prompts.exposed.map((p) => p.definition)
            : kind === 'resources'
              ? this.resources.resources
              : this.resources.resourceTemplates;
      this.fullLists.set(kind, list);
    }
    return list;
  }

  /**
   * A list as a scope sees it, unpaged (also `diane agents show`); filtered once per scope and
   * generation of the tables.
   */
  visible(kind: ListKind, scope: Scope): readonly unknown[] {
    if (scope.isFull) return this.fullList(kind);
    const view = this.viewOf(scope);
    let list = view.lists.get(kind);
    if (!list) {
      list = this.filtered(kind, scope);
      view.lists.set(kind, list);
    }
    return list;
  }

  private viewOf(scope: Scope): ScopeView {
    let view = this.views.get(scope);
    if (!view || view.generation !== this.generation) {
      view = { generation: this.generation, lists: new Map(), pages: new Map() };
      this.views.set(scope, view);
    }
    return view;
  }

  private filtered(kind: ListKind, scope: Scope): unknown[] {
    const { owners } = this.resources;
    switch (kind) {
      case 'tools':
        return this.tools.exposed
          .filter((e) => scope.allows('tool', e.exposedName, this.hostOf(e.upstream)))
          .map((e) => e.definition);
      case 'prompts':
        return this.prompts.exposed
          .filter((e) => scope.allows('prompt', e.exposedName, this.hostOf(e.upstream)))
          .map((e) => e.definition);
      case 'resources':
        return this.resources.resources.filter((r) =>
          scope.allows('resource', r.uri, this.hostOf(owners.get(r.uri) ?? '')),
        );
      case 'resourceTemplates':
        return this.resources.resourceTemplates.filter((t) =>
          scope.allows('resource', t.uriTemplate, this.hostOf(owners.get(t.uriTemplate) ?? '')),
        );
    }
  }

  /** Whether a scope sees at least one entry of an upstream: then its log messages reach it. */
  private seesUpstream(scope: Scope, upstream: string): boolean {
    if (scope.isFull) return true;
    const view = this.viewOf(scope);
    if (!view.upstreams) {
      const seen = new Set<string>();
      for (const [kind, table] of [
        ['tool', this.tools],
        ['prompt', this.prompts],
      ] as const) {
        for (const e of table.exposed) {
          if (scope.allows(kind, e.exposedName, this.hostOf(e.upstream))) seen.add(e.upstream);
        }
      }
      for (const [uri, owner] of this.resources.owners) {
        if (scope.allows('resource', uri, this.hostOf(owner))) seen.add(owner);
      }
      view.upstreams = seen;
    }
    return view.upstreams.has(upstream);
  }

  // ---- calls: tools/call, prompts/get, resources/read ----

  /**
   * Starts a call on the upstream the request names. Throws a ProtocolError for a name or URI
   * that routes nowhere; tool calls to an unavailable upstream finish as tool errors.
   */
  startCall(method: RoutedMethod, params: JsonObject, ctx: CallContext): RoutedCall {
    const incomingMeta = params._meta as JsonObject | undefined;
    const peerCallId =
      typeof incomingMeta?.[CALL_META_KEY] === 'string' ? incomingMeta[CALL_META_KEY] : undefined;
    const peerAgent =
      typeof incomingMeta?.[AGENT_META_KEY] === 'string' ? incomingMeta[AGENT_META_KEY] : undefined;
    let routed: { upstream: string; forwarded: JsonObject };
    // Refusals happen synchronously inside route(): they are told whose request it was.
    this.caller = ctx.agent?.name ?? peerAgent;
    try {
      routed = this.route(method, params, ctx.scope ?? Scope.full());
    } catch (err) {
      if (!(err instanceof UnavailableToolError)) throw err;
      return this.unavailableCall(params, ctx, err, peerCallId, peerAgent);
    } finally {
      this.caller = undefined;
    }
    const { upstream, forwarded } = routed;
    const reg = this.registrations.get(upstream)!;
    const call = new RoutedCall(upstream, ctx.capabilities, peerCallId);
    const audited =
      this.callListeners.size > 0
        ? this.auditContext(method, params, routed, ctx, call, peerAgent)
        : undefined;
    if (ctx.signal) call.bind(ctx.signal, ctx.onprogress);
    else call.onProgress(ctx.onprogress);
    const idleMs = Math.min(reg.timeoutMs ?? this.settings.callTimeoutMs, this.settings.callTimeoutCapMs);
    call.armIdleTimeout(idleMs);
    this.track(call);
    reg.upstream
      .request(method, forwarded, {
        signal: call.abort.signal,
        // Always ask the upstream for progress: it is what keeps a long call from timing out,
        // whether or not the agent wants to see it.
        onprogress: (update) => call.progress(update),
        timeoutMs: this.settings.callTimeoutCapMs,
        maxTotalMs: this.settings.callTimeoutCapMs,
        deadline: call.startedAt + this.settings.callTimeoutCapMs,
        ...(ctx.trace ? { trace: ctx.trace } : {}),
        meta: {
          [CALL_META_KEY]: call.id,
          ...(ctx.agent ? { [AGENT_META_KEY]: ctx.agent.name } : {}),
        },
      })
      .then(
        (result) => {
          if (audited)
            this.recordCall({
              ...audited(),
              outcome: resultOutcome(method, result),
              bytesOut: approximateJsonBytes(result),
            });
          call.finish({ kind: 'result', result: this.exposeResult(method, upstream, result) });
        },
        (err) => {
          const step = this.failure(method, params, call, err);
          if (audited) {
            const timedOut = call.timedOut || err instanceof UpstreamTimeoutError;
            // An unavailable upstream's call ends as a tool error result; it ran nothing.
            const outcome =
              timedOut || step.kind !== 'result'
                ? errorOutcome(timedOut, call.abort.signal.aborted)
                : 'tool_error';
            this.recordCall({ ...audited(), outcome, error: errorText(err), bytesOut: 0 });
          }
          call.finish(step);
        },
      )
      .finally(() => this.untrack(call));
    return call;
  }

  /**
   * A tool of an upstream that is offline (its entries are out of the table): a tool error at
   * once, recorded like a call whose upstream failed, so that the audit trail and the metrics
   * show the calls an outage turned away.
   */
  private unavailableCall(
    params: JsonObject,
    ctx: CallContext,
    err: UnavailableToolError,
    peerCallId: string | undefined,
    peerAgent: string | undefined,
  ): RoutedCall {
    const call = new RoutedCall(err.upstream, ctx.capabilities, peerCallId);
    if (this.callListeners.size > 0) {
      const name = String(params.name);
      const routed = {
        upstream: err.upstream,
        forwarded: { ...params, name: name.slice(err.upstream.length + 1) },
      };
      const audited = this.auditContext('tools/call', params, routed, ctx, call, peerAgent);
      this.recordCall({ ...audited(), outcome: 'tool_error', error: err.message, bytesOut: 0 });
    }
    call.finish({ kind: 'result', result: toolError(err.message) });
    return call;
  }

  /** What the audit record of a call will say, minus how it ended. */
  private auditContext(
    method: RoutedMethod,
    params: JsonObject,
    routed: { upstream: string; forwarded: JsonObject },
    ctx: CallContext,
    call: RoutedCall,
    peerAgent: string | undefined,
  ): () => Omit<CallRecord, 'outcome' | 'bytesOut'> {
    const exposedName = String(method === 'resources/read' ? params.uri : params.name);
    const originalName = String(method === 'resources/read' ? routed.forwarded.uri : routed.forwarded.name);
    const args = method === 'resources/read' ? undefined : params.arguments;
    const host = this.hostOf(routed.upstream);
    // On a slave's entries, the server and the server's own name (`<server>_<name>` there).
    const onSlave =
      host === LOCAL_HOST || method === 'resources/read' ? undefined : splitServerName(originalName);
    const base = {
      method,
      agent: ctx.agent?.name,
      peerAgent,
      exposedName,
      host,
      server: onSlave?.server ?? routed.upstream,
      originalName: onSlave?.name ?? originalName,
      startedAt: call.startedAt,
      bytesIn: args === undefined ? 0 : approximateJsonBytes(args),
      callId: call.id,
      peerCallId: call.peerCallId,
      ...(ctx.agent?.recordArguments && args !== undefined ? { arguments: args } : {}),
    };
    return () => ({ ...base, durationMs: Date.now() - call.startedAt });
  }

  /**
   * A tool call from a caller that cannot answer questions (the admin CLI): it declares no
   * capabilities, so no upstream request is ever routed to it.
   */
  async callTool(name: string, args: JsonObject | undefined, signal: AbortSignal): Promise<JsonObject> {
    const params = args === undefined ? { name } : { name, arguments: args };
    const step = await this.startCall('tools/call', params, { signal }).next();
    if (step.kind === 'result') return step.result;
    if (step.kind === 'error') throw step.error;
    throw new Error('unreachable: a call without capabilities was asked for input');
  }

  /** A call whose agent is expected back with answers (`requestState`); removed once taken. */
  resumeCall(id: string): RoutedCall | undefined {
    const parked = this.parked.get(id);
    if (!parked) return undefined;
    clearTimeout(parked.timer);
    this.parked.delete(id);
    return parked.call;
  }

  /** Keeps a call that handed input requests to its agent until the agent comes back. */
  private park(call: RoutedCall, keepSignal: boolean): void {
    if (!keepSignal) call.unbind();
    const timer = setTimeout(() => {
      this.parked.delete(call.id);
      call.cancel('the agent did not come back with answers in time');
    }, this.settings.inputTimeoutMs);
    timer.unref();
    this.parked.set(call.id, { call, timer });
  }

  /** Runs a call to its end as the front sees it: a result, an error, or input for the agent. */
  async step(call: RoutedCall, opts: { keepSignal: boolean }): Promise<CallStep> {
    const step = await call.next();
    if (step.kind === 'input') this.park(call, opts.keepSignal);
    return step;
  }

  private route(
    method: RoutedMethod,
    params: JsonObject,
    scope: Scope,
  ): { upstream: string; forwarded: JsonObject } {
    const forwarded = withoutDianeMeta(params);
    if (method === 'tools/call' || method === 'prompts/get') {
      const name = String(params.name);
      const entry = this.namedEntry(method === 'tools/call' ? 'tool' : 'prompt', name, scope, method);
      return { upstream: entry.upstream, forwarded: { ...forwarded, name: entry.originalName } };
    }
    const routed = this.routeUri(String(params.uri), scope, method);
    return { upstream: routed.upstream, forwarded: { ...forwarded, uri: routed.originalUri } };
  }

  /**
   * The tool or prompt an agent names, if it exists and is in the agent's scope; anything else
   * fails the one way an unknown name fails, so that a scope or a hidden entry cannot be told
   * apart from a name that routes nowhere.
   */
  private namedEntry(
    what: 'tool' | 'prompt',
    name: string,
    scope: Scope,
    method: RefusableMethod,
  ): { upstream: string; originalName: string } {
    const table: NameTable<Named> = what === 'tool' ? this.tools : this.prompts;
    const entry = table.byName.get(name);
    if (entry) {
      const host = this.hostOf(entry.upstream);
      if (scope.allows(what, name, host)) return entry;
      this.refused({
        method,
        reason: 'scope',
        kind: what,
        exposedName: name,
        host,
        server: entry.upstream,
        name: entry.originalName,
        scope,
      });
    } else {
      this.refuseIfHidden(method, what, name, scope);
    }
    return this.unknownName(what, name, table, scope);
  }

  /** An agent's URI split into its upstream and that upstream's own URI; no checks beyond that. */
  private parseUri(uri: string): RoutedUri | undefined {
    const routed =
      this.settings.naming === 'transparent'
        ? { upstream: this.registrations.keys().next().value ?? '', originalUri: uri }
        : parseExposedUri(uri);
    return routed && this.registrations.has(routed.upstream) ? routed : undefined;
  }

  /**
   * Where an agent's URI goes, if its upstream exists, exposes it, and the agent's scope allows
   * it; every refusal is the same "Unknown resource" error.
   */
  private routeUri(uri: string, scope: Scope, method: RefusableMethod): RoutedUri {
    const routed = this.parseUri(uri);
    if (!routed) throw unknownResource(uri);
    const host = this.hostOf(routed.upstream);
    const refusal = { method, kind: 'resource', exposedName: uri, host, server: routed.upstream } as const;
    if (!this.registrations.get(routed.upstream)!.exposure.allows('resource', routed.originalUri)) {
      this.refused({ ...refusal, reason: 'hidden', name: routed.originalUri, scope });
      throw unknownResource(uri);
    }
    if (!scope.allows('resource', uri, host)) {
      this.refused({ ...refusal, reason: 'scope', name: routed.originalUri, scope });
      throw unknownResource(uri);
    }
    return routed;
  }

  /** A name that is not in the table: if an upstream has it but hides it, that is a refusal. */
  private refuseIfHidden(
    method: RefusableMethod,
    kind: 'tool' | 'prompt',
    exposedName: string,
    scope: Scope,
  ): void {
    for (const reg of this.registrations.values()) {
      if (reg.exposure.isAll) continue;
      const catalog = reg.upstream.catalog();
      const items: readonly Named[] = kind === 'tool' ? catalog.tools : catalog.prompts;
      for (const item of items) {
        if (this.exposeName(reg.upstream.name, item.name) !== exposedName) continue;
        if (!reg.exposure.allows(kind, item.name)) {
          const server = reg.upstream.name;
          const host = this.hostOf(server);
          this.refused({ method, reason: 'hidden', kind, exposedName, host, server, name: item.name, scope });
          return;
        }
      }
    }
  }

  private refused(event: RefusedRequest): void {
    if (event.reason === 'hidden') {
      this.logger.warn(
        { method: event.method, server: event.server, kind: event.kind, name: event.name },
        'refused a request for an entry that mcp-servers.json does not expose (expose/hide)',
      );
    } else {
      this.logger.debug(
        { method: event.method, exposedName: event.exposedName },
        "refused a request outside the agent's scope",
      );
    }
    const told = this.caller === undefined ? event : { ...event, agent: this.caller };
    for (const listener of this.refusedListeners) {
      try {
        listener(told);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'refusal listener failed');
      }
    }
  }

  /**
   * Only for the error message: routing never parses names, but a person deserves to hear that
   * the host is offline rather than that the tool does not exist. Hints are given only about
   * what the agent's scope could see, so an out-of-scope entry reads as unknown.
   */
  private unknownName(
    what: 'tool' | 'prompt',
    name: string,
    table: NameTable<{ name: string }>,
    scope: Scope,
  ): never {
    for (const { upstream } of this.registrations.values()) {
      if (
        name.startsWith(`${upstream.name}_`) &&
        upstream.status().state !== 'connected' &&
        scope.allows(what, name, this.hostOf(upstream.name))
      ) {
        if (what === 'tool') throw new UnavailableToolError(upstream.name, upstream.unavailableMessage());
        throw new ProtocolError(ProtocolErrorCode.InvalidParams, upstream.unavailableMessage());
      }
    }
    const rejected = table.rejected.find(
      (r) => r.exposedName === name && scope.allows(what, name, this.hostOf(r.upstream)),
    );
    if (rejected) {
      throw new ProtocolError(
        ProtocolErrorCode.InvalidParams,
        `${capitalize(what)} ${name} is not exposed: ${rejected.reason} (${rejected.detail})`,
      );
    }
    throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown ${what}: ${name}`);
  }

  private exposeResult(method: RoutedMethod, upstream: string, result: JsonObject): JsonObject {
    return this.settings.naming === 'transparent' ? result : exposeResultUris(method, upstream, result);
  }

  private failure(method: RoutedMethod, params: JsonObject, call: RoutedCall, err: unknown): CallStep {
    let message: string | undefined;
    if (call.timedOut || err instanceof UpstreamTimeoutError) {
      const what = method === 'tools/call' ? `Tool ${String(params.name)}` : `${method} of ${call.upstream}`;
      message = `${what} timed out; the call was cancelled upstream`;
    } else if (err instanceof UpstreamUnavailableError) {
      message = err.message;
    }
    if (message === undefined) return { kind: 'error', error: err };
    if (method === 'tools/call') return { kind: 'result', result: toolError(message) };
    return { kind: 'error', error: new ProtocolError(ProtocolErrorCode.InternalError, message) };
  }

  private track(call: RoutedCall): void {
    const calls = this.inflight.get(call.upstream) ?? new Map<string, RoutedCall>();
    this.inflight.set(call.upstream, calls);
    calls.set(call.id, call);
  }

  private untrack(call: RoutedCall): void {
    this.inflight.get(call.upstream)?.delete(call.id);
    const parked = this.parked.get(call.id);
    if (parked) {
      clearTimeout(parked.timer);
      this.parked.delete(call.id);
    }
  }

  /**
   * An upstream asks its client for sampling, elicitation or roots. It goes to the agent whose
   * call caused it: the call named by a Diane peer's correlation id when there is one, otherwise
   * the most recently started call in flight on that upstream whose agent declared the
   * capability. An agent with no call in flight there is never asked.
   */
  routeAgentRequest(upstream: string, request: AgentRequest, signal: AbortSignal): Promise<JsonObject> {
    for (const claim of this.agentRequestClaims) {
      const claimed = claim(upstream, request, signal);
      if (claimed) return claimed;
    }
    const calls = this.inflight.get(upstream);
    const named = (request.params._meta as JsonObject | undefined)?.[CALL_META_KEY];
    let target = typeof named === 'string' ? calls?.get(named) : undefined;
    if (target && !canAnswer(target.capabilities, request)) target = undefined;
    if (!target && calls) {
      for (const call of calls.values()) {
        if (call.finished || !canAnswer(call.capabilities, request)) continue;
        if (!target || call.startedAt >= target.startedAt) target = call;
      }
    }
    if (!target) {
      return Promise.reject(
        new ProtocolError(
          ProtocolErrorCode.InvalidRequest,
          `${request.method}: no agent that supports it has a call in flight on ${upstream}`,
        ),
      );
    }
    if (this.callListeners.size === 0) return target.ask(request, signal);
    const startedAt = Date.now();
    const asking = target;
    const record = (outcome: CallOutcome, bytesOut: number, error?: string) =>
      this.recordCall({
        method: request.method as RecordedMethod,
        agent: asking.agent,
        exposedName: request.method,
        host: this.hostOf(upstream),
        server: upstream,
        originalName: request.method,
        startedAt,
        durationMs: Date.now() - startedAt,
        outcome,
        ...(error === undefined ? {} : { error }),
        bytesIn: approximateJsonBytes(request.params),
        bytesOut,
        callId: asking.id,
      });
    return target.ask(request, signal).then(
      (answer) => {
        record('ok', approximateJsonBytes(answer));
        return answer;
      },
      (err) => {
        record(signal.aborted ? 'cancelled' : 'protocol_error', 0, errorText(err));
        throw err;
      },
    );
  }

  /**
   * Lets another router's calls take an upstream's requests to agents first: a call forwarded
   * from another master over the bus runs on the upstream without a call of this router, and
   * its questions go back to that master (bus/busCallServer.ts). A claim returns `undefined`
   * for requests that are not its own.
   */
  claimAgentRequests(claim: AgentRequestClaim): () => void {
    this.agentRequestClaims.add(claim);
    return () => this.agentRequestClaims.delete(claim);
  }

  // ---- completion ----

  async complete(params: JsonObject, signal: AbortSignal, scope: Scope = Scope.full()): Promise<JsonObject> {
    const ref = (params.ref ?? {}) as JsonObject;
    let upstream: string;
    let forwardedRef: JsonObject;
    if (ref.type === 'ref/prompt') {
      const entry = this.namedEntry('prompt', String(ref.name), scope, 'completion/complete');
      upstream = entry.upstream;
      forwardedRef = { ...ref, name: entry.originalName };
    } else if (ref.type === 'ref/resource') {
      const routed = this.routeUri(String(ref.uri), scope, 'completion/complete');
      upstream = routed.upstream;
      forwardedRef = { ...ref, uri: routed.originalUri };
    } else {
      throw new ProtocolError(
        ProtocolErrorCode.InvalidParams,
        `Unknown completion reference type: ${String(ref.type)}`,
      );
    }
    return this.forward(
      upstream,
      'completion/complete',
      { ...withoutDianeMeta(params), ref: forwardedRef },
      signal,
    );
  }

  private async forward(
    upstream: string,
    method: 'completion/complete' | 'resources/subscribe' | 'resources/unsubscribe' | 'logging/setLevel',
    params: JsonObject,
    signal: AbortSignal,
  ): Promise<JsonObject> {
    const reg = this.registrations.get(upstream);
    if (!reg) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown upstream: ${upstream}`);
    try {
      return await reg.upstream.request(method, params, {
        signal,
        timeoutMs: this.settings.callTimeoutMs,
        maxTotalMs: this.settings.callTimeoutCapMs,
      });
    } catch (err) {
      if (err instanceof UpstreamUnavailableError || err instanceof UpstreamTimeoutError) {
        throw new ProtocolError(ProtocolErrorCode.InternalError, err.message);
      }
      throw err;
    }
  }

  // ---- agent sessions: log levels and resource subscriptions ----

  /** A connected agent: it is told of list changes within `scope`, log messages, resource updates. */
  openSession(
    peer: AgentPeer,
    scope: Scope = Scope.full(),
    agent?: string,
    fixedTools = false,
  ): AgentSession {
    const session: AgentSession = { peer, scope, agent, fixedTools, subscriptions: new Set() };
    this.sessions.add(session);
    return session;
  }

  /**
   * Gives a live session another scope, at once: its next lists and calls use it, its
   * subscriptions to resources outside it end, and it is told that every list changed.
   */
  setScope(session: AgentSession, scope: Scope): void {
    (session as { scope: Scope }).scope = scope;
    if (!this.sessions.has(session)) return;
    for (const uri of [...session.subscriptions]) {
      const routed = this.parseUri(uri);
      if (!routed || scope.allows('resource', uri, this.hostOf(routed.upstream))) continue;
      session.subscriptions.delete(uri);
      this.releaseSubscription(uri);
    }
    for (const kind of CATALOG_KINDS) {
      if (!(kind === 'tools' && session.fixedTools)) this.tell(session, LIST_CHANGED[kind]);
    }
  }

  /** Gives every live session of an agent another scope (its scope was changed by the admin). */
  setAgentScope(agent: string, scope: Scope): void {
    for (const session of [...this.sessions]) if (session.agent === agent) this.setScope(session, scope);
  }

  private tell(session: AgentSession, method: string, params?: JsonObject): void {
    try {
      session.peer.notify(method, params);
    } catch (err) {
      this.logger.debug({ err: (err as Error).message, method }, 'could not notify an agent session');
    }
  }

  closeSession(session: AgentSession): void {
    if (!this.sessions.delete(session)) return;
    for (const uri of session.subscriptions) this.releaseSubscription(uri);
    session.subscriptions.clear();
    if (session.logLevel) this.applyUpstreamLogLevel();
  }

  setLogLevel(session: AgentSession, level: LoggingLevel): void {
    session.logLevel = level;
    this.applyUpstreamLogLevel();
  }

  async subscribeResource(session: AgentSession, uri: string, signal: AbortSignal): Promise<void> {
    if (session.subscriptions.has(uri)) return;
    const routed = this.routeUri(uri, session.scope, 'resources/subscribe');
    const key = subscriptionKey(routed);
    const count = this.upstreamSubscriptions.get(key) ?? 0;
    if (count === 0) {
      const reg = this.registrations.get(routed.upstream)!;
      if (!reg.upstream.serverCapabilities()?.resources?.subscribe && reg.connected) {
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `${routed.upstream} does not support resource subscriptions`,
        );
      }
      // An offline upstream is subscribed to when it connects.
      if (reg.connected)
        await this.forward(routed.upstream, 'resources/subscribe', { uri: routed.originalUri }, signal);
    }
    this.upstreamSubscriptions.set(key, (this.upstreamSubscriptions.get(key) ?? 0) + 1);
    session.subscriptions.add(uri);
  }

  async unsubscribeResource(session: AgentSession, uri: string): Promise<void> {
    if (!session.subscriptions.delete(uri)) return;
    this.releaseSubscription(uri);
  }

  private releaseSubscription(uri: string): void {
    const routed = this.parseUri(uri);
    if (!routed) return;
    const key = subscriptionKey(routed);
    const count = (this.upstreamSubscriptions.get(key) ?? 1) - 1;
    if (count > 0) {
      this.upstreamSubscriptions.set(key, count);
      return;
    }
    this.upstreamSubscriptions.delete(key);
    if (this.registrations.get(routed.upstream)?.connected) {
      this.forward(
        routed.upstream,
        'resources/unsubscribe',
        { uri: routed.originalUri },
        AbortSignal.timeout(30_000),
      ).catch((err) => this.logger.debug({ err: (err as Error).message, uri }, 'unsubscribe failed'));
    }
  }

  /** The agents' roots changed: every upstream that asks for roots is told. */
  rootsChanged(): void {
    for (const { upstream } of this.registrations.values()) upstream.notifyRootsChanged?.();
  }

  private deliverLog(upstream: string, params: LoggingMessageNotificationParams): void {
    const logger =
      this.settings.naming === 'transparent'
        ? params.logger
        : params.logger
          ? `${upstream}/${params.logger}`
          : upstream;
    const message = { ...params, ...(logger === undefined ? {} : { logger }) } as JsonObject;
    const severity = LOG_SEVERITY[params.level] ?? 0;
    for (const session of this.sessions) {
      if (
        severity >= LOG_SEVERITY[session.logLevel ?? DEFAULT_AGENT_LOG_LEVEL] &&
        this.seesUpstream(session.scope, upstream)
      ) {
        this.tell(session, 'notifications/message', message);
      }
    }
  }

  private deliverResourceUpdate(upstream: string, uri: string): void {
    if (this.registrations.get(upstream)?.exposure.allows('resource', uri) === false) return;
    const exposed = this.settings.naming === 'transparent' ? uri : exposeUri(upstream, uri);
    if (exposed === undefined) return;
    const host = this.hostOf(upstream);
    for (const session of this.sessions) {
      if (session.subscriptions.has(exposed) && session.scope.allows('resource', exposed, host))
        this.tell(session, 'notifications/resources/updated', { uri: exposed });
    }
  }

  /**
   * Upstreams log at the most verbose level any agent asked for; each agent's own level is then
   * applied here, so one agent's `debug` never floods another.
   */
  private applyUpstreamLogLevel(): void {
    // Until some agent asks for a level, upstreams keep their own default.
    const anyAsked = [...this.sessions].some((s) => s.logLevel !== undefined);
    if (!anyAsked && this.upstreamLogLevel === undefined) return;
    let level: LoggingLevel = DEFAULT_AGENT_LOG_LEVEL;
    let first = true;
    for (const s of this.sessions) {
      const wanted = s.logLevel ?? DEFAULT_AGENT_LOG_LEVEL;
      if (first || LOG_SEVERITY[wanted] < LOG_SEVERITY[level]) level = wanted;
      first = false;
    }
    if (level === this.upstreamLogLevel) return;
    this.upstreamLogLevel = level;
    for (const name of this.registrations.keys()) this.sendLogLevel(name);
  }

  private sendLogLevel(upstream: string): void {
    const reg = this.registrations.get(upstream);
    const level = this.upstreamLogLevel;
    if (!level || !reg?.connected || !reg.upstream.serverCapabilities()?.logging) return;
    this.forward(upstream, 'logging/setLevel', { level }, AbortSignal.timeout(30_000)).catch((err) =>
      this.logger.debug({ upstream, err: (err as Error).message }, 'could not set the log level'),
    );
  }

  /** An upstream that (re)connects gets the agents' log level and subscriptions again. */
  private onStateChange(name: string): void {
    const reg = this.registrations.get(name);
    if (!reg) return;
    const connected = reg.upstream.status().state === 'connected';
    if (connected === reg.connected) return;
    reg.connected = connected;
    if (!connected) return;
    this.sendLogLevel(name);
    for (const key of this.upstreamSubscriptions.keys()) {
      const [upstream, uri] = key.split('\u0000') as [string, string];
      if (upstream !== name) continue;
      this.forward(name, 'resources/subscribe', { uri }, AbortSignal.timeout(30_000)).catch((err) =>
        this.logger.warn(
          { upstream, uri, err: (err as Error).message },
          'could not renew a resource subscription',
        ),
      );
    }
  }

  // ---- tables ----

  private sortedRegistrations(): Registration[] {
    return [...this.registrations.values()].sort((a, b) =>
      a.upstream.name < b.upstream.name ? -1 : a.upstream.name > b.upstream.name ? 1 : 0,
    );
  }

  /**
   * Brings one list up to date with one upstream (its catalogue, its exposure, or its removal):
   * the cost is that upstream's entries, whatever the number of upstreams.
   */
  private update(kind: CatalogKind, upstream: string): void {
    const reg = this.registrations.get(upstream);
    let changes: ListChange[];
    if (kind === 'tools' || kind === 'prompts') {
      const what = kind === 'tools' ? 'tool' : 'prompt';
      const table: LiveNameTable<Named> = kind === 'tools' ? this.tools : this.prompts;
      const limited =
        reg &&
        this.limited(
          reg,
          kind,
          (c): readonly Named[] => c[kind],
          (item) => item.name,
        );
      const delta = limited ? table.set(upstream, limited.items, limited.rejected) : table.delete(upstream);
      this.reportRejections(what, delta);
      changes = delta.changed.map((c) => ({
        kind: what,
        name: c.exposedName,
        host: this.hostOf(c.upstream),
      }));
    } else {
      // Resources and templates share one budget per upstream.
      const limited =
        reg &&
        this.limited(reg, 'resources', (c): readonly (Resource | ResourceTemplate)[] => [
          ...c.resources,
          ...c.resourceTemplates,
        ]);
      const changed: ChangedUri[] = limited
        ? this.resources.set(upstream, limited.items, limited.rejected)
        : this.resources.delete(upstream);
      changes = changed.map((c) => ({ kind: 'resource', name: c.uri, host: this.hostOf(c.upstream) }));
    }
    this.scheduleCatalogChanged();
    if (changes.length === 0) return;
    for (const list of LISTS_OF[kind]) this.fullLists.delete(list);
    this.generation++;
    this.scheduleListChanged(kind, changes);
  }

  /** One upstream's list cut to its exposure, then to the per-upstream limits (none if transparent). */
  private limited<T extends object>(
    reg: Registration,
    kind: string,
    pick: (catalog: UpstreamCatalog) => readonly T[],
    nameOf?: (item: T) => string,
  ): { items: readonly T[]; rejected: RejectedItem[] } {
    // What the owner does not expose is gone before anything else sees it.
    const items = pick(reg.exposure.filter(reg.upstream.catalog()));
    if (this.settings.naming === 'transparent') return { items, rejected: [] };
    const checked = withinLimits(reg.upstream.name, kind, items, this.settings.upstreamLimits, nameOf);
    return { items: checked.kept, rejected: checked.rejected };
  }

  /** Each refusal is logged once, when it appears; it is not logged again while it lasts. */
  private reportRejections(what: string, delta: TableDelta): void {
    for (const r of delta.newlyRejected) {
      this.logger.warn(
        {
          upstream: r.upstream,
          [what]: r.originalName,
          exposedName: r.exposedName,
          reason: r.reason,
          detail: r.detail,
        },
        `${what} not exposed`,
      );
    }
  }

  private scheduleListChanged(kind: CatalogKind, changes: readonly ListChange[]): void {
    let pending = this.pendingChanges.get(kind);
    if (!pending) {
      pending = [];
      this.pendingChanges.set(kind, pending);
    }
    for (const change of changes) pending.push(change);
    if (this.debounceTimers.has(kind)) return;
    const timer = setTimeout(() => {
      this.debounceTimers.delete(kind);
      const all = this.pendingChanges.get(kind) ?? [];
      this.pendingChanges.delete(kind);
      this.announceListChanged(kind, all);
    }, this.settings.listChangedDebounceMs);
    this.debounceTimers.set(kind, timer);
  }

  /** Each session hears of a change only when some changed entry is within its scope. */
  private announceListChanged(kind: CatalogKind, changes: readonly ListChange[]): void {
    for (const session of this.sessions) {
      const { scope } = session;
      if (kind === 'tools' && session.fixedTools) continue;
      if (scope.isFull || changes.some((c) => scope.allows(c.kind, c.name, c.host))) {
        this.tell(session, LIST_CHANGED[kind]);
      }
    }
    for (const l of this.changeListeners) {
      try {
        l(kind);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'list-changed listener failed');
      }
    }
  }

  private scheduleCatalogChanged(): void {
    if (this.catalogTimer || this.catalogListeners.size === 0) return;
    this.catalogTimer = setTimeout(() => {
      this.catalogTimer = undefined;
      for (const l of this.catalogListeners) {
        try {
          l();
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'catalog listener failed');
        }
      }
    }, this.settings.listChangedDebounceMs);
  }

  close(): void {
    for (const timer of this.debounceTimers.values()) clearTimeout(timer);
    this.debounceTimers.clear();
    this.pendingChanges.clear();
    clearTimeout(this.catalogTimer);
    this.catalogTimer = undefined;
    for (const { call, timer } of this.parked.values()) {
      clearTimeout(timer);
      call.cancel('Diane is shutting down');
    }
    this.parked.clear();
    for (const reg of this.registrations.values()) reg.unsubscribe();
    this.registrations.clear();
  }
}

/** A tool call to an upstream that is known but offline: answered as a tool error. */
/** See `Router.claimAgentRequests`. */
export type AgentRequestClaim = (
  upstream: string,
  request: AgentRequest,
  signal: AbortSignal,
) => Promise<JsonObject> | undefined;

export class UnavailableToolError extends Error {
  constructor(
    /** The offline upstream the tool's name points at. */
    readonly upstream: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnavailableToolError';
  }
}

function canAnswer(capabilities: ClientCapabilities | undefined, request: AgentRequest): boolean {
  switch (request.method) {
    case 'sampling/createMessage':
      return capabilities?.sampling !== undefined;
    case 'elicitation/create':
      return request.params.mode === 'url'
        ? capabilities?.elicitation?.url !== undefined
        : capabilities?.elicitation !== undefined;
    case 'roots/list':
      return capabilities?.roots !== undefined;
  }
}

/** The agent's request as it goes upstream: Diane's own correlation id is not passed on. */
function withoutDianeMeta(params: JsonObject): JsonObject {
  const meta = params._meta as JsonObject | undefined;
  if (!meta) return params;
  const { progressToken: _progress, [CALL_META_KEY]: _call, [AGENT_META_KEY]: _agent, ...rest } = meta;
  const { _meta: _dropped, ...withoutMeta } = params;
  return Object.keys(rest).length ? { ...withoutMeta, _meta: rest } : withoutMeta;
}

function unknownResource(uri: string): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown resource: ${uri}`);
}

function subscriptionKey(routed: RoutedUri): string {
  return `${routed.upstream}\u0000${routed.originalUri}`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
