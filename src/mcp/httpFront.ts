import { randomUUID, timingSafeEqual } from 'node:crypto';
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
  toNodeHandler,
  toWebRequest,
} from '@modelcontextprotocol/node';
import {
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  type McpHttpHandler,
} from '@modelcontextprotocol/server';
import { readJsonBody, sendJson } from '../http/json.js';
import { listenOn } from '../http/listen.js';
import type { Logger } from '../log.js';
import { createFrontServer, type FrontInfo, LiveServers } from './frontServer.js';
import type { Router } from './router.js';

export interface HttpFrontOptions {
  router: Router;
  info: FrontInfo;
  host: string;
  port: number;
  /** When set, every /mcp request must carry `Authorization: Bearer <token>`. */
  token?: string;
  logger: Logger;
  maxRequestBytes: number;
  maxSessions: number;
  health: () => Record<string, unknown>;
}

interface LegacySession {
  transport: NodeStreamableHTTPServerTransport;
  lastUsed: number;
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
  private readonly live = new LiveServers();
  private readonly modern: McpHttpHandler;
  private readonly modernNode: ReturnType<typeof toNodeHandler>;
  private readonly validateHost?: (req: IncomingMessage, res: ServerResponse) => boolean;
  private readonly tokenBytes?: Buffer;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: HttpFrontOptions) {
    this.modern = createMcpHandler(() => createFrontServer(opts.router, opts.info, { persistent: false }), {
      legacy: 'reject',
      maxRequestBodySize: opts.maxRequestBytes,
      onerror: (err) => opts.logger.debug({ err: err.message }, 'mcp handler error'),
    });
    this.modernNode = toNodeHandler(this.modern);
    // On loopback, refuse Host headers that are not loopback names: a web page cannot use
    // DNS rebinding to reach the agent endpoint.
    if (isLoopbackHost(opts.host))
      this.validateHost = hostHeaderValidation(['localhost', '127.0.0.1', '[::1]']);
    if (opts.token) this.tokenBytes = Buffer.from(opts.token, 'utf8');
    this.unsubscribe = opts.router.onListChanged((kind) => {
      this.live.announceListChanged(kind);
      if (kind === 'tools') this.modern.notify.toolsChanged();
      else if (kind === 'prompts') this.modern.notify.promptsChanged();
      else this.modern.notify.resourcesChanged();
    });
    this.http = createServer((req, res) => {
      this.route(req, res).catch((err) => {
        opts.logger.error({ err: (err as Error).message }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.end();
      });
    });
    this.http.keepAliveTimeout = 65_000;
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.http, this.opts.host, this.opts.port, '--mcp-listen');
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return sendJson(res, 405, { error: 'method not allowed' });
      return sendJson(res, 200, { status: 'ok', ...this.opts.health() });
    }
    if (path !== '/mcp') return sendJson(res, 404, { error: 'not found; the MCP endpoint is /mcp' });
    if (this.validateHost && !this.validateHost(req, res)) return;
    if (!this.authorized(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="diane"');
      return sendJson(res, 401, { error: 'missing or wrong bearer token (see `diane info`)' });
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const session = this.sessions.get(sessionId);
      if (!session) return sendJsonRpcError(res, 404, -32001, 'Session not found');
      session.lastUsed = Date.now();
      return session.transport.handleRequest(req, res);
    }
    if (req.method !== 'POST') {
      return sendJsonRpcError(res, 400, -32000, 'Bad Request: no session id; start with an initialize POST');
    }
    const body = await readJsonBody(req, this.opts.maxRequestBytes);
    if (!body.ok) return sendJsonRpcError(res, body.status, -32700, `Parse error: ${body.message}`);
    const legacy = await isLegacyRequest(await toWebRequest(req, body.value), body.value, {
      maxRequestBodySize: this.opts.maxRequestBytes,
    });
    if (!legacy) return this.modernNode(req, res, body.value);
    if (!isInitializeRequest(body.value)) {
      return sendJsonRpcError(res, 400, -32000, 'Bad Request: no valid session id');
    }
    return this.openLegacySession(req, res, body.value);
  }

  private async openLegacySession(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    if (this.sessions.size >= this.opts.maxSessions) this.evictOldestSession();
    const server = createFrontServer(this.opts.router, this.opts.info, { persistent: true });
    const transport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        this.sessions.set(id, { transport, lastUsed: Date.now() });
        this.live.add(server);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) this.sessions.delete(transport.sessionId);
      this.live.delete(server);
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  private evictOldestSession(): void {
    let oldest: [string, LegacySession] | undefined;
    for (const entry of this.sessions) if (!oldest || entry[1].lastUsed < oldest[1].lastUsed) oldest = entry;
    if (!oldest) return;
    this.opts.logger.info(
      { session: oldest[0] },
      'closing the least recently used agent session (session limit)',
    );
    this.sessions.delete(oldest[0]);
    void oldest[1].transport.close();
  }

  private authorized(req: IncomingMessage): boolean {
    if (!this.tokenBytes) return true;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return false;
    const given = Buffer.from(match[1]!.trim(), 'utf8');
    return given.length === this.tokenBytes.length && timingSafeEqual(given, this.tokenBytes);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    const closing = [...this.sessions.values()].map((s) => s.transport.close().catch(() => {}));
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
