import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AdminClient } from '../admin/adminClient.js';
import { DianeError } from '../errors.js';
import { ConnectionGuard, serverTimeouts } from '../http/connectionGuard.js';
import { listenOn } from '../http/listen.js';
import { DEFAULT_AGENT_LISTENER_LIMITS } from '../http/listenerLimits.js';
import type { Logger } from '../log.js';
import { CONSOLE_CSS, CONSOLE_JS, htmxScript } from './assets.js';
import { ConsoleAuth, csrfValid, hostAllowed, isLoopbackName, originAllowed, type Session } from './auth.js';
import type { SafeHtml } from './html.js';
import {
  activityPage,
  auditFragment,
  type Catalogue,
  cataloguePage,
  errorPage,
  hostsFragment,
  hostsPage,
  loginRequiredPage,
  pairingPage,
  pendingFragment,
  pendingVersion,
  reloadSummary,
  revokeConfirmPage,
  serversPage,
  tryToolPage,
} from './pages.js';

/** Every answer: nothing inline runs, nothing frames the console, nothing is cached. */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  // Not no-referrer: with it Chromium sends `Origin: null` on form posts, which the Origin check refuses.
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const MAX_FORM_BYTES = 1024 * 1024;

export interface ConsoleServerOptions {
  admin: AdminClient;
  host: string;
  port: number;
  logger: Logger;
  /** For tests: a fixed clock or login token. */
  auth?: ConsoleAuth;
  now?: () => number;
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `diane console`: a loopback-only web console. It holds no power of its own: every read and
 * every action goes to the daemon through the admin Unix socket (AdminClient), so the agent and
 * cluster listeners never serve anything admin-capable.
 */
export class ConsoleServer {
  private readonly server: Server;
  private port = 0;
  readonly auth: ConsoleAuth;
  private readonly now: () => number;

  constructor(private readonly opts: ConsoleServerOptions) {
    if (!isLoopbackName(opts.host)) {
      throw new DianeError(`the console listens on loopback only, not on ${opts.host}`, 2);
    }
    this.now = opts.now ?? Date.now;
    this.auth = opts.auth ?? new ConsoleAuth('diane_console', this.now);
    this.server = createServer(serverTimeouts(DEFAULT_AGENT_LISTENER_LIMITS), (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        opts.logger.error({ err }, 'console request failed');
        if (!res.headersSent) this.send(res, 500, errorPage('Error', 'The console failed to answer.'));
        else res.destroy();
      });
    });
    new ConnectionGuard(this.server, DEFAULT_AGENT_LISTENER_LIMITS, opts.logger, 'console');
  }

  /** Listens and returns the one-time login URL. */
  async start(): Promise<{ port: number; url: string }> {
    const address = await listenOn(this.server, this.opts.host, this.opts.port, '--listen');
    this.port = address.port;
    if (!this.opts.auth) this.auth.cookieName = `diane_console_${this.port}`;
    const host = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    const token = this.auth.pendingLoginToken ?? '';
    return { port: this.port, url: `http://${host}:${this.port}/login?token=${token}` };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const method = req.method ?? 'GET';
    if (!hostAllowed(req.headers.host, this.port)) {
      return this.sendText(res, 421, 'This console answers to loopback host names only.\n');
    }
    if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') {
      res.setHeader('allow', 'GET, HEAD, POST');
      return this.sendText(res, 405, 'Method not allowed.\n');
    }
    if (method !== 'POST' && url.pathname === '/static/console.css') {
      return this.sendAsset(res, 'text/css; charset=utf-8', CONSOLE_CSS);
    }
    if (method !== 'POST' && url.pathname === '/static/htmx.min.js') {
      return this.sendAsset(res, 'text/javascript; charset=utf-8', htmxScript());
    }
    if (method !== 'POST' && url.pathname === '/static/console.js') {
      return this.sendAsset(res, 'text/javascript; charset=utf-8', CONSOLE_JS);
    }
    if (url.pathname === '/favicon.ico') return this.sendText(res, 204, '');
    if (url.pathname === '/login' && method !== 'POST') return this.login(res, url);

    const session = this.auth.session(req.headers.cookie);
    if (!session) {
      return this.send(
        res,
        401,
        loginRequiredPage('You are not logged in to this console, or your session ended.'),
      );
    }
    if (method === 'POST') {
      if (!originAllowed(req.headers.origin, req.headers.host, this.port)) {
        return this.send(
          res,
          403,
          errorPage('Refused', 'This request did not come from the console’s own page.', session),
        );
      }
      let form: URLSearchParams;
      try {
        form = await readForm(req);
      } catch (err) {
        return this.failed(res, err, session);
      }
      if (!csrfValid(session, form.get('csrf') ?? undefined, req.headers['x-csrf-token'])) {
        return this.send(
          res,
          403,
          errorPage(
            'Refused',
            'The form is stale or forged (CSRF token mismatch). Reload the page.',
            session,
          ),
        );
      }
      return this.post(res, url.pathname, form, session);
    }
    return this.get(res, url, session);
  }

  /**
   * Server-sent events for the open pages: `pairing` when the daemon's pairing event stream says
   * something happened, `audit` when an audit row is written (the daemon's follow stream). The
   * page then re-reads the fragment concerned; no data crosses here, so nothing to escape.
   */
  private events(res: ServerResponse): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const closed = new AbortController();
    res.once('close', () => closed.abort());
    const send = (event: string) => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: {}\n\n`);
    };
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    closed.signal.addEventListener('abort', () => clearInterval(keepAlive));
    // Each stream is followed while the page is open, and re-opened after a daemon restart.
    const follow = async (open: () => Promise<void>) => {
      while (!closed.signal.aborted) {
        await open().catch(() => {});
        if (!closed.signal.aborted) await new Promise((r) => setTimeout(r, 2000).unref());
      }
    };
    const admin = this.opts.admin;
    void follow(() => admin.streamEvents('/api/slave/events', () => send('pairing'), closed.signal));
    void follow(() => admin.followAudit({}, () => send('audit'), closed.signal));
    res.write(': connected\n\n');
  }

  private login(res: ServerResponse, url: URL): void {
    const blockedMs = this.auth.loginBlockedForMs();
    if (blockedMs > 0) {
      const seconds = Math.ceil(blockedMs / 1000);
      this.opts.logger.warn({ seconds }, 'console login closed after too many wrong tokens');
      res.setHeader('retry-after', String(seconds));
      return this.send(
        res,
        429,
        loginRequiredPage(`Too many wrong login links were tried; try again in ${seconds} s.`),
      );
    }
    const session = this.auth.login(url.searchParams.get('token') ?? undefined);
    if (!session) {
      return this.send(
        res,
        401,
        loginRequiredPage('This login link was already used, or it is not the right one.'),
      );
    }
    res.setHeader('set-cookie', this.auth.cookieFor(session));
    this.redirect(res, '/');
  }

  private async get(res: ServerResponse, url: URL, session: Session): Promise<void> {
    const admin = this.opts.admin;
    const q = (name: string) => (url.searchParams.get(name) ?? '').trim().slice(0, 200);
    try {
      switch (url.pathname) {
        case '/':
          return this.send(res, 200, hostsPage(session, (await admin.slaveHealth()).slaves, this.now()));
        case '/fragments/hosts':
          return this.send(res, 200, hostsFragment((await admin.slaveHealth()).slaves, this.now()));
        case '/hosts/revoke': {
          const host = (await admin.slaveHealth()).slaves.find((s) => s.host_id === q('host'));
          if (!host) throw new HttpProblem(404, `No paired host named "${q('host')}".`);
          return this.send(res, 200, revokeConfirmPage(session, host));
        }
        case '/pairing': {
          const [{ pending }, info] = await Promise.all([admin.pending(), admin.info()]);
          return this.send(res, 200, pairingPage(session, pending, this.now(), info.pair_command));
        }
        case '/fragments/pending': {
          const { pending } = await admin.pending();
          if (q('v') === pendingVersion(pending)) return this.sendText(res, 204, '');
          return this.send(res, 200, pendingFragment(session, pending, this.now()));
        }
        case '/servers':
          return this.send(res, 200, serversPage(session, await admin.servers()));
        case '/catalogue':
          return this.send(res, 200, cataloguePage(session, await this.catalogue(), q('q')));
        case '/catalogue/try': {
          const tool = (await admin.tools(false)).tools.find((t) => t.name === q('name'));
          if (!tool) throw new HttpProblem(404, `No tool named "${q('name')}".`);
          return this.send(res, 200, tryToolPage(session, tool, '{}'));
        }
        case '/events':
          return this.events(res);
        case '/fragments/audit': {
          const filters = {
            agent: q('agent') || undefined,
            host: q('host') || undefined,
            outcome: q('outcome') || undefined,
          };
          const audit = await admin.audit({ ...filters, limit: 100 });
          return this.send(res, 200, auditFragment(audit.events, filters));
        }
        case '/activity': {
          const filters = {
            agent: q('agent') || undefined,
            host: q('host') || undefined,
            outcome: q('outcome') || undefined,
          };
          const [{ agents }, audit] = await Promise.all([
            admin.agents(),
            admin.audit({ ...filters, limit: 100 }),
          ]);
          return this.send(res, 200, activityPage(session, agents, audit.events, filters));
        }
        default:
          throw new HttpProblem(404, 'There is no such page.');
      }
    } catch (err) {
      return this.failed(res, err, session);
    }
  }

  private async post(
    res: ServerResponse,
    path: string,
    form: URLSearchParams,
    session: Session,
  ): Promise<void> {
    const admin = this.opts.admin;
    const field = (name: string) => (form.get(name) ?? '').trim();
    const back = (to: string, kind: 'ok' | 'error', text: string) => {
      session.flash = { kind, text };
      this.redirect(res, to);
    };
    try {
      switch (path) {
        case '/logout':
          this.auth.logout(session);
          res.setHeader('set-cookie', this.auth.clearCookie());
          return this.send(res, 200, loginRequiredPage('You logged out.'));
        case '/pairing/approve': {
          const code = field('code');
          if (!code) return back('/pairing', 'error', 'Type the code the slave shows to approve it.');
          try {
            const r = await admin.approve(field('host'), code);
            return back(
              '/pairing',
              'ok',
              `Approved ${r.host_id}: certificate ${r.cert_serial}, valid until ${r.expires_at}.`,
            );
          } catch (err) {
            return back('/pairing', 'error', messageOf(err));
          }
        }
        case '/pairing/deny': {
          // The code is never sent to the page: find the request by host and key fingerprint.
          const request = (await admin.pending()).pending.find(
            (p) => p.host_id === field('host') && p.key_fingerprint === field('fingerprint'),
          );
          if (!request) return back('/pairing', 'error', `No pending request of ${field('host')} any more.`);
          try {
            await admin.deny(request.host_id, request.pairing_code);
            return back('/pairing', 'ok', `Denied the pairing request of ${request.host_id}.`);
          } catch (err) {
            return back('/pairing', 'error', messageOf(err));
          }
        }
        case '/hosts/revoke': {
          const host = field('host');
          try {
            const reason = field('reason').slice(0, 200);
            await admin.revoke({ host_id: host }, reason || 'revoked from the web console');
            return back('/', 'ok', `Revoked ${host}: its link is cut and it must pair again.`);
          } catch (err) {
            return back('/', 'error', messageOf(err));
          }
        }
        case '/servers/reload':
          try {
            return back('/servers', 'ok', reloadSummary(await admin.reload()));
          } catch (err) {
            return back('/servers', 'error', messageOf(err));
          }
        case '/catalogue/call':
          return await this.callTool(res, session, field('name'), form.get('args') ?? '');
        default:
          throw new HttpProblem(404, 'There is no such action.');
      }
    } catch (err) {
      return this.failed(res, err, session);
    }
  }

  private async callTool(
    res: ServerResponse,
    session: Session,
    name: string,
    argsText: string,
  ): Promise<void> {
    const tool = (await this.opts.admin.tools(false)).tools.find((t) => t.name === name);
    if (!tool) throw new HttpProblem(404, `No tool named "${name}".`);
    let args: unknown;
    try {
      args = argsText.trim() ? JSON.parse(argsText) : {};
    } catch (err) {
      return this.send(
        res,
        400,
        tryToolPage(session, tool, argsText, { error: `The arguments are not JSON: ${messageOf(err)}` }),
      );
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      return this.send(
        res,
        400,
        tryToolPage(session, tool, argsText, { error: 'The arguments must be a JSON object.' }),
      );
    }
    try {
      const result = await this.opts.admin.callTool({ name, arguments: args as Record<string, unknown> });
      return this.send(res, 200, tryToolPage(session, tool, argsText, { result }));
    } catch (err) {
      return this.send(res, 200, tryToolPage(session, tool, argsText, { error: messageOf(err) }));
    }
  }

  private async catalogue(): Promise<Catalogue> {
    const admin = this.opts.admin;
    const [tools, prompts, resources] = await Promise.all([
      admin.tools(false),
      admin.prompts(false),
      admin.resources(false),
    ]);
    return { tools: tools.tools, prompts: prompts.prompts, resources: resources.resources };
  }

  private failed(res: ServerResponse, err: unknown, session: Session): void {
    if (err instanceof HttpProblem) {
      return this.send(
        res,
        err.status,
        errorPage(err.status === 404 ? 'Not found' : 'Refused', err.message, session),
      );
    }
    if (err instanceof DianeError)
      return this.send(res, 502, errorPage('The daemon did not answer', err.message, session));
    throw err;
  }

  private redirect(res: ServerResponse, to: string): void {
    res.writeHead(303, { ...SECURITY_HEADERS, location: to, 'content-length': 0 });
    res.end();
  }

  private send(res: ServerResponse, status: number, page: SafeHtml): void {
    const body = page.text;
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private sendText(res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    });
    res.end(status === 204 ? undefined : text);
  }

  private sendAsset(res: ServerResponse, type: string, body: string | Buffer): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': type,
      'content-length': Buffer.byteLength(body),
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** An `application/x-www-form-urlencoded` body, at most 1 MiB. */
export function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      req.resume();
      reject(new HttpProblem(415, 'Forms only (application/x-www-form-urlencoded).'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) {
        reject(new HttpProblem(413, 'The form is too large.'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}
