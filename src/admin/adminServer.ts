import { rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createConnection } from 'node:net';
import type { z } from 'zod';
import { DianeError, ExitCode } from '../errors.js';
import { logAcceptErrors } from '../http/connectionGuard.js';
import { readJsonBody, sendJson } from '../http/json.js';
import { ThrottledLog } from '../http/throttledLog.js';
import type { Logger } from '../log.js';

/** Unix socket paths are limited to 107 bytes on Linux (sun_path). */
const MAX_SOCKET_PATH = 107;
const MAX_BODY_BYTES = 1024 * 1024;

export interface AdminRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  raw: IncomingMessage;
  res: ServerResponse;
}

/** A handler returns the JSON body to send (status 200), or `undefined` when it answered itself (streams). */
export type AdminHandler = (req: AdminRequest) => unknown | Promise<unknown>;

export class AdminHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'error',
  ) {
    super(message);
  }
}

/** Parses a request body with a zod schema, answering 400 with the offending field on failure. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  throw new AdminHttpError(400, `invalid request: ${where}${issue?.message ?? 'bad body'}`, 'bad-request');
}

/**
 * Parses the query string with a zod schema over its parameters as strings, like parseBody. A
 * parameter given twice is refused rather than one of its values picked.
 */
export function parseQuery<T extends z.ZodType>(schema: T, query: URLSearchParams): z.infer<T> {
  const params: Record<string, string> = {};
  for (const [key, value] of query) {
    if (Object.hasOwn(params, key)) {
      throw new AdminHttpError(400, `invalid request: ${key}: given more than once`, 'bad-request');
    }
    params[key] = value;
  }
  return parseBody(schema, params);
}

/**
 * The admin API: HTTP over a Unix socket only. The socket is created with mode 0600 (the umask
 * is set around `listen`, so there is no window in which it is more open), which makes "can
 * connect" mean "is the user who runs the daemon". It is never bound to TCP.
 */
export class AdminServer {
  private readonly routes = new Map<string, AdminHandler>();
  private readonly http: Server;
  /**
   * The daemon listens before it has built the services the routes need (the socket is how a
   * second daemon on the same home is detected), so until then every request is told to wait.
   */
  private isReady = false;

  constructor(
    private readonly socketPath: string,
    private readonly logger: Logger,
  ) {
    this.http = createServer((req, res) => void this.dispatch(req, res));
    logAcceptErrors(this.http, new ThrottledLog(logger, 'error', 'admin socket: cannot accept connections'));
  }

  handle(method: 'GET' | 'POST' | 'DELETE', path: string, handler: AdminHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  /** Called once every route is registered: from now on requests are routed, not answered 503. */
  ready(): void {
    this.isReady = true;
  }

  async listen(): Promise<void> {
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH) {
      throw new DianeError(
        `the admin socket path ${this.socketPath} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter DIANE_HOME`,
        ExitCode.config,
      );
    }
    await removeStaleSocket(this.socketPath);
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.http.once('error', reject);
        this.http.listen(this.socketPath, () => {
          this.http.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(previous);
    }
    const mode = statSync(this.socketPath).mode & 0o777;
    if (mode !== 0o600) {
      await this.close();
      throw new DianeError(
        `admin socket ${this.socketPath} has mode ${mode.toString(8)}, expected 600`,
        ExitCode.failure,
      );
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const handler = this.routes.get(`${req.method} ${url.pathname}`);
    try {
      if (!this.isReady) {
        res.setHeader('retry-after', '1');
        throw new AdminHttpError(503, 'the daemon is starting; try again in a moment', 'starting');
      }
      if (!handler)
        throw new AdminHttpError(404, `no such admin endpoint: ${req.method} ${url.pathname}`, 'not-found');
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      const result = await handler({
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        body,
        raw: req,
        res,
      });
      if (result !== undefined) sendJson(res, 200, result);
    } catch (err) {
      if (err instanceof AdminHttpError)
        return sendJson(res, err.status, { error: err.message, code: err.code });
      if (err instanceof DianeError) return sendJson(res, 400, { error: err.message, code: err.code });
      this.logger.error({ err: (err as Error).stack }, 'admin request failed');
      if (!res.headersSent)
        sendJson(res, 500, { error: `internal error: ${(err as Error).message}`, code: 'internal' });
      else res.end();
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    rmSync(this.socketPath, { force: true });
  }
}

/** A socket file left by a crashed daemon is removed; a live one means another daemon owns this home. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    statSync(path);
  } catch {
    return;
  }
  const alive = await new Promise<boolean>((resolve) => {
    const conn = createConnection(path);
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
  if (alive) {
    throw new DianeError(
      `another Diane daemon is already running with this DIANE_HOME (its admin socket ${path} answers)`,
      ExitCode.failure,
    );
  }
  rmSync(path, { force: true });
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  if (req.headers['content-length'] === '0') return {};
  const body = await readJsonBody(req, MAX_BODY_BYTES);
  if (!body.ok)
    throw new AdminHttpError(body.status, body.message, body.status === 413 ? 'too-large' : 'bad-request');
  return body.value;
}
