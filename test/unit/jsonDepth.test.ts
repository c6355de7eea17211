import { describe, expect, it } from 'vitest';
import { jsonDeeperThan } from '../../src/http/jsonDepth.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('jsonDeeperThan', () => {
  it('measures the nesting of objects and arrays', () => {
    expect(jsonDeeperThan(bytes('[[[]]]'), 3)).toBe(false);
    expect(jsonDeeperThan(bytes('[[[[]]]]'), 3)).toBe(true);
    expect(jsonDeeperThan(bytes('{"a":{"b":[1,{"c":2}]}}'), 4)).toBe(false);
    expect(jsonDeeperThan(bytes('{"a":{"b":[1,{"c":{}}]}}'), 4)).toBe(true);
    // Siblings do not add up.
    expect(jsonDeeperThan(bytes('[[],[],[],[],[]]'), 2)).toBe(false);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    expect(jsonDeeperThan(bytes('["[[[[[[", "\\"[[[[", "\\\\"]'), 1)).toBe(false);
    expect(jsonDeeperThan(bytes('["\\\\", [[]]]'), 2)).toBe(true);
  });

  it('scans a 100,000-deep body without recursion', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(jsonDeeperThan(bytes(deep), 128)).toBe(true);
  });
});
