/** How much of a call's arguments the audit trail keeps. */
export interface RedactionLimits {
  /** About this many characters of JSON at most; beyond, values are cut and marked. */
  maxBytes: number;
  /** Objects and arrays nested deeper than this are replaced by a marker. */
  maxDepth: number;
  /** Longest string value kept whole. */
  maxStringChars: number;
}

export const DEFAULT_REDACTION_LIMITS: RedactionLimits = {
  maxBytes: 4096,
  maxDepth: 8,
  maxStringChars: 1024,
};

export const REDACTED = '[redacted]';
export const TOO_DEEP = '[too deep]';
/** The key that marks an object cut short. */
export const TRUNCATED_KEY = '[truncated]';

/**
 * Key fragments that mark a secret wherever they appear in the key, once the key is lower-cased
 * and its separators dropped (`api_key`, `X-Api-Key` and `apiKey` all become `...apikey`). Some
 * keys that are not secrets match too (`maxTokens`): the trail errs on the side of hiding.
 */
const SECRET_FRAGMENTS = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'apikey',
  'accesskey',
  'privatekey',
  'authorization',
  'cookie',
  'credential',
  'session',
  'bearer',
];

/** Short fragments that mark a secret only as a whole word of the key (`auth`, not `author`). */
const SECRET_WORDS = new Set(['auth', 'pwd', 'pass', 'jwt', 'csrf', 'xsrf', 'otp']);

/** Keys of header-like pairs (`{name: 'Authorization', value: '...'}`): a secret name hides the value. */
const PAIR_NAME_KEYS = ['name', 'key', 'header'];
const PAIR_VALUE_KEY = 'value';

/** Values that are credentials whatever their key: an HTTP authorization value, a JWT. */
const SECRET_VALUE = /^\s*(?:(?:bearer|basic)\s+\S|eyJ[\w-]+\.eyJ[\w-]+\.)/i;

const MAX_KEY_CHARS = 256;

/** Whether a key (of any depth) names a secret, case-insensitively. */
export function isSecretKey(key: string): boolean {
  const words = key
    .slice(0, MAX_KEY_CHARS)
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  const compact = words.join('');
  return SECRET_FRAGMENTS.some((f) => compact.includes(f)) || words.some((w) => SECRET_WORDS.has(w));
}

/**
 * The JSON text the audit trail stores for a call's arguments: every value under a key that
 * looks like a secret (at any depth) replaced by "[redacted]", nesting cut at `maxDepth`, long
 * strings cut, and, once about `maxBytes` of output is spent, the remaining items and keys
 * replaced by a marker. The result is always valid JSON. The walk stops where the budget ends, so
 * a huge argument costs no more than a small one.
 */
export function redactArguments(value: unknown, limits: RedactionLimits = DEFAULT_REDACTION_LIMITS): string {
  const budget = { left: limits.maxBytes };
  const result = walk(value, 0, budget, limits);
  return JSON.stringify(result === undefined ? null : result);
}

interface Budget {
  left: number;
}

function walk(value: unknown, depth: number, budget: Budget, limits: RedactionLimits): unknown {
  switch (typeof value) {
    case 'string':
      return SECRET_VALUE.test(value.slice(0, 64)) ? spend(budget, REDACTED) : clip(value, budget, limits);
    case 'number':
      return spend(budget, Number.isFinite(value) ? value : null);
    case 'boolean':
      return spend(budget, value);
    case 'bigint':
      return spend(budget, String(value));
    case 'object':
      break;
    default:
      // undefined, functions, symbols: what JSON.stringify leaves out.
      return undefined;
  }
  if (value === null) return spend(budget, null);
  if (depth >= limits.maxDepth) return spend(budget, TOO_DEEP);
  budget.left -= 2;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      if (budget.left <= 0) {
        out.push(spend(budget, `[truncated: ${value.length - i} more items]`));
        break;
      }
      const item = walk(value[i], depth + 1, budget, limits);
      out.push(item === undefined ? null : item);
      budget.left -= 1;
    }
    return out;
  }
  const source = value as Record<string, unknown>;
  const secretPair = PAIR_NAME_KEYS.some((k) => {
    const name = Object.hasOwn(source, k) ? source[k] : undefined;
    return typeof name === 'string' && isSecretKey(name);
  });
  // No prototype: a "__proto__" key of the input stays an ordinary key.
  const out: Record<string, unknown> = Object.create(null);
  for (const key in source) {
    if (!Object.hasOwn(source, key)) continue;
    if (budget.left <= 0) {
      out[TRUNCATED_KEY] = spend(budget, 'more keys left out');
      break;
    }
    const shownKey = key.length > MAX_KEY_CHARS ? `${key.slice(0, MAX_KEY_CHARS)}…` : key;
    budget.left -= JSON.stringify(shownKey).length + 2;
    const secret = isSecretKey(key) || (secretPair && key === PAIR_VALUE_KEY);
    const item = secret ? spend(budget, REDACTED) : walk(source[key], depth + 1, budget, limits);
    if (item !== undefined) out[shownKey] = item;
  }
  return out;
}

function spend<T>(budget: Budget, value: T): T {
  budget.left -= JSON.stringify(value).length;
  return value;
}

/** A string cut to the limit and to what is left of the budget, with how much was cut. */
function clip(text: string, budget: Budget, limits: RedactionLimits): string {
  const room = Math.max(0, Math.min(limits.maxStringChars, budget.left));
  if (text.length <= room && JSON.stringify(text).length <= room + 2) return spend(budget, text);
  // Escapes (control characters, quotes) can make a string up to six times longer in JSON.
  let end = pairSafe(text, Math.min(text.length, room));
  while (end > 0 && JSON.stringify(text.slice(0, end)).length > room + 2) end = pairSafe(text, end >> 1);
  return spend(budget, `${text.slice(0, end)}…[+${text.length - end} chars]`);
}

/** `end`, or one less where it would split a surrogate pair. */
function pairSafe(text: string, end: number): number {
  return end > 0 && /[\uD800-\uDBFF]/.test(text.charAt(end - 1)) ? end - 1 : end;
}
