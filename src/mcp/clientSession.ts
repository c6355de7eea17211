import type {
  LoggingMessageNotificationParams,
  ServerCapabilities,
  Transport,
} from '@modelcontextprotocol/client';
import {
  Client,
  ProtocolError,
  ProtocolErrorCode,
  SdkError,
  SdkErrorCode,
  type StandardSchemaV1,
} from '@modelcontextprotocol/client';
import type { Logger } from '../log.js';
import { withOrderedDelivery } from './orderedDelivery.js';
import { RawForward } from './relay/rawForward.js';
import type { HotMethod } from './relay/wire.js';
import {
  type AgentRequestHandler,
  type AgentRequestMethod,
  CATALOG_KINDS,
  type CallOptions,
  type CatalogKind,
  EMPTY_CATALOG,
  type ForwardedMethod,
  type JsonObject,
  type UpstreamCatalog,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from './upstream.js';

export interface ClientSessionOptions {
  clientName: string;
  clientVersion: string;
  logger: Logger;
  connectTimeoutMs: number;
  /** Called after a list was re-read because the upstream announced a change. */
  onCatalogChanged: (kind: CatalogKind) => void;
  /** Called once when the connection is gone, whoever closed it. */
  onClosed: (error?: Error) => void;
  onLog?: (params: LoggingMessageNotificationParams) => void;
  onResourceUpdated?: (uri: string) => void;
  /** Where the upstream's sampling, elicitation and roots requests go. */
  onAgentRequest?: AgentRequestHandler;
  /** How often a list may be re-read after `list_changed`. */
  refreshPacing?: RefreshPacing;
  /** Handlers for the upstream's non-spec requests (an owner's private protocol on the link). */
  extensionRequests?: readonly ExtensionRequestHandler[];
}

/**
 * A non-spec method the upstream may call on this client. The SDK validates `params` with the
 * schema before `handle` runs; what `handle` throws goes back as a JSON-RPC error.
 */
export interface ExtensionRequestHandler {
  method: string;
  // biome-ignore lint/suspicious/noExplicitAny: each handler brings its own schema and params type.
  params: StandardSchemaV1<unknown, any>;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  handle: (params: any, signal: AbortSignal) => Promise<JsonObject>;
}

export interface RefreshPacing {
  minIntervalMs: number;
  maxIntervalMs: number;
}

export const DEFAULT_REFRESH_PACING: RefreshPacing = { minIntervalMs: 1000, maxIntervalMs: 30_000 };

interface RefreshPace {
  lastStart: number;
  intervalMs: number;
  pending: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * Diane forwards results; the agent's own client validates them. Checking the whole result
 * again on every hop cost about a tenth of the master's CPU per call, so only its shape is checked.
 */
const FORWARDED_RESULT: StandardSchemaV1<unknown, JsonObject> = {
  '~standard': {
    version: 1,
    vendor: 'diane',
    validate: (value) =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? { value: value as JsonObject }
        : { issues: [{ message: 'a result must be an object' }] },
  },
};

/**
 * What Diane tells every upstream it can do: it relays these requests to the agent whose call
 * caused them (see router.ts), so servers that check for them show their whole feature set.
 */
export const DIANE_CLIENT_CAPABILITIES = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
} as const;

const AGENT_REQUEST_METHODS: readonly AgentRequestMethod[] = [
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
];

/**
 * One live MCP client connection to an upstream, over any SDK transport: the initialize
 * handshake, the catalog (re-read on each `list_changed`), request forwarding with timeout,
 * progress and cancellation, and the upstream's notifications and requests handed to the owner.
 * Reconnecting is the owner's job.
 */
export class ClientSession {
  private catalogNow: UpstreamCatalog = EMPTY_CATALOG;
  private isClosed = false;
  private lastTransportError?: Error;
  private readonly refreshing = new Map<CatalogKind, Promise<void>>();
  private readonly pacing = new Map<CatalogKind, RefreshPace>();
  private readonly refreshPacing: RefreshPacing;

  /**
   * Hot requests (`tools/call`, `prompts/get`, `resources/read`) go as raw JSON-RPC on a
   * 2025-era connection; the 2026-07-28 era wants an envelope per request that only the SDK writes.
   */
  private raw?: RawForward;

  private constructor(
    private readonly client: Client,
    private readonly opts: ClientSessionOptions,
  ) {
    this.refreshPacing = opts.refreshPacing ?? DEFAULT_REFRESH_PACING;
  }

  static async open(transport: Transport, opts: ClientSessionOptions): Promise<ClientSession> {
    const client = new Client(
      { name: opts.clientName, version: opts.clientVersion },
      { capabilities: { ...DIANE_CLIENT_CAPABILITIES } },
    );
    const session = new ClientSession(client, opts);
    client.onerror = (err) => {
      session.lastTransportError = err;
      opts.logger.debug({ err: err.message }, 'upstream transport error');
      // HTTP transports report a dead server only through onerror; find out whether it is gone.
      if (session.isOpen && isTransportFailure(err)) void session.checkAlive();
    };
    client.onclose = () => session.handleClose();
    client.setNotificationHandler('notifications/tools/list_changed', () => session.scheduleRefresh('tools'));
    client.setNotificationHandler('notifications/prompts/list_changed', () =>
      session.scheduleRefresh('prompts'),
    );
    client.setNotificationHandler('notifications/resources/list_changed', () =>
      session.scheduleRefresh('resources'),
    );
    client.setNotificationHandler('notifications/message', (n) => opts.onLog?.(n.params));
    client.setNotificationHandler('notifications/resources/updated', (n) =>
      opts.onResourceUpdated?.(n.params.uri),
    );
    for (const method of AGENT_REQUEST_METHODS) {
      client.setRequestHandler(method, async (request, ctx) => {
        if (!opts.onAgentRequest) {
          throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `${method} is not relayed here`);
        }
        const params = (request.params ?? {}) as JsonObject;
        // biome-ignore lint/suspicious/noExplicitAny: the agent's answer is relayed as it came.
        return (await opts.onAgentRequest({ method, params }, ctx.mcpReq.signal)) as any;
      });
    }
    for (const extension of opts.extensionRequests ?? []) {
      client.setRequestHandler(extension.method, { params: extension.params }, (params, ctx) =>
        extension.handle(params, ctx.mcpReq.signal),
      );
    }
    const raw = new RawForward(transport);
    try {
      await client.connect(
        withOrderedDelivery(transport, (message) => raw.take(message)),
        { timeout: opts.connectTimeoutMs },
      );
      if (client.getNegotiatedProtocolVersion()?.startsWith('2025')) session.raw = raw;
      session.catalogNow = await session.readCatalog();
      session.opened = true;
    } catch (err) {
      session.isClosed = true;
      await client.close().catch(() => {});
      throw err;
    }
    return session;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private get isOpen(): boolean {
    return !this.isClosed && this.opened;
  }

  private opened = false;
  private checking?: Promise<boolean>;

  /**
   * Pings the upstream; a link that cannot answer is closed, which hands it to the owner's
   * restart logic. Concurrent checks share one ping.
   */
  checkAlive(timeoutMs = this.opts.connectTimeoutMs): Promise<boolean> {
    if (this.isClosed) return Promise.resolve(false);
    this.checking ??= this.client
      .ping({ timeout: timeoutMs })
      .then(() => true)
      .catch(async (err) => {
        if (this.isClosed) return false;
        this.lastTransportError = err as Error;
        this.opts.logger.warn({ err: (err as Error).message }, 'upstream does not answer; closing the link');
        await this.close().catch(() => {});
        return false;
      })
      .finally(() => {
        this.checking = undefined;
      });
    return this.checking;
  }

  catalog(): UpstreamCatalog {
    return this.catalogNow;
  }

  serverCapabilities(): ServerCapabilities | undefined {
    return this.isClosed ? undefined : this.client.getServerCapabilities();
  }

  serverVersion(): string | undefined {
    return this.client.getServerVersion()?.version;
  }

  private async readCatalog(): Promise<UpstreamCatalog> {
    const parts = await Promise.all(CATALOG_KINDS.map((kind) => this.readList(kind)));
    return Object.assign({ ...EMPTY_CATALOG }, ...parts);
  }

  /** Reads one list, every page of it; a capability the upstream lacks reads as empty. */
  private async readList(kind: CatalogKind): Promise<Partial<UpstreamCatalog>> {
    const capabilities = this.client.getServerCapabilities();
    const options = { cacheMode: 'bypass' as const, timeout: this.opts.connectTimeoutMs };
    switch (kind) {
      case 'tools':
        return { tools: capabilities?.tools ? (await this.client.listTools(undefined, options)).tools : [] };
      case 'prompts':
        return {
          prompts: capabilities?.prompts ? (await this.client.listPrompts(undefined, options)).prompts : [],
        };
      case 'resources': {
        if (!capabilities?.resources) return { resources: [], resourceTemplates: [] };
        const [resources, templates] = await Promise.all([
          this.client.listResources(undefined, options),
          this.client.listResourceTemplates(undefined, options),
        ]);
        return { resources: resources.resources, resourceTemplates: templates.resourceTemplates };
      }
    }
  }

  /**
   * Re-reads a list after `list_changed`, paced: at most one read in flight per list, reads
   * start at least `minIntervalMs` apart, and while announcements keep arriving faster than that
   * the interval doubles up to `maxIntervalMs` (back to the minimum once a read sees none). An
   * upstream that re-announces its list every few milliseconds costs one read per interval.
   */
  private scheduleRefresh(kind: CatalogKind): void {
    if (this.isClosed) return;
    const pace = this.pacingOf(kind);
    if (pace.timer || this.refreshing.has(kind)) {
      pace.pending = true;
      return;
    }
    const wait = pace.lastStart + pace.intervalMs - Date.now();
    if (wait > 0) {
      pace.pending = true;
      pace.timer = setTimeout(() => {
        pace.timer = undefined;
        if (!pace.pending) return;
        pace.pending = false;
        this.startRefresh(kind);
      }, wait);
      pace.timer.unref();
      return;
    }
    this.startRefresh(kind);
  }

  private pacingOf(kind: CatalogKind): RefreshPace {
    let pace = this.pacing.get(kind);
    if (!pace) {
      pace = { lastStart: 0, intervalMs: this.refreshPacing.minIntervalMs, pending: false };
      this.pacing.set(kind, pace);
    }
    return pace;
  }

  private startRefresh(kind: CatalogKind): void {
    const pace = this.pacingOf(kind);
    pace.lastStart = Date.now();
    const run = this.readList(kind)
      .then((part) => {
        if (this.isClosed) return;
        this.catalogNow = { ...this.catalogNow, ...part };
        this.opts.onCatalogChanged(kind);
      })
      .catch((err) =>
        this.opts.logger.warn({ err: (err as Error).message, list: kind }, 'could not re-read a list'),
      )
      .finally(() => {
        this.refreshing.delete(kind);
        const { minIntervalMs, maxIntervalMs } = this.refreshPacing;
        pace.intervalMs = pace.pending ? Math.min(pace.intervalMs * 2, maxIntervalMs) : minIntervalMs;
        if (pace.pending) {
          pace.pending = false;
          this.scheduleRefresh(kind);
        }
      });
    this.refreshing.set(kind, run);
  }

  async request(
    method: ForwardedMethod,
    params: JsonObject,
    opts: CallOptions,
    unavailableMessage: string,
  ): Promise<JsonObject> {
    if (this.isClosed) throw new UpstreamUnavailableError(unavailableMessage);
    const sent = opts.meta
      ? { ...params, _meta: { ...(params._meta as JsonObject | undefined), ...opts.meta } }
      : params;
    try {
      if (this.raw && isHotMethod(method)) return await this.raw.request(method, sent, opts);
      return await this.client.request({ method, params: sent } as never, FORWARDED_RESULT, {
        signal: opts.signal,
        onprogress: opts.onprogress,
        timeout: opts.timeoutMs,
        resetTimeoutOnProgress: true,
        maxTotalTimeout: opts.maxTotalMs,
      });
    } catch (err) {
      if (opts.signal.aborted) throw err;
      if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout) {
        throw new UpstreamTimeoutError(err.message);
      }
      if (this.isClosed || (err instanceof SdkError && err.code === SdkErrorCode.ConnectionClosed)) {
        throw new UpstreamUnavailableError(unavailableMessage);
      }
      if (isTransportFailure(err)) {
        // The request never reached the upstream: the link is broken, not the tool.
        void this.checkAlive();
        throw new UpstreamUnavailableError(unavailableMessage);
      }
      throw err;
    }
  }

  /** Tells the upstream that the agents' roots changed. */
  notifyRootsChanged(): void {
    if (this.isOpen) this.client.sendRootsListChanged().catch(() => {});
  }

  /** Sends one of the owner's non-spec notifications (the counterpart of `extensionRequests`). */
  notifyExtension(method: string): void {
    if (this.isOpen) this.client.notification({ method } as never).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    await this.client.close();
    this.handleClose();
  }

  private handleClose(): void {
    if (this.isClosed) {
      return;
    }
    this.isClosed = true;
    this.raw?.close();
    for (const pace of this.pacing.values()) clearTimeout(pace.timer);
    this.catalogNow = EMPTY_CATALOG;
    this.opts.onClosed(this.lastTransportError);
  }
}

function isHotMethod(method: ForwardedMethod): method is HotMethod {
  return method === 'tools/call' || method === 'prompts/get' || method === 'resources/read';
}

/** Errors that mean the transport cannot carry messages (as opposed to an upstream's answer). */
function isTransportFailure(err: unknown): boolean {
  if (err instanceof SdkError)
    return err.code === SdkErrorCode.SendFailed || err.code === SdkErrorCode.NotConnected;
  if (
    err instanceof Error &&
    /fetch failed|terminated|SSE stream disconnected|ECONNREFUSED/.test(err.message)
  ) {
    return true;
  }
  const code =
    (err as { code?: unknown; cause?: { code?: unknown } })?.cause?.code ?? (err as { code?: unknown })?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE';
}
