import { describe, expect, it } from 'vitest';
import {
  isSecretKey,
  REDACTED,
  type RedactionLimits,
  redactArguments,
  TOO_DEEP,
  TRUNCATED_KEY,
} from '../../src/audit/index.js';

const R = REDACTED;

describe('isSecretKey', () => {
  it.each([
    ['password', true],
    ['PASSWORD', true],
    ['db_password', true],
    ['passwd', true],
    ['passphrase', true],
    ['clientSecret', true],
    ['client-secret', true],
    ['token', true],
    ['accessToken', true],
    ['refresh_token', true],
    ['api_key', true],
    ['apiKey', true],
    ['X-Api-Key', true],
    ['APIKEY', true],
    ['aws_access_key_id', true],
    ['private_key', true],
    ['privateKey', true],
    ['Authorization', true],
    ['proxy-authorization', true],
    ['auth', true],
    ['basic_auth', true],
    ['authHeader', true],
    ['cookie', true],
    ['Set-Cookie', true],
    ['credentials', true],
    ['session', true],
    ['sessionId', true],
    ['bearer', true],
    ['pwd', true],
    ['jwt', true],
    ['csrf_token', true],
    ['otp', true],
    // Over-redaction the trail accepts: a key that merely contains a fragment.
    ['maxTokens', true],
    // Not secrets.
    ['author', false],
    ['authority', false],
    ['path', false],
    ['query', false],
    ['keyword', false],
    ['key', false],
    ['name', false],
    ['passenger', false],
    ['compass', false],
    ['', false],
  ])('%j -> %s', (key, secret) => {
    expect(isSecretKey(key)).toBe(secret);
  });
});

describe('redactArguments', () => {
  it.each<[string, unknown, unknown]>([
    [
      'plain values pass',
      { path: '/tmp/x', n: 3, ok: true, none: null },
      { path: '/tmp/x', n: 3, ok: true, none: null },
    ],
    ['a secret key at the top', { user: 'jo', password: 'hunter2' }, { user: 'jo', password: R }],
    ['any case', { PassWord: 'x', API_KEY: 'y' }, { PassWord: R, API_KEY: R }],
    [
      'at any depth, in arrays too',
      { a: { b: [{ c: { token: 'x', keep: 1 } }] } },
      { a: { b: [{ c: { token: R, keep: 1 } }] } },
    ],
    [
      'whatever the value (object, number)',
      { secret: { nested: 1 }, pin_token: 1234 },
      { secret: R, pin_token: R },
    ],
    [
      'headers as name/value pairs',
      {
        headers: [
          { name: 'Authorization', value: 'xyz' },
          { name: 'Accept', value: 'json' },
        ],
      },
      {
        headers: [
          { name: 'Authorization', value: R },
          { name: 'Accept', value: 'json' },
        ],
      },
    ],
    [
      'a bearer value under an innocent key',
      { h: 'Bearer abc.def', b: 'basic dXNlcjpwdw==' },
      { h: R, b: R },
    ],
    ['a JWT under an innocent key', { x: 'eyJhbGciOi.eyJzdWIiOi.sig' }, { x: R }],
    ['a sentence mentioning bearer is kept', { x: 'the bearer of this' }, { x: 'the bearer of this' }],
    ['top-level scalars', 'hello', 'hello'],
    ['top-level arrays', [1, 'a', null], [1, 'a', null]],
    ['undefined becomes null', undefined, null],
    ['non-finite numbers become null', { a: Number.NaN, b: Number.POSITIVE_INFINITY }, { a: null, b: null }],
    ['functions are left out', { f: () => 1, a: 1 }, { a: 1 }],
    ['bigints become strings', { n: 10n }, { n: '10' }],
  ])('%s', (_, input, expected) => {
    expect(JSON.parse(redactArguments(input))).toEqual(expected);
  });

  const small: RedactionLimits = { maxBytes: 200, maxDepth: 3, maxStringChars: 50 };

  it('cuts nesting at maxDepth', () => {
    const deep = { a: { b: { c: { d: { e: 1 } } } } };
    expect(JSON.parse(redactArguments(deep, small))).toEqual({ a: { b: { c: TOO_DEEP } } });
  });

  it('cuts long strings and says by how much', () => {
    const out = JSON.parse(redactArguments({ s: 'x'.repeat(120) }, small)) as { s: string };
    expect(out.s).toBe(`${'x'.repeat(50)}…[+70 chars]`);
  });

  it('never splits a surrogate pair', () => {
    const out = JSON.parse(redactArguments({ s: `${'x'.repeat(49)}😀😀` }, small)) as { s: string };
    expect(out.s).toBe(`${'x'.repeat(49)}…[+4 chars]`);
  });

  it('keeps the output near maxBytes and valid JSON, however large or escaped the input', () => {
    const huge = {
      items: Array.from({ length: 100_000 }, (_, i) => ({ i, text: `item ${i}` })),
      escapes: '\u0001'.repeat(10_000),
      more: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i])),
    };
    const started = Date.now();
    const text = redactArguments(huge, { maxBytes: 4096, maxDepth: 8, maxStringChars: 1024 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(text.length).toBeLessThan(4096 + 200);
    const out = JSON.parse(text) as { items: unknown[]; escapes?: string; more?: Record<string, unknown> };
    expect(out.items.at(-1)).toMatch(/^\[truncated: \d+ more items\]$/);
    expect(out[TRUNCATED_KEY as keyof typeof out]).toBe('more keys left out');

    const escaped = redactArguments({ s: '"'.repeat(5000) }, small);
    expect(escaped.length).toBeLessThan(200 + 100);
    expect(JSON.parse(escaped).s).toMatch(/^"+…\[\+\d+ chars\]$/);
  });

  it('keeps a "__proto__" key as data', () => {
    const input = JSON.parse('{"__proto__": {"password": "x"}, "a": 1}');
    expect(redactArguments(input)).toBe('{"__proto__":{"password":"[redacted]"},"a":1}');
  });

  it('survives a cycle (cut by depth)', () => {
    const a: Record<string, unknown> = { name: 'a' };
    a.self = a;
    expect(JSON.parse(redactArguments(a, small))).toEqual({
      name: 'a',
      self: { name: 'a', self: { name: 'a', self: TOO_DEEP } },
    });
  });
});
