import { describe, expect, it } from 'vitest';
import {
  ConsoleAuth,
  csrfValid,
  hostAllowed,
  LOGIN_FAILURE_WINDOW_MS,
  MAX_LOGIN_FAILURES,
  MAX_SESSIONS,
  originAllowed,
  parseCookies,
  randomToken,
  SESSION_IDLE_MS,
  sameSecret,
} from '../../src/console/auth.js';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('console login token and sessions', () => {
  it('tokens are 32 random bytes in base64url', () => {
    const a = randomToken();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(randomToken()).not.toBe(a);
  });

  it('the right login token opens one session, once; a wrong or reused one opens none', () => {
    const auth = new ConsoleAuth('c', Date.now, 'the-token');
    expect(auth.login('wrong')).toBeUndefined();
    expect(auth.login(undefined)).toBeUndefined();
    expect(auth.login('the-token-and-more')).toBeUndefined();
    const session = auth.login('the-token');
    expect(session).toBeDefined();
    expect(auth.pendingLoginToken).toBeUndefined();
    expect(auth.login('the-token')).toBeUndefined();
    expect(session!.id).not.toBe(session!.csrf);
  });

  it('closes login for a minute after ten wrong tokens, even to the right one', () => {
    const c = clock();
    const auth = new ConsoleAuth('c', c.now, 'the-token');
    for (let i = 0; i < MAX_LOGIN_FAILURES - 1; i++) {
      expect(auth.login(`wrong-${i}`)).toBeUndefined();
      c.advance(1000);
    }
    expect(auth.loginBlockedForMs()).toBe(0);
    expect(auth.login('wrong-last')).toBeUndefined();
    // The first failure was 9 s ago: it leaves the window in 51 s.
    expect(auth.loginBlockedForMs()).toBe(LOGIN_FAILURE_WINDOW_MS - 9000);
    expect(auth.login('the-token')).toBeUndefined();
    expect(auth.pendingLoginToken).toBe('the-token');
    c.advance(LOGIN_FAILURE_WINDOW_MS - 9000 - 1);
    expect(auth.loginBlockedForMs()).toBe(1);
    c.advance(1);
    expect(auth.loginBlockedForMs()).toBe(0);
    expect(auth.login('the-token')).toBeDefined();
  });

  it('a session is found by its cookie and ends after 12 h idle, not before', () => {
    const c = clock();
    const auth = new ConsoleAuth('diane_console_1', c.now, 't');
    const s = auth.login('t')!;
    const cookie = `other=1; diane_console_1=${s.id}`;
    expect(auth.session(cookie)).toBe(s);
    c.advance(SESSION_IDLE_MS - 1);
    expect(auth.session(cookie)).toBe(s); // use restarts the idle clock
    c.advance(SESSION_IDLE_MS - 1);
    expect(auth.session(cookie)).toBe(s);
    c.advance(SESSION_IDLE_MS + 1);
    expect(auth.session(cookie)).toBeUndefined();
    expect(auth.sessionCount).toBe(0);
  });

  it('unknown cookies, other cookie names and a logged-out session are refused', () => {
    const auth = new ConsoleAuth('c', Date.now, 't');
    const s = auth.login('t')!;
    expect(auth.session(undefined)).toBeUndefined();
    expect(auth.session('c=nope')).toBeUndefined();
    expect(auth.session(`d=${s.id}`)).toBeUndefined();
    auth.logout(s);
    expect(auth.session(`c=${s.id}`)).toBeUndefined();
  });

  it('the session cookie is HttpOnly and SameSite=Strict', () => {
    const auth = new ConsoleAuth('c', Date.now, 't');
    const s = auth.login('t')!;
    expect(auth.cookieFor(s)).toBe(`c=${s.id}; Path=/; HttpOnly; SameSite=Strict`);
    expect(auth.clearCookie()).toContain('Max-Age=0');
  });

  it('keeps at most MAX_SESSIONS sessions, dropping the least recently used', () => {
    const c = clock();
    const sessions = [];
    let auth = new ConsoleAuth('c', c.now, 't0');
    // One login per token: a fresh auth with the same store is not possible, so log in through
    // a test seam: a new token for each round.
    for (let i = 0; i <= MAX_SESSIONS; i++) {
      (auth as unknown as { loginToken: string }).loginToken = `t${i}`;
      sessions.push(auth.login(`t${i}`)!);
      c.advance(1);
    }
    expect(auth.sessionCount).toBe(MAX_SESSIONS);
    expect(auth.session(`c=${sessions[0]!.id}`)).toBeUndefined();
    expect(auth.session(`c=${sessions[MAX_SESSIONS]!.id}`)).toBeDefined();
    auth = new ConsoleAuth('c', c.now, 'x');
    expect(auth.sessionCount).toBe(0);
  });

  it('parses cookies, first one of a name wins', () => {
    expect(parseCookies('a=1; b = 2;c=x=y; a=3')).toEqual({ a: '1', b: '2', c: 'x=y' });
    expect(parseCookies(undefined)).toEqual({});
  });
});

describe('console CSRF, Host and Origin checks', () => {
  it('CSRF: the session token from the form or the header, nothing else', () => {
    const auth = new ConsoleAuth('c', Date.now, 't');
    const s = auth.login('t')!;
    expect(csrfValid(s, s.csrf, undefined)).toBe(true);
    expect(csrfValid(s, undefined, s.csrf)).toBe(true);
    expect(csrfValid(s, undefined, undefined)).toBe(false);
    expect(csrfValid(s, '', '')).toBe(false);
    expect(csrfValid(s, `${s.csrf}x`, undefined)).toBe(false);
    expect(csrfValid(s, s.csrf, 'wrong')).toBe(false); // a header, when sent, is what counts
    expect(sameSecret('a', 'a')).toBe(true);
    expect(sameSecret(undefined, 'a')).toBe(false);
  });

  it.each([
    ['127.0.0.1:8080', true],
    ['localhost:8080', true],
    ['LOCALHOST:8080', true],
    ['[::1]:8080', true],
    ['127.1.2.3:8080', true],
    ['127.0.0.1:8081', false],
    ['127.0.0.1', false],
    ['evil.example:8080', false],
    ['127.0.0.1.evil.example:8080', false],
    ['10.0.0.1:8080', false],
    ['', false],
  ])('Host %s on port 8080: %s', (host, ok) => {
    expect(hostAllowed(host, 8080)).toBe(ok);
  });

  it.each([
    ['http://127.0.0.1:8080', '127.0.0.1:8080', true],
    ['http://localhost:8080', 'localhost:8080', true],
    ['http://[::1]:8080', '[::1]:8080', true],
    ['http://localhost:8080', '127.0.0.1:8080', false],
    ['null', '127.0.0.1:8080', false],
    ['https://127.0.0.1:8080', '127.0.0.1:8080', false],
    ['http://evil.example', '127.0.0.1:8080', false],
    ['http://127.0.0.1:8081', '127.0.0.1:8080', false],
    ['http://127.0.0.1:8080/path', '127.0.0.1:8080', false],
    ['http://evil.example:8080', 'evil.example:8080', false],
  ])('Origin %s with Host %s: %s', (origin, host, ok) => {
    expect(originAllowed(origin, host, 8080)).toBe(ok);
  });

  it('a missing Origin is refused', () => {
    expect(originAllowed(undefined, '127.0.0.1:8080', 8080)).toBe(false);
  });
});
