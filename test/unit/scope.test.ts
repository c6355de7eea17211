import { describe, expect, it } from 'vitest';
import { compileGlob, MAX_PATTERN_LENGTH, MAX_PATTERNS } from '../../src/config/glob.js';
import {
  type EntryKind,
  LOCAL_HOST,
  Scope,
  ScopePatternError,
  scopePatternProblem,
  scopeSpecSchema,
} from '../../src/mcp/scope.js';
import { RESERVED_HOST_IDS } from '../../src/pairing/hostId.js';

describe('compileGlob', () => {
  it.each([
    // glob, text, matches
    ['read_file', 'read_file', true],
    ['read_file', 'read_files', false],
    ['read_file', 'xread_file', false],
    ['read_*', 'read_file', true],
    ['read_*', 'read_', true],
    ['read_*', 'rea', false],
    ['*_file', 'read_file', true],
    ['*_file', 'read_file_x', false],
    ['*secret*', 'my_secret_tool', true],
    ['*secret*', 'secret', true],
    ['*secret*', 'secre', false],
    ['*', '', true],
    ['**', 'anything', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*b*c', 'abcb', false],
    ['ab*ba', 'aba', false],
    ['ab*ba', 'abba', true],
    ['*a*a*a*b', 'a'.repeat(5000), false],
    // Nothing but `*` is special: regex and other glob syntax is literal.
    ['a.c', 'abc', false],
    ['a.c', 'a.c', true],
    ['a?c', 'abc', false],
    ['[ab]', 'a', false],
    ['[ab]', '[ab]', true],
    ['(x)+', '(x)+', true],
    ['x\\*', 'x\\yz', true],
    ['diane://ws/fs/file:///home/*', 'diane://ws/fs/file:///home/me/a.txt', true],
    ['diane://ws/fs/file:///home/*', 'diane://ws/fs/file:///etc/passwd', false],
  ])('%s against %s: %s', (glob, text, matches) => {
    expect(compileGlob(glob)(text)).toBe(matches);
  });

  it('is case-sensitive', () => {
    expect(compileGlob('Read*')('read_file')).toBe(false);
  });

  it('stays fast on hostile input (no backtracking)', () => {
    const match = compileGlob(`${'*a'.repeat(40)}*b`);
    const started = Date.now();
    for (let i = 0; i < 100; i++) expect(match('a'.repeat(10_000))).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('Scope: matching', () => {
  const ws = 'workstation';
  const cases: [string, { allow: string[]; deny?: string[] }, EntryKind, string, string, boolean][] = [
    [
      'exact tool name',
      { allow: ['workstation_fs_read_file'] },
      'tool',
      'workstation_fs_read_file',
      ws,
      true,
    ],
    ['other tool', { allow: ['workstation_fs_read_file'] }, 'tool', 'workstation_fs_write_file', ws, false],
    ['glob over tools', { allow: ['workstation_fs_*'] }, 'tool', 'workstation_fs_write_file', ws, true],
    ['unprefixed applies to prompts', { allow: ['workstation_*'] }, 'prompt', 'workstation_fs_p', ws, true],
    ['tool: is tools only', { allow: ['tool:*'] }, 'prompt', 'workstation_fs_p', ws, false],
    ['tool: allows tools', { allow: ['tool:*'] }, 'tool', 'workstation_fs_x', ws, true],
    ['prompt: allows prompts', { allow: ['prompt:*_p'] }, 'prompt', 'workstation_fs_p', ws, true],
    [
      'resource: by Diane URI',
      { allow: ['resource:diane://workstation/fs/file:///home/*'] },
      'resource',
      'diane://workstation/fs/file:///home/me/a',
      ws,
      true,
    ],
    [
      'resource outside the folder',
      { allow: ['resource:diane://workstation/fs/file:///home/*'] },
      'resource',
      'diane://workstation/fs/file:///etc/passwd',
      ws,
      false,
    ],
    ['resource: not a tool', { allow: ['resource:*'] }, 'tool', 'workstation_fs_x', ws, false],
    ['host: every kind', { allow: ['host:workstation'] }, 'resource', 'diane://workstation/x/y:z', ws, true],
    ['host: other host', { allow: ['host:workstation'] }, 'tool', 'laptop_fs_x', 'laptop', false],
    ['host glob', { allow: ['host:work*'] }, 'tool', 'workstation_fs_x', ws, true],
    ['host: local', { allow: [`host:${LOCAL_HOST}`] }, 'tool', 'github_search', LOCAL_HOST, true],
    ['host: not by name', { allow: ['host:workstation'] }, 'tool', 'workstation_x', 'laptop', false],
    ['empty allow: nothing', { allow: [] }, 'tool', 'workstation_fs_x', ws, false],
    ['deny wins', { allow: ['*'], deny: ['*_delete_*'] }, 'tool', 'ws_fs_delete_file', ws, false],
    ['deny spares others', { allow: ['*'], deny: ['*_delete_*'] }, 'tool', 'ws_fs_read_file', ws, true],
    ['deny a host', { allow: ['*'], deny: ['host:laptop'] }, 'tool', 'laptop_fs_x', 'laptop', false],
    ['deny a kind', { allow: ['host:*'], deny: ['resource:*'] }, 'resource', 'diane://ws/a/b:c', ws, false],
    ['deny of another kind', { allow: ['host:*'], deny: ['resource:*'] }, 'tool', 'ws_a_b', ws, true],
    ['deny beats exact allow', { allow: ['ws_a_b'], deny: ['ws_a_b'] }, 'tool', 'ws_a_b', ws, false],
  ];
  it.each(cases)('%s', (_what, spec, kind, exposed, host, allowed) => {
    expect(Scope.parse(spec).allows(kind, exposed, host)).toBe(allowed);
  });

  it('has a full scope for the owner, and allow ["*"] without deny is the same', () => {
    const full = Scope.full();
    expect(full.isFull).toBe(true);
    expect(full).toBe(Scope.full());
    expect(full.allows('resource', 'diane://anything/x:y', 'anyhost')).toBe(true);
    expect(Scope.parse({ allow: ['*'] }).isFull).toBe(true);
    expect(Scope.parse({ allow: ['*'], deny: ['x'] }).isFull).toBe(false);
    expect(Scope.parse({ allow: ['tool:*'] }).isFull).toBe(false);
  });

  it('serializes back to its patterns', () => {
    expect(JSON.parse(JSON.stringify(Scope.parse({ allow: ['host:a'], deny: ['tool:x'] })))).toEqual({
      allow: ['host:a'],
      deny: ['tool:x'],
    });
  });

  it('names a local host no slave can take', () => {
    expect(RESERVED_HOST_IDS).toContain(LOCAL_HOST);
  });
});

describe('Scope: pattern checks', () => {
  it.each([
    ['', /must not be empty/],
    ['x'.repeat(MAX_PATTERN_LENGTH + 1), /at most 512 characters/],
    ['has space', /printable ASCII/],
    ['tab\there', /printable ASCII/],
    ['caf\u00e9', /printable ASCII/],
    ['\u202eevil', /printable ASCII/],
    ['tool:', /must be followed by a name or glob/],
    ['host:', /must be followed by a host name/],
    ['host:Work', /only a-z, 0-9/],
    ['host:a_b', /only a-z, 0-9/],
    ['tools:x', /unknown prefix "tools:"/],
    ['hosts:x', /unknown prefix "hosts:"/],
    ['tool:host:x', /unknown prefix "host:"/],
    ['resource:file:///etc/*', /unknown prefix "file:".*diane:\/\/ URI/],
  ])('refuses %j', (pattern, why) => {
    expect(scopePatternProblem(pattern)).toMatch(why);
    expect(() => Scope.parse({ allow: [pattern] })).toThrow(ScopePatternError);
    expect(() => Scope.parse({ allow: ['*'], deny: [pattern] })).toThrow(why);
  });

  it.each([
    '*',
    'workstation_*',
    'tool:*_read_*',
    'prompt:x',
    'resource:diane://ws/*',
    'diane://ws/fs/file:///x',
    'host:*',
    'host:ws-1',
    '*:x',
  ])('accepts %j', (pattern) => {
    expect(scopePatternProblem(pattern)).toBeUndefined();
  });

  it('refuses a non-string and too many patterns', () => {
    expect(scopePatternProblem(42)).toBe('must be a string');
    const many = Array.from({ length: MAX_PATTERNS + 1 }, (_, i) => `t${i}`);
    expect(() => Scope.parse({ allow: many })).toThrow('invalid scope: allow has 257 patterns; at most 256');
  });

  it('has a zod schema for requests: field paths and messages, deny optional', () => {
    expect(scopeSpecSchema.parse({ allow: ['host:a'] })).toEqual({ allow: ['host:a'], deny: [] });
    const bad = scopeSpecSchema.safeParse({ allow: ['ok', 'tools:x'], deny: [''] });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['allow.1', expect.stringMatching(/unknown prefix/)],
      ['deny.0', 'must not be empty'],
    ]);
    expect(scopeSpecSchema.safeParse({ allow: [], extra: 1 }).success).toBe(false);
  });
});
