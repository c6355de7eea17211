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
import type { Logger } from '../log.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import {
  buildNameTable,
  type ExposeName,
  emptyNameTable,
  type Named,
  type NameTable,
  prefixedName,
  type RejectedItem,
  sameExposed,
} from './nameTable.js';
import { CALL_META_KEY, exposeUri, parseExposedUri, type RoutedUri } from './resourceUris.js';
import { type CallStep, RoutedCall } from './routedCall.js';
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
import { exposeResourceObject, exposeResultUris } from './uriRewrite.js';

export interface RouterSettings {
  /** Longest exposed tool or prompt name; longer ones are refused, never truncated. */
  maxToolNameLength: number;
  /** Default idle timeout of a call; progress restarts it, waiting for the agent pauses it. */
  callTimeoutMs: number;
  /** No call lives longer than this, progress or not. */
  callTimeoutCapMs: number;
  /** Bursts of list changes (a reload, a slave reconnecting) become one notification. */
  listChangedDebounceMs: number;
  /** Entries per page of Diane's own lists. */
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
  listPageSize: 500,
  inputTimeoutMs: 600_000,
  naming: 'prefixed',
  upstreamLimits: { maxEntries: 2000, maxBytes: 4 * 1024 * 1024 },
};

/** The calls whose requests to the upstream can carry agent input. */
export type RoutedMethod = 'tools/call' | 'prompts/get' | 'resources/read';

export interface CallContext {
  signal: AbortSignal;
  onprogress?: (update: ProgressUpdate) => void;
  /** What the agent declared it can answer (sampling, elicitation, roots). */
  capabilities?: ClientCapabilities;
}

/** How the router reaches one connected agent session, for notifications. */
export interface AgentPeer {
  notify(method: string, params: JsonObject): void;
}

/** One agent session's state in the router: its log level and resource subscriptions. */
export interface AgentSession {
  readonly peer: AgentPeer;
  logLevel?: LoggingLevel;
  readonly subscriptions: Set<string>;
}

export interface ResourceListing {
  resources: Resource[];
  resourceTemplates: ResourceTemplate[];
  /** Resources and templates without a usable URI; exposedName holds the URI as given. */
  rejected: RejectedItem[];
  owners: ReadonlyMap<string, string>;
}

const EMPTY_RESOURCES: ResourceListing = {
  resources: [],
  resourceTemplates: [],
  rejected: [],
  owners: new Map(),
};

export type ListKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

interface Registration {
  upstream: Upstream;
  timeoutMs?: number;
  unsubscribe: () => void;
  connected: boolean;
}

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
  private tools: NameTable<Tool> = emptyNameTable();
  private prompts: NameTable<Prompt> = emptyNameTable();
  private resources: ResourceListing = EMPTY_RESOURCES;
  private readonly changeListeners = new Set<(kind: CatalogKind) => void>();
  private readonly debounceTimers = new Map<CatalogKind, NodeJS.Timeout>();
  private reportedRejections = new Set<string>();
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
  }

  add(upstream: Upstream, opts: { timeoutMs?: number } = {}): void {
    if (this.registrations.has(upstream.name)) {
      throw new Error(`an upstream named ${upstream.name} is already registered`);
    }
    if (this.settings.naming === 'transparent' && this.registrations.size > 0) {
      throw new Error('a transparent router serves exactly one upstream');
    }
    const unsubscribe = upstream.subscribe((event) => {
      switch (event.type) {
        case 'catalog':
          return this.rebuild(event.kind);
        case 'state':
          return this.onStateChange(upstream.name);
        case 'log':
          return this.deliverLog(upstream.name, event.params);
        case 'resource-updated':
          return this.deliverResourceUpdate(upstream.name, event.uri);
      }
    });
    upstream.agentRequests = (request, signal) => this.routeAgentRequest(upstream.name, request, signal);
    this.registrations.set(upstream.name, {
      upstream,
      timeoutMs: opts.timeoutMs,
      unsubscribe,
      connected: false,
    });
    this.onStateChange(upstream.name);
    for (const kind of CATALOG_KINDS) this.rebuild(kind);
  }

  /** Removes an upstream from routing; it does not stop it. */
  remove(name: string): Upstream | undefined {
    const reg = this.registrations.get(name);
    if (!reg) return undefined;
    reg.unsubscribe();
    reg.upstream.agentRequests = undefined;
    this.registrations.delete(name);
    for (const kind of CATALOG_KINDS) this.rebuild(kind);
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

  toolTable(): NameTable<Tool> {
    return this.tools;
  }

  promptTable(): NameTable<Prompt> {
    return this.prompts;
  }

  resourceListing(): ResourceListing {
    return this.resources;
  }

  onListChanged(listener: (kind: CatalogKind) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** One page of a list, behind an opaque cursor. */
  list(kind: ListKind, cursor: string | undefined): { items: unknown[]; nextCursor?: string } {
    const all: readonly unknown[] =
      kind === 'tools'
        ? this.tools.exposed.map((t) => t.definition)
        : kind === 'prompts'
          ? this.prompts.exposed.map((p) => p.definition)
          : kind === 'resources'
            ? this.resources.resources
            : this.resources.resourceTemplates;
    const offset = cursor === undefined ? 0 : decodeCursor(cursor, kind);
    const end = offset + this.settings.listPageSize;
    return {
      items: all.slice(offset, end),
      nextCursor: end < all.length ? encodeCursor(kind, end) : undefined,
    };
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
    let routed: { upstream: string; forwarded: JsonObject };
    try {
      routed = this.route(method, params);
    } catch (err) {
      if (!(err instanceof UnavailableToolError)) throw err;
      const call = new RoutedCall('', ctx.capabilities, peerCallId);
      call.finish({ kind: 'result', result: toolError(err.message) });
      return call;
    }
    const { upstream, forwarded } = routed;
    const reg = this.registrations.get(upstream)!;
    const call = new RoutedCall(upstream, ctx.capabilities, peerCallId);
    call.bind(ctx.signal, ctx.onprogress);
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
        meta: { [CALL_META_KEY]: call.id },
      })
      .then(
        (result) => call.finish({ kind: 'result', result: this.exposeResult(method, upstream, result) }),
        (err) => call.finish(this.failure(method, params, call, err)),
      )
      .finally(() => this.untrack(call));
    return call;
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

  private route(method: RoutedMethod, params: JsonObject): { upstream: string; forwarded: JsonObject } {
    const forwarded = withoutDianeMeta(params);
    if (method === 'tools/call') {
      const name = String(params.name);
      const entry = this.tools.byName.get(name);
      if (!entry) this.unknownName('tool', name, this.tools);
      return { upstream: entry.upstream, forwarded: { ...forwarded, name: entry.originalName } };
    }
    if (method === 'prompts/get') {
      const name = String(params.name);
      const entry = this.prompts.byName.get(name);
      if (!entry) this.unknownName('prompt', name, this.prompts);
      return { upstream: entry.upstream, forwarded: { ...forwarded, name: entry.originalName } };
    }
    const routed = this.routeUri(String(params.uri));
    return { upstream: routed.upstream, forwarded: { ...forwarded, uri: routed.originalUri } };
  }

  private routeUri(uri: string): RoutedUri {
    const routed =
      this.settings.naming === 'transparent'
        ? { upstream: this.registrations.keys().next().value ?? '', originalUri: uri }
        : parseExposedUri(uri);
    if (!routed || !this.registrations.has(routed.upstream)) {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown resource: ${uri}`);
    }
    return routed;
  }

  private unknownName(what: 'tool' | 'prompt', name: string, table: NameTable<{ name: string }>): never {
    // Only for the error message: routing never parses names, but a person deserves to hear
    // that the host is offline rather than that the tool does not exist.
    for (const { upstream } of this.registrations.values()) {
      if (name.startsWith(`${upstream.name}_`) && upstream.status().state !== 'connected') {
        if (what === 'tool') throw new UnavailableToolError(upstream.unavailableMessage());
        throw new ProtocolError(ProtocolErrorCode.InvalidParams, upstream.unavailableMessage());
      }
    }
    const rejected = table.rejected.find((r) => r.exposedName === name);
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
    return target.ask(request, signal);
  }

  // ---- completion ----

  async complete(params: JsonObject, signal: AbortSignal): Promise<JsonObject> {
    const ref = (params.ref ?? {}) as JsonObject;
    let upstream: string;
    let forwardedRef: JsonObject;
    if (ref.type === 'ref/prompt') {
      const entry = this.prompts.byName.get(String(ref.name));
      if (!entry) this.unknownName('prompt', String(ref.name), this.prompts);
      upstream = entry.upstream;
      forwardedRef = { ...ref, name: entry.originalName };
    } else if (ref.type === 'ref/resource') {
      const routed = this.routeUri(String(ref.uri));
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

  openSession(peer: AgentPeer): AgentSession {
    const session: AgentSession = { peer, subscriptions: new Set() };
    this.sessions.add(session);
    return session;
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
    const routed = this.routeUri(uri);
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
    const routed = this.routeUriOrUndefined(uri);
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

  private routeUriOrUndefined(uri: string): RoutedUri | undefined {
    try {
      return this.routeUri(uri);
    } catch {
      return undefined;
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
      if (severity >= LOG_SEVERITY[session.logLevel ?? DEFAULT_AGENT_LOG_LEVEL]) {
        session.peer.notify('notifications/message', message);
      }
    }
  }

  private deliverResourceUpdate(upstream: string, uri: string): void {
    const exposed = this.settings.naming === 'transparent' ? uri : exposeUri(upstream, uri);
    if (exposed === undefined) return;
    for (const session of this.sessions) {
      if (session.subscriptions.has(exposed))
        session.peer.notify('notifications/resources/updated', { uri: exposed });
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

  private rebuild(kind: CatalogKind): void {
    const regs = this.sortedRegistrations();
    let changed: boolean;
    if (kind === 'tools') {
      const next = this.namedTable(regs, 'tools', (c) => c.tools);
      this.reportRejections('tool', this.tools.rejected, next.rejected);
      changed = !sameExposed(this.tools, next);
      this.tools = next;
    } else if (kind === 'prompts') {
      const next = this.namedTable(regs, 'prompts', (c) => c.prompts);
      this.reportRejections('prompt', this.prompts.rejected, next.rejected);
      changed = !sameExposed(this.prompts, next);
      this.prompts = next;
    } else {
      const next = this.buildResources(regs);
      changed =
        JSON.stringify(next.resources) !== JSON.stringify(this.resources.resources) ||
        JSON.stringify(next.resourceTemplates) !== JSON.stringify(this.resources.resourceTemplates);
      this.resources = next;
    }
    if (changed) this.scheduleListChanged(kind);
  }

  /** Tools or prompts: cut to the per-upstream limits, then named through the table. */
  private namedTable<T extends Named>(
    regs: Registration[],
    kind: 'tools' | 'prompts',
    pick: (catalog: UpstreamCatalog) => readonly T[],
  ): NameTable<T> {
    const limited = this.limit(regs, kind, pick, (item) => item.name);
    return buildNameTable(
      limited.sources,
      this.settings.maxToolNameLength,
      this.exposeName,
      limited.rejected,
    );
  }

  /** Each upstream's list cut to the per-upstream limits (none behind a transparent router). */
  private limit<T extends object>(
    regs: Registration[],
    kind: string,
    pick: (catalog: UpstreamCatalog) => readonly T[],
    nameOf?: (item: T) => string,
  ): { sources: { upstream: string; items: readonly T[] }[]; rejected: RejectedItem[] } {
    const rejected: RejectedItem[] = [];
    const sources = regs.map(({ upstream }) => {
      const items = pick(upstream.catalog());
      if (this.settings.naming === 'transparent') return { upstream: upstream.name, items };
      const checked = withinLimits(upstream.name, kind, items, this.settings.upstreamLimits, nameOf);
      rejected.push(...checked.rejected);
      return { upstream: upstream.name, items: checked.kept };
    });
    return { sources, rejected };
  }

  private buildResources(regs: Registration[]): ResourceListing {
    const resources: Resource[] = [];
    const resourceTemplates: ResourceTemplate[] = [];
    const owners = new Map<string, string>();
    const transparent = this.settings.naming === 'transparent';
    // Resources and templates share one budget per upstream.
    const limited = this.limit(regs, 'resources', (c): readonly (Resource | ResourceTemplate)[] => [
      ...c.resources,
      ...c.resourceTemplates,
    ]);
    const rejected = limited.rejected;
    for (const { upstream, items } of limited.sources) {
      for (const item of items) {
        if ('uri' in item) {
          const exposed = transparent ? item : exposeResourceObject(upstream, item);
          if (!transparent && exposed === item) {
            rejected.push(notAUri(upstream, item.uri, item.name));
            continue;
          }
          resources.push(exposed);
          owners.set(exposed.uri, upstream);
          continue;
        }
        const uriTemplate = transparent ? item.uriTemplate : exposeUri(upstream, item.uriTemplate);
        if (uriTemplate === undefined) {
          rejected.push(notAUri(upstream, item.uriTemplate, item.name));
          continue;
        }
        resourceTemplates.push({ ...item, uriTemplate });
        owners.set(uriTemplate, upstream);
      }
    }
    return { resources, resourceTemplates, rejected, owners };
  }

  private reportRejections(
    what: string,
    before: readonly RejectedItem[],
    after: readonly RejectedItem[],
  ): void {
    const key = (r: RejectedItem) => `${what}\u0000${r.upstream}\u0000${r.originalName}\u0000${r.reason}`;
    const known = new Set(before.map(key));
    for (const r of after) {
      if (known.has(key(r)) || this.reportedRejections.has(key(r))) continue;
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
    this.reportedRejections = new Set([
      ...[...this.reportedRejections].filter((k) => !k.startsWith(`${what}\u0000`)),
      ...after.map(key),
    ]);
  }

  private scheduleListChanged(kind: CatalogKind): void {
    if (this.debounceTimers.has(kind)) return;
    const timer = setTimeout(() => {
      this.debounceTimers.delete(kind);
      for (const l of this.changeListeners) {
        try {
          l(kind);
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'list-changed listener failed');
        }
      }
    }, this.settings.listChangedDebounceMs);
    this.debounceTimers.set(kind, timer);
  }

  close(): void {
    for (const timer of this.debounceTimers.values()) clearTimeout(timer);
    this.debounceTimers.clear();
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
export class UnavailableToolError extends Error {
  constructor(message: string) {
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
  const { progressToken: _progress, [CALL_META_KEY]: _call, ...rest } = meta;
  const { _meta: _dropped, ...withoutMeta } = params;
  return Object.keys(rest).length ? { ...withoutMeta, _meta: rest } : withoutMeta;
}

function subscriptionKey(routed: RoutedUri): string {
  return `${routed.upstream}\u0000${routed.originalUri}`;
}

function notAUri(upstream: string, uri: string, name: string): RejectedItem {
  return {
    exposedName: uri,
    upstream,
    originalName: name,
    reason: 'not-a-uri',
    detail: 'the URI has no scheme, so it cannot be given a Diane address',
  };
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
