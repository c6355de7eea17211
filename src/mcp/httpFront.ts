import { randomUUID } from 'node:crypto';
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  hostHeaderValidation,
  NodeStreamableHTTPServerTransport,
  originValidation,
  toNodeHandler,
  toWebRequest,
} from '@modelcontextprotocol/node';
import {
  type AuthInfo,
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  localhostAllowedOrigins,
  type McpHttpHandler,
} from '@modelcontextprotocol/server';
import { ConnectionGuard, serverTimeouts } from '../http/connectionGuard.js';
import { readJsonBody, sendJson } from '../http/json.js';
import { listenOn } from '../http/listen.js';
import { DEFAULT_AGENT_LISTENER_LIMITS } from '../http/listenerLimits.js';
import type { Logger } from '../log.js';
import { type AgentDirectory, type AgentIdentity, NOBODY, UNNAMED_AGENT } from './agentIdentity.js';
import type { DiscoveryCatalog } from './discovery/discoveryCatalog.js';
import { createFront, createFrontServer, type FrontInfo } from './frontServer.js';
import { HttpRelaySession } from './relay/httpRelay.js';
import type { Router } from './router.js';

export interface HttpFrontOptions {
  router: Router;
  info: FrontInfo;
  host: string;
  port: number;
  /**
   * When set, every /mcp request must carry `Authorization: Bearer <token>` of an agent it
   * knows. Unset means no authentication (every caller is `UNNAMED_AGENT`), which the daemon
   * allows on loopback only.
   */
  agents?: AgentDirectory;
  /**
   * The catalogue behind discovery mode: agents whose identity says so, and every agent on
   * `/mcp/discovery`, get its meta-tools instead of the tool list.
   */
  discovery?: DiscoveryCatalog;
  /**
   * Origins (hostnames, port-agnostic, or `<scheme>://*`) allowed besides loopback ones. A
   * request without `Origin` (any non-browser client) is not affected.
   */
  allowedOrigins?: readonly string[];
  logger: Logger;
  maxRequestBytes: number;
  sessions: SessionLimits;
  health: () => Record<string, unknown>;
}

/** Where a 2026-07-28 request's agent rides to its per-request server (the SDK's pass-through `authInfo`). */
const AGENT_EXTRA_KEY = 'dev.diane/agent';

/** The endpoint that serves every agent in discovery mode (for agents without an identity of their own). */
export const DISCOVERY_PATH = '/mcp/discovery';

/**
 * 2025-era sessions live until the client deletes them, so a client that never does, or a
 * hostile one, could pile them up. Each credential (an agent, or "anonymous" without auth) has
 * its own cap: at the cap, the least recently used of its own sessions that has been idle for
 * `reclaimIdleMs` (no request, no open stream) is closed; if none has, the new session is
 * refused. Sessions of another credential are never touched.
 */
export interface SessionLimits {
  maxPerCredential: number;
  reclaimIdleMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxPerCredential: 100,
  reclaimIdleMs: 10 * 60_000,
};

interface LegacySession {
  transport: NodeStreamableHTTPServerTransport;
  /** The agent it belongs to: each request must authenticate as this agent again. */
  agent: AgentIdentity;
  lastUsed: number;
  /** Requests of this session in progress, open GET streams included. */
  active: number;
  /** Its hot requests that need no SDK machinery (relay/httpRelay.ts). */
  relay: HttpRelaySession;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The agent endpoint: Streamable HTTP on `/mcp`, plus `/healthz`.
 *
 * Two protocol eras share the path. 2025-era clients (`initialize`, session ids, a GET stream
 * for notifications) get a stateful SDK transport per session, which is how they receive
 * `tools/list_changed`. 2026-07-28 clients are served per request by the SDK's
 * `createMcpHandler`, whose `subscriptions/listen` streams carry the same notification.
 */
export class HttpFront {
  private readonly http: HttpServer;
  private readonly sessions = new Map<string, LegacySession>();
  private readonly modern: McpHttpHandler;
  private readonly modernNode: ReturnType<typeof toNodeHandler>;
  private readonly validateHost?: (req: IncomingMessage, res: ServerResponse) => boolean;
  private readonly validateOrigin: (req: IncomingMessage, res: ServerResponse) => boolean;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: HttpFrontOptions) {
    this.modern = createMcpHandler(
      (ctx) => {
        const agent = ctx.authInfo?.extra?.[AGENT_EXTRA_KEY] as AgentIdentity | undefined;
        // With identities in use, a request whose identity got lost on the way sees nothing.
        const identity = agent ?? (opts.agents ? NOBODY : UNNAMED_AGENT);
        return createFrontServer(opts.router, opts.info, {
          persistent: false,
          agent: identity,
          ...this.discoveryFor(identity),
        });
      },
      {
        legacy: 'reject',
        maxRequestBodySize: opts.maxRequestBytes,
        onerror: (err) => opts.logger.debug({ err: err.message }, 'mcp handler error'),
      },
    );
    this.modernNode = toNodeHandler(this.modern);
    // On loopback, refuse Host headers that are not loopback names: a web page cannot use
    // DNS rebinding to reach the agent endpoint, /healthz included.
    if (isLoopbackHost(opts.host))
      this.validateHost = hostHeaderValidation(['localhost', '127.0.0.1', '[::1]']);
    // The MCP spec requires servers to validate Origin: a browser page of another site must not
    // drive the endpoint with the user's network position, token or not.
    this.validateOrigin = originValidation([...localhostAllowedOrigins(), ...(opts.allowedOrigins ?? [])]);
    // Sessions (2025 era) hear of list changes from the router, each within its own scope. The
    // 2026-07-28 `subscriptions/listen` streams have no session: they hear of every change (a
    // notification names nothing, but a scoped agent may re-list for a change it cannot see).
    this.unsubscribe = opts.router.onListChanged((kind) => {
      if (kind === 'tools') this.modern.notify.toolsChanged();
      else if (kind === 'prompts') this.modern.notify.promptsChanged();
      else this.modern.notify.resourcesChanged();
    });
    this.http = createServer(serverTimeouts(DEFAULT_AGENT_LISTENER_LIMITS), (req, res) => {
      this.route(req, res).catch((err) => {
        opts.logger.error({ err: (err as Error).message }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.end();
      });
    });
    this.http.keepAliveTimeout = 65_000;
    new ConnectionGuard(this.http, DEFAULT_AGENT_LISTENER_LIMITS, opts.logger, 'agent endpoint');
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.http, this.opts.host, this.opts.port, '--mcp-listen');
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.validateHost && !this.validateHost(req, res)) return;
    if (!this.validateOrigin(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return sendJson(res, 405, { error: 'method not allowed' });
      return sendJson(res, 200, { status: 'ok', ...this.opts.health() });
    }
    if (path !== '/mcp' && path !== DISCOVERY_PATH) {
      return sendJson(res, 404, { error: `not found; the MCP endpoint is /mcp (or ${DISCOVERY_PATH})` });
    }
    const authenticated = this.authenticate(req);
    // The discovery path puts any agent in discovery mode; a session keeps the mode it opened in.
    const agent =
      authenticated && path === DISCOVERY_PATH ? { ...authenticated, discovery: true } : authenticated;
    if (!agent) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="diane"');
      return sendJson(res, 401, {
        error: 'missing or wrong bearer token: send "Authorization: Bearer <token>" (see `diane info`)',
      });
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const session = this.sessions.get(sessionId);
      // Another agent's session id is as good as unknown: ids are not capabilities.
      if (!session || session.agent.name !== agent.name)
        return sendJsonRpcError(res, 404, -32001, 'Session not found');
      session.lastUsed = Date.now();
      session.active++;
      res.once('close', () => {
        session.active--;
        session.lastUsed = Date.now();
      });
      if (req.method !== 'POST') return session.transport.handleRequest(req, res);
      // Parsed here, not by the SDK, so that every /mcp body gets the same size and depth limits.
      const sessionBody = await readJsonBody(req, this.opts.maxRequestBytes);
      if (!sessionBody.ok)
        return sendJsonRpcError(res, sessionBody.status, -32700, `Parse error: ${sessionBody.message}`);
      if (session.relay.tryServe(req, res, sessionBody.value)) return;
      return session.transport.handleRequest(req, res, sessionBody.value);
    }
    if (req.method !== 'POST') {
      return sendJsonRpcError(res, 400, -32000, 'Bad Request: no session id; start with an initialize POST');
    }
    const body = await readJsonBody(req, this.opts.maxRequestBytes);
    if (!body.ok) return sendJsonRpcError(res, body.status, -32700, `Parse error: ${body.message}`);
    const legacy = await isLegacyRequest(await toWebRequest(req, body.value), body.value, {
      maxRequestBodySize: this.opts.maxRequestBytes,
    });
    if (!legacy) {
      const auth: AuthInfo = {
        token: '',
        clientId: agent.name,
        scopes: [],
        extra: { [AGENT_EXTRA_KEY]: agent },
      };
      (req as IncomingMessage & { auth?: AuthInfo }).auth = auth;
      return this.modernNode(req, res, body.value);
    }
    if (!isInitializeRequest(body.value)) {
      return sendJsonRpcError(res, 400, -32000, 'Bad Request: no valid session id');
    }
    return this.openLegacySession(req, res, body.value, agent);
  }

  private async openLegacySession(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    agent: AgentIdentity,
  ): Promise<void> {
    if (!this.makeRoomFor(agent.name)) {
      const { maxPerCredential } = this.opts.sessions;
      this.opts.logger.warn(
        { agent: agent.name, sessions: maxPerCredential },
        'refused a new agent session (limit)',
      );
      return sendJsonRpcError(
        res,
        429,
        -32000,
        `Too many sessions: this credential already has ${maxPerCredential} open sessions, all in use ` +
          'recently. Close sessions you no longer need (HTTP DELETE with their Mcp-Session-Id), or retry later.',
      );
    }
    const front = createFront(this.opts.router, this.opts.info, {
      persistent: true,
      agent,
      ...this.discoveryFor(agent),
    });
    const transport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        const relay = new HttpRelaySession(this.opts.router, front, transport, id);
        this.sessions.set(id, { transport, agent, lastUsed: Date.now(), active: 0, relay });
      },
    });
    transport.onclose = () => {
      if (!transport.sessionId) return;
      this.sessions.get(transport.sessionId)?.relay.close();
      this.sessions.delete(transport.sessionId);
    };
    await front.server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  /** Whether `agent` may open one more session, closing an idle one of its own if needed. */
  private makeRoomFor(agent: string): boolean {
    const own = [...this.sessions].filter(([, s]) => s.agent.name === agent);
    if (own.length < this.opts.sessions.maxPerCredential) return true;
    const idleSince = Date.now() - this.opts.sessions.reclaimIdleMs;
    let oldest: [string, LegacySession] | undefined;
    for (const entry of own) {
      const session = entry[1];
      if (session.active > 0 || session.lastUsed > idleSince) continue;
      if (!oldest || session.lastUsed < oldest[1].lastUsed) oldest = entry;
    }
    if (!oldest) return false;
    this.opts.logger.info(
      { session: oldest[0], agent },
      'closing an idle agent session of the same credential (session limit)',
    );
    this.sessions.delete(oldest[0]);
    oldest[1].relay.close();
    void oldest[1].transport.close();
    return true;
  }

  private discoveryFor(agent: AgentIdentity): { discovery?: DiscoveryCatalog } {
    return agent.discovery && this.opts.discovery ? { discovery: this.opts.discovery } : {};
  }

  private authenticate(req: IncomingMessage): AgentIdentity | undefined {
    if (!this.opts.agents) return UNNAMED_AGENT;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return undefined;
    return this.opts.agents.authenticate(match[1]!.trim());
  }

  /**
   * Ends every 2025-era session of an agent at once, open streams included: its token was
   * rotated or it was removed. (Its next request would be refused anyway; this cuts what is
   * already open.) 2026-07-28 requests carry no session and are judged one by one.
   */
  closeSessionsOf(agent: string): number {
    let closed = 0;
    for (const [id, session] of [...this.sessions]) {
      if (session.agent.name !== agent) continue;
      this.sessions.delete(id);
      session.relay.close();
      void session.transport.close().catch(() => {});
      closed++;
    }
    return closed;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    const closing = [...this.sessions.values()].map((s) => {
      s.relay.close();
      return s.transport.close().catch(() => {});
    });
    this.sessions.clear();
    await Promise.all(closing);
    await this.modern.close().catch(() => {});
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}

function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}
