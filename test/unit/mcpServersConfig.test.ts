import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  configFingerprint,
  exampleMcpServersConfig,
  isValidName,
  loadMcpServersConfig,
  MAX_CONFIG_BYTES,
  parseMcpServersConfig,
  type UpstreamServerConfig,
} from '../../src/config/mcpServers.js';
import { DianeError, ExitCode } from '../../src/errors.js';

const parse = (config: unknown) => parseMcpServersConfig(JSON.stringify(config), 'mcp-servers.json');

function thrownBy(fn: () => unknown): DianeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DianeError);
    return err as DianeError;
  }
  throw new Error('expected a DianeError, nothing was thrown');
}

describe('parseMcpServersConfig', () => {
  it('reads a stdio server and fills in defaults', () => {
    const result = parse({ mcpServers: { filesystem: { command: 'npx', args: ['-y', 'pkg'] } } });
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.servers).toEqual([
      { kind: 'stdio', name: 'filesystem', command: 'npx', args: ['-y', 'pkg'], env: {}, enabled: true },
    ]);
  });

  it('reads every field of a stdio server', () => {
    const result = parse({
      mcpServers: {
        git: {
          type: 'stdio',
          command: 'git-mcp',
          env: { A: 'b' },
          cwd: '/tmp',
          enabled: false,
          timeout: 1500,
        },
      },
    });
    expect(result.errors).toEqual([]);
    expect(result.servers).toEqual([
      {
        kind: 'stdio',
        name: 'git',
        command: 'git-mcp',
        args: [],
        env: { A: 'b' },
        cwd: '/tmp',
        enabled: false,
        timeoutMs: 1500,
      },
    ]);
  });

  it('reads Streamable HTTP servers, with or without a type, and the streamable-http alias', () => {
    const result = parse({
      mcpServers: {
        plain: { url: 'https://a.example/mcp' },
        typed: { type: 'http', url: 'http://127.0.0.1:9000/mcp', headers: { Authorization: 'Bearer x' } },
        alias: { type: 'streamable-http', url: 'https://b.example/mcp' },
      },
    });
    expect(result.errors).toEqual([]);
    expect(result.servers).toEqual([
      { kind: 'http', name: 'plain', url: 'https://a.example/mcp', headers: {}, enabled: true },
      {
        kind: 'http',
        name: 'typed',
        url: 'http://127.0.0.1:9000/mcp',
        headers: { Authorization: 'Bearer x' },
        enabled: true,
      },
      { kind: 'http', name: 'alias', url: 'https://b.example/mcp', headers: {}, enabled: true },
    ]);
  });

  it('reads a legacy SSE server', () => {
    const result = parse({
      mcpServers: { old: { type: 'sse', url: 'https://c.example/sse', timeout: '2m' } },
    });
    expect(result.errors).toEqual([]);
    expect(result.servers).toEqual([
      {
        kind: 'sse',
        name: 'old',
        url: 'https://c.example/sse',
        headers: {},
        enabled: true,
        timeoutMs: 120_000,
      },
    ]);
  });

  it('takes a timeout as a number of ms or as a duration string', () => {
    const result = parse({
      mcpServers: {
        a: { command: 'x', timeout: 2500 },
        b: { command: 'x', timeout: '1.5s' },
        c: { command: 'x' },
      },
    });
    expect(result.errors).toEqual([]);
    expect(result.servers.map((s) => s.timeoutMs)).toEqual([2500, 1500, undefined]);
  });

  it('reports bad timeouts at their path', () => {
    const result = parse({
      mcpServers: {
        a: { command: 'x', timeout: 'soon' },
        b: { command: 'x', timeout: 0 },
        c: { command: 'x', timeout: true },
        d: { command: 'x', timeout: '30d' },
      },
    });
    expect(result.servers).toEqual([]);
    expect(result.errors.map((e) => e.path)).toEqual([
      'mcpServers.a.timeout',
      'mcpServers.b.timeout',
      'mcpServers.c.timeout',
      'mcpServers.d.timeout',
    ]);
    expect(result.errors[0]?.message).toContain('invalid duration "soon"');
  });

  it('reads expose and hide, for local and remote servers alike', () => {
    const result = parse({
      mcpServers: {
        filesystem: { command: 'fs', expose: ['read_*', 'resource:file:///pub/*'], hide: ['*secret*'] },
        docs: { url: 'https://d.example/mcp', hide: ['tool:delete_*'] },
        none: { command: 'x', expose: [] },
      },
    });
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.servers.map((s) => [s.name, s.expose, s.hide])).toEqual([
      ['filesystem', ['read_*', 'resource:file:///pub/*'], ['*secret*']],
      ['docs', undefined, ['tool:delete_*']],
      ['none', [], undefined],
    ]);
  });

  it('reports bad expose and hide patterns at their path', () => {
    const result = parse({
      mcpServers: {
        a: { command: 'x', expose: 'read_*' },
        b: { command: 'x', hide: ['ok', ''] },
        c: { command: 'x', expose: ['has space'] },
        d: { command: 'x', hide: ['tool:'] },
        e: { command: 'x', expose: [7] },
        f: { command: 'x', hide: ['x'.repeat(513)] },
        g: { command: 'x', expose: Array.from({ length: 257 }, (_, i) => `t${i}`) },
        ok: { command: 'x', hide: ['*'] },
      },
    });
    expect(result.servers.map((s) => s.name)).toEqual(['ok']);
    expect(result.errors.map((e) => [e.path, e.message])).toEqual([
      ['mcpServers.a.expose', 'must be an array'],
      ['mcpServers.b.hide.1', 'must not be empty'],
      ['mcpServers.c.expose.0', 'may use only printable ASCII characters, without spaces'],
      ['mcpServers.d.hide.0', '"tool:" must be followed by a name, URI or glob'],
      ['mcpServers.e.expose.0', 'must be a string'],
      ['mcpServers.f.hide.0', 'must be at most 512 characters'],
      ['mcpServers.g.expose', 'must have at most 256 patterns'],
    ]);
  });

  it('reports a bad name for that entry only', () => {
    const result = parse({ mcpServers: { Bad_Name: { command: 'x' }, good: { command: 'y' } } });
    expect(result.servers.map((s) => s.name)).toEqual(['good']);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ server: 'Bad_Name', path: 'mcpServers.Bad_Name' });
    expect(result.errors[0]?.message).toContain('invalid server name "Bad_Name"');
  });

  it('names the path of a bad field while the good servers still load', () => {
    const result = parse({
      mcpServers: {
        github: { command: 'gh-mcp', args: ['ok', 42] },
        remote: { url: 'ftp://example.com' },
        envy: { command: 'x', env: { TOKEN: 7 } },
        fine: { command: 'fine' },
        hollow: {},
        list: [],
      },
    });
    expect(result.servers.map((s) => s.name)).toEqual(['fine']);
    expect(result.errors).toEqual([
      { server: 'github', path: 'mcpServers.github.args.1', message: 'must be a string' },
      { server: 'remote', path: 'mcpServers.remote.url', message: 'must be an http:// or https:// URL' },
      { server: 'envy', path: 'mcpServers.envy.env.TOKEN', message: 'must be a string' },
      {
        server: 'hollow',
        path: 'mcpServers.hollow',
        message: 'needs "command" (a local stdio server) or "url" (a remote server)',
      },
      { server: 'list', path: 'mcpServers.list', message: 'must be an object' },
    ]);
  });

  it('reports a missing command, an unknown type and an ambiguous entry', () => {
    const result = parse({
      mcpServers: {
        a: { type: 'stdio' },
        b: { type: 'websocket', url: 'https://x.example' },
        c: { command: 'x', url: 'https://x.example' },
      },
    });
    expect(result.servers).toEqual([]);
    expect(result.errors.map((e) => [e.path, e.message])).toEqual([
      ['mcpServers.a.command', 'required'],
      ['mcpServers.b.type', 'must be one of "stdio", "http", "streamable-http", "sse"'],
      ['mcpServers.c', 'has both "command" and "url": set "type" to say which one to use, or remove one'],
    ]);
  });

  it('warns about unknown keys and still loads the server', () => {
    const result = parse({
      globalShortcut: 'Ctrl+Space',
      mcpServers: { foo: { command: 'x', bar: 1, headers: { A: 'b' } } },
    });
    expect(result.errors).toEqual([]);
    expect(result.servers.map((s) => s.name)).toEqual(['foo']);
    expect(result.warnings).toEqual([
      { path: 'globalShortcut', message: 'unknown field, ignored' },
      { server: 'foo', path: 'mcpServers.foo.bar', message: 'unknown field, ignored' },
      { server: 'foo', path: 'mcpServers.foo.headers', message: 'not used by stdio servers, ignored' },
    ]);
  });

  it('throws a config error with line and column for invalid JSON', () => {
    const err = thrownBy(() =>
      parseMcpServersConfig('{\n  "mcpServers": {\n    "a": 1,\n  }\n}', '/x/mcp.json'),
    );
    expect(err.exitCode).toBe(ExitCode.config);
    expect(err.message).toMatch(/^\/x\/mcp\.json: invalid JSON at line 4, column 3: /);
  });

  it('throws for an empty file and for a wrong top-level shape', () => {
    expect(thrownBy(() => parseMcpServersConfig('', 'f.json')).message).toMatch(/^f\.json: invalid JSON/);
    expect(thrownBy(() => parseMcpServersConfig('[]', 'f.json')).message).toContain(
      'top level must be a JSON object',
    );
    expect(thrownBy(() => parseMcpServersConfig('{}', 'f.json')).message).toContain(
      '"mcpServers" must be an object',
    );
    const err = thrownBy(() => parseMcpServersConfig('{"mcpServers": []}', 'f.json'));
    expect(err.exitCode).toBe(ExitCode.config);
  });

  it('accepts a byte-order mark', () => {
    const result = parseMcpServersConfig('\uFEFF{"mcpServers": {"a": {"command": "x"}}}', 'f.json');
    expect(result.servers).toHaveLength(1);
  });

  it('parses its own example without issues', () => {
    const result = parseMcpServersConfig(exampleMcpServersConfig, 'example');
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.servers.map((s) => s.kind)).toEqual(['stdio', 'http']);
    expect(exampleMcpServersConfig).toContain('@modelcontextprotocol/server-filesystem');
  });
});

describe('isValidName', () => {
  it('follows the host_id rule', () => {
    for (const ok of ['a', 'a1', 'my-server', 'x'.repeat(32)]) expect(isValidName(ok)).toBe(true);
    for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a.b', 'x'.repeat(33), '__proto__']) {
      expect(isValidName(bad)).toBe(false);
    }
  });
});

describe('configFingerprint', () => {
  const base: UpstreamServerConfig = {
    kind: 'stdio',
    name: 'a',
    command: 'x',
    args: ['1'],
    env: { A: '1', B: '2' },
    enabled: true,
  };

  it('ignores key order and sees every change', () => {
    const reordered: UpstreamServerConfig = { ...base, env: { B: '2', A: '1' } };
    expect(configFingerprint(reordered)).toBe(configFingerprint(base));
    expect(configFingerprint({ ...base, args: ['2'] })).not.toBe(configFingerprint(base));
    expect(configFingerprint({ ...base, timeoutMs: 5 })).not.toBe(configFingerprint(base));
    expect(configFingerprint({ ...base, enabled: false })).not.toBe(configFingerprint(base));
  });

  it('leaves expose and hide out: a reload applies them without a restart', () => {
    expect(configFingerprint({ ...base, expose: ['read_*'], hide: ['x'] })).toBe(configFingerprint(base));
  });

  it('does not reveal secrets', () => {
    expect(configFingerprint({ ...base, env: { TOKEN: 'hunter2' } })).not.toContain('hunter2');
  });
});

describe('loadMcpServersConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'diane-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('treats a missing file as no servers', () => {
    expect(loadMcpServersConfig(join(dir, 'mcp-servers.json'))).toEqual({
      servers: [],
      errors: [],
      warnings: [],
    });
  });

  it('loads a file and names it in whole-file errors', () => {
    const path = join(dir, 'mcp-servers.json');
    writeFileSync(path, JSON.stringify({ mcpServers: { a: { command: 'x' } } }));
    expect(loadMcpServersConfig(path).servers.map((s) => s.name)).toEqual(['a']);
    writeFileSync(path, '{ nope');
    expect(thrownBy(() => loadMcpServersConfig(path)).message).toContain(`${path}: invalid JSON`);
  });

  it('refuses a file larger than 1 MiB', () => {
    const path = join(dir, 'mcp-servers.json');
    writeFileSync(path, `{"mcpServers": {}}${' '.repeat(MAX_CONFIG_BYTES)}`);
    const err = thrownBy(() => loadMcpServersConfig(path));
    expect(err.exitCode).toBe(ExitCode.config);
    expect(err.message).toContain('limit');
  });

  it('throws a config error for a path it cannot read', () => {
    const err = thrownBy(() => loadMcpServersConfig(dir));
    expect(err.exitCode).toBe(ExitCode.config);
    expect(err.message).toContain(`cannot read ${dir}`);
  });
});
