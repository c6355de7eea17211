import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { DianeError, ExitCode } from '../errors.js';
import { formatDuration, parseDuration } from './duration.js';
import { exposurePatternProblem, MAX_PATTERNS } from './glob.js';
import { parseJsonFile } from './parseJson.js';

/**
 * Server names become the prefix of exposed tool names (`<server>_<tool>`), so `_` and `.` are
 * excluded: the first `_` of an exposed name always ends the server part.
 */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/**
 * The owner's consent for one server: `expose` (absent: everything) and `hide` (wins), glob
 * patterns over the server's own tool names, prompt names and resource URIs. The full rules are
 * on `Exposure` in `mcp/exposure.ts`. They are applied on a reload without restarting the server.
 */
export interface ExposureFields {
  expose?: string[];
  hide?: string[];
}

export interface StdioServerConfig extends ExposureFields {
  kind: 'stdio';
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  enabled: boolean;
  /** Per-call timeout; undefined means the global default. */
  timeoutMs?: number;
}

export interface HttpServerConfig extends ExposureFields {
  /** `http` is Streamable HTTP; `sse` is the legacy HTTP+SSE transport. */
  kind: 'http' | 'sse';
  name: string;
  url: string;
  headers: Record<string, string>;
  enabled: boolean;
  /** Per-call timeout; undefined means the global default. */
  timeoutMs?: number;
}

export type UpstreamServerConfig = StdioServerConfig | HttpServerConfig;

export interface ConfigIssue {
  server?: string;
  /** Dotted path of the offending field, e.g. `mcpServers.github.args.1`. */
  path: string;
  message: string;
}

export interface McpServersConfig {
  servers: UpstreamServerConfig[];
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

/** Hand-edited configuration has no business being this large; refusing it bounds memory. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Node's timers overflow (and fire at once) above 2^31-1 ms. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

const TYPE_TO_KIND = {
  stdio: 'stdio',
  http: 'http',
  'streamable-http': 'http',
  sse: 'sse',
} as const;

type ServerKind = (typeof TYPE_TO_KIND)[keyof typeof TYPE_TO_KIND];

const timeoutField = z
  .unknown()
  .transform((value, ctx): number => {
    const ms = timeoutToMs(value);
    if (typeof ms === 'string') {
      ctx.issues.push({ code: 'custom', message: ms, input: value });
      return z.NEVER;
    }
    return ms;
  })
  .optional();

/** Returns the timeout in ms, or a message saying what is wrong with it. */
function timeoutToMs(value: unknown): number | string {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    try {
      ms = parseDuration(value);
    } catch (err) {
      return (err as Error).message;
    }
  } else {
    return 'must be a number of milliseconds or a duration string such as "30s"';
  }
  if (!Number.isFinite(ms) || ms <= 0) return 'must be greater than zero';
  if (ms > MAX_TIMEOUT_MS) return `must be at most ${formatDuration(MAX_TIMEOUT_MS)}`;
  return Math.round(ms);
}

const httpUrl = z.string().refine(isHttpUrl, { message: 'must be an http:// or https:// URL' });

function isHttpUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const { protocol } = new URL(text);
  return protocol === 'http:' || protocol === 'https:';
}

const exposurePattern = z.string().superRefine((pattern, ctx) => {
  const problem = exposurePatternProblem(pattern);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const patternList = z
  .array(exposurePattern)
  .max(MAX_PATTERNS, { message: `must have at most ${MAX_PATTERNS} patterns` });

const commonFields = {
  type: z.unknown().optional(),
  enabled: z.boolean().default(true),
  timeout: timeoutField,
  expose: patternList.optional(),
  hide: patternList.optional(),
};

const stdioEntry = z.object({
  ...commonFields,
  command: z.string().min(1, 'must not be empty'),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().min(1, 'must not be empty').optional(),
});

const remoteEntry = z.object({
  ...commonFields,
  url: httpUrl,
  headers: z.record(z.string(), z.string()).default({}),
});

const ENTRY_SCHEMAS = { stdio: stdioEntry, http: remoteEntry, sse: remoteEntry } as const;

/** zod's defaults ("Invalid input: expected string, received undefined") read poorly in a config error. */
const friendlyMessages: z.core.$ZodErrorMap = (issue) => {
  if (issue.code !== 'invalid_type') return undefined;
  if (issue.input === undefined) return 'required';
  const expected: Record<string, string> = {
    string: 'a string',
    number: 'a number',
    boolean: 'true or false',
    array: 'an array',
    record: 'an object',
    object: 'an object',
  };
  return `must be ${expected[issue.expected] ?? issue.expected}`;
};

/**
 * Parses the `mcpServers` format Claude Desktop and Cursor use. Each entry stands alone: a bad
 * one is reported in `errors` and left out, the others are still returned. Only a file that is
 * not usable at all (bad JSON, wrong top-level shape) throws.
 */
export function parseMcpServersConfig(jsonText: string, source: string): McpServersConfig {
  const document = parseJsonFile(jsonText, source);
  if (!isPlainObject(document)) {
    throw configError(`${source}: the top level must be a JSON object like {"mcpServers": {...}}`);
  }
  const result: McpServersConfig = { servers: [], errors: [], warnings: [] };
  for (const key of Object.keys(document)) {
    if (key !== 'mcpServers') result.warnings.push({ path: key, message: 'unknown field, ignored' });
  }
  const entries = document.mcpServers;
  if (!isPlainObject(entries)) {
    throw configError(`${source}: "mcpServers" must be an object that maps server names to their settings`);
  }
  for (const [name, entry] of Object.entries(entries)) {
    const server = parseEntry(name, entry, result);
    if (server) result.servers.push(server);
  }
  return result;
}

function parseEntry(
  name: string,
  entry: unknown,
  result: McpServersConfig,
): UpstreamServerConfig | undefined {
  const base = `mcpServers.${name}`;
  const fail = (path: string, message: string): undefined => {
    result.errors.push({ server: name, path, message });
    return undefined;
  };
  if (!isValidName(name)) {
    return fail(
      base,
      `invalid server name ${JSON.stringify(name)}: use 1-32 lowercase letters, digits and hyphens, ` +
        'starting and ending with a letter or digit',
    );
  }
  if (!isPlainObject(entry)) return fail(base, 'must be an object');

  const kind = entryKind(entry);
  if (typeof kind === 'object') return fail(`${base}${kind.field ? `.${kind.field}` : ''}`, kind.message);

  const schema = ENTRY_SCHEMAS[kind];
  for (const key of Object.keys(entry)) {
    if (key in schema.shape) continue;
    const message =
      key in stdioEntry.shape || key in remoteEntry.shape
        ? `not used by ${kind === 'stdio' ? 'stdio' : 'remote'} servers, ignored`
        : 'unknown field, ignored';
    result.warnings.push({ server: name, path: `${base}.${key}`, message });
  }

  const parsed = schema.safeParse(entry, { error: friendlyMessages });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      fail([base, ...issue.path.map(String)].join('.'), issue.message);
    }
    return undefined;
  }
  return toServerConfig(name, kind, parsed.data);
}

function entryKind(entry: Record<string, unknown>): ServerKind | { field?: string; message: string } {
  const { type } = entry;
  if (type !== undefined) {
    if (typeof type === 'string' && Object.hasOwn(TYPE_TO_KIND, type)) {
      return TYPE_TO_KIND[type as keyof typeof TYPE_TO_KIND];
    }
    return { field: 'type', message: 'must be one of "stdio", "http", "streamable-http", "sse"' };
  }
  const hasCommand = entry.command !== undefined;
  const hasUrl = entry.url !== undefined;
  if (hasCommand && hasUrl) {
    return { message: 'has both "command" and "url": set "type" to say which one to use, or remove one' };
  }
  if (hasUrl) return 'http';
  if (hasCommand) return 'stdio';
  return { message: 'needs "command" (a local stdio server) or "url" (a remote server)' };
}

type StdioEntry = z.output<typeof stdioEntry>;
type RemoteEntry = z.output<typeof remoteEntry>;

function toServerConfig(
  name: string,
  kind: ServerKind,
  data: StdioEntry | RemoteEntry,
): UpstreamServerConfig {
  const common = {
    name,
    enabled: data.enabled,
    ...(data.timeout === undefined ? {} : { timeoutMs: data.timeout }),
    ...(data.expose === undefined ? {} : { expose: data.expose }),
    ...(data.hide === undefined ? {} : { hide: data.hide }),
  };
  if (kind === 'stdio') {
    const { command, args, env, cwd } = data as StdioEntry;
    return { kind, ...common, command, args, env, ...(cwd === undefined ? {} : { cwd }) };
  }
  const { url, headers } = data as RemoteEntry;
  return { kind, ...common, url, headers };
}

/**
 * Reads and parses `mcp-servers.json`. A missing file is a master with no local servers, not an
 * error.
 */
export function loadMcpServersConfig(path: string): McpServersConfig {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { servers: [], errors: [], warnings: [] };
    throw configError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let text: string;
  try {
    const { size } = fstatSync(fd);
    if (size > MAX_CONFIG_BYTES) {
      throw configError(
        `${path} is ${size} bytes; the limit for an MCP servers file is ${MAX_CONFIG_BYTES} bytes`,
      );
    }
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof DianeError) throw err;
    throw configError(`cannot read ${path}: ${(err as Error).message}`);
  } finally {
    closeSync(fd);
  }
  return parseMcpServersConfig(text, path);
}

/**
 * A stable digest of everything that defines how a server runs, so a reload restarts only the
 * servers whose settings changed. `expose` and `hide` are not part of it: a new exposure applies
 * without a restart. Hashed rather than returned as JSON because env and headers often hold
 * secrets and fingerprints end up in logs.
 */
export function configFingerprint(server: UpstreamServerConfig): string {
  const { expose: _expose, hide: _hide, ...running } = server;
  return createHash('sha256').update(canonicalJson(running)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isPlainObject(value)) {
    const fields = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function configError(message: string): DianeError {
  return new DianeError(message, ExitCode.config, 'CONFIG_INVALID');
}

export const exampleMcpServersConfig = `{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/projects"]
    },
    "docs": {
      "type": "http",
      "url": "https://mcp.example.com/mcp",
      "headers": { "Authorization": "Bearer <token>" },
      "timeout": "30s"
    }
  }
}
`;
