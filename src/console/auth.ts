import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A session not used for this long is gone: the operator runs `diane console` again. */
export const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
/** More live sessions than this and the least recently used one is dropped. */
export const MAX_SESSIONS = 16;
/**
 * Wrong login tokens accepted per window; past that `/login` answers 429 until the oldest
 * failure leaves the window. The token (256 bits, spent by its first use) cannot be guessed;
 * this keeps a local process from even trying, and tells the operator something is.
 */
export const MAX_LOGIN_FAILURES = 10;
export const LOGIN_FAILURE_WINDOW_MS = 60_000;

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Equality of two secrets in time that does not depend on where they differ. */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface Session {
  readonly id: string;
  /** Sent back with every state-changing request (hidden form field or `X-CSRF-Token`). */
  readonly csrf: string;
  lastUsed: number;
  /** A one-shot message for the next page (post/redirect/get). */
  flash?: { kind: 'ok' | 'error'; text: string };
}

/**
 * The console's authentication: one login token, good once (like Jupyter's, but spent by its
 * first use), which opens a session held in memory and named by a random cookie.
 */
export class ConsoleAuth {
  private loginToken: string | undefined;
  private readonly sessions = new Map<string, Session>();
  /** When the recent wrong login attempts were made, oldest first. */
  private failures: number[] = [];

  constructor(
    /** Set by the server once its port is known, so that two consoles do not share a cookie. */
    public cookieName: string,
    private readonly now: () => number = Date.now,
    loginToken: string = randomToken(),
  ) {
    this.loginToken = loginToken;
  }

  /** The login token while it is unspent (printed once by `diane console`). */
  get pendingLoginToken(): string | undefined {
    return this.loginToken;
  }

  /** How long `/login` stays closed after too many wrong tokens; 0 while it is open. */
  loginBlockedForMs(): number {
    const now = this.now();
    this.failures = this.failures.filter((at) => now - at < LOGIN_FAILURE_WINDOW_MS);
    if (this.failures.length < MAX_LOGIN_FAILURES) return 0;
    return (this.failures[0] as number) + LOGIN_FAILURE_WINDOW_MS - now;
  }

  /**
   * Spends the login token: the right one opens a session, exactly once; anything else, none.
   * While too many wrong tokens were tried (`loginBlockedForMs`), not even the right one.
   */
  login(token: string | undefined): Session | undefined {
    if (this.loginBlockedForMs() > 0) return undefined;
    if (this.loginToken === undefined || !sameSecret(token, this.loginToken)) {
      this.failures.push(this.now());
      return undefined;
    }
    this.loginToken = undefined;
    this.prune();
    while (this.sessions.size >= MAX_SESSIONS) {
      const oldest = [...this.sessions.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
      this.sessions.delete(oldest.id);
    }
    const session: Session = { id: randomToken(), csrf: randomToken(), lastUsed: this.now() };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session of a request's `Cookie` header, its idle clock restarted; else undefined. */
  session(cookieHeader: string | undefined): Session | undefined {
    const id = parseCookies(cookieHeader)[this.cookieName];
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const now = this.now();
    if (now - session.lastUsed > SESSION_IDLE_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    session.lastUsed = now;
    return session;
  }

  logout(session: Session): void {
    this.sessions.delete(session.id);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** `Set-Cookie` of a session: not readable by scripts, never sent from another site. */
  cookieFor(session: Session): string {
    return `${this.cookieName}=${session.id}; Path=/; HttpOnly; SameSite=Strict`;
  }

  clearCookie(): string {
    return `${this.cookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (now - s.lastUsed > SESSION_IDLE_MS) this.sessions.delete(id);
  }
}

/** The CSRF check of a state-changing request: the session's token, from the form or a header. */
export function csrfValid(session: Session, formToken: string | undefined, headerToken: unknown): boolean {
  const given = typeof headerToken === 'string' && headerToken ? headerToken : formToken;
  return sameSecret(given, session.csrf);
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name && !(name in out)) out[name] = part.slice(eq + 1).trim();
  }
  return out;
}

/** `localhost`, `127.x.y.z`, `::1`: the only names the console answers to. */
export function isLoopbackName(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The name and port of a `Host` header (`127.0.0.1:8080`, `[::1]:8080`, `localhost`). */
export function splitHost(header: string): { name: string; port: string } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(header.trim());
  if (!m) return undefined;
  return { name: m[1]!, port: m[2] ?? '80' };
}

/**
 * DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reaches the console,
 * but its requests carry `Host: evil.example`. Only loopback names on the console's own port pass.
 */
export function hostAllowed(header: string | undefined, port: number): boolean {
  if (!header) return false;
  const host = splitHost(header);
  return host !== undefined && isLoopbackName(host.name) && Number(host.port) === port;
}

/**
 * A state-changing request must come from the console's own pages: an `Origin` of
 * `http://<loopback name>:<port>` that names the same host as `Host`. Browsers send `Origin`
 * with every POST; a request without one is refused.
 */
export function originAllowed(
  origin: string | undefined,
  hostHeader: string | undefined,
  port: number,
): boolean {
  if (!origin || !hostAllowed(hostHeader, port)) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' || url.pathname !== '/' || url.username || url.password) return false;
  if (origin !== url.origin) return false;
  return url.host.toLowerCase() === hostHeader!.trim().toLowerCase() && hostAllowed(url.host, port);
}
