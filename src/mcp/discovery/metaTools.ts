import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import { z } from 'zod';
import { oneLine, type SearchResult, type ServerSummary } from './toolIndex.js';

/**
 * The three tools an agent in discovery mode sees instead of the whole catalogue: it searches,
 * then calls what it found through `call_tool`. Definitions, argument schemas (zod, with the
 * limits the definitions announce) and the renderings of their results. Executing them is the
 * router's job.
 */

export const SEARCH_TOOLS = 'search_tools';
export const CALL_TOOL = 'call_tool';
export const LIST_HOSTS = 'list_hosts';

export const QUERY_MAX_CHARS = 500;
export const SEARCH_LIMIT_DEFAULT = 10;
export const SEARCH_LIMIT_MAX = 50;
/** Longest host, server or tool name accepted as an argument (real ones are far shorter). */
const NAME_MAX_CHARS = 256;
/** Arguments of a result listed in the text rendering; the structured result has them all. */
const TEXT_MAX_ARGUMENTS = 10;
const TEXT_ARGUMENT_CHARS = 80;

const resultItemSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'The name to pass to call_tool' },
    host: { type: 'string', description: 'The host it runs on ("local" for this machine)' },
    server: { type: 'string' },
    title: { type: 'string' },
    description: { type: 'string' },
    inputSchema: { type: 'object', description: 'JSON Schema of the arguments' },
    online: { type: 'boolean', description: 'false: its host is unreachable right now' },
    score: { type: 'number' },
    alsoOn: {
      type: 'array',
      items: { type: 'string' },
      description: 'The same tool on other hosts, under these names',
    },
    alsoOnCount: { type: 'integer', description: 'How many other hosts have it' },
  },
  required: ['name', 'host', 'server', 'description', 'inputSchema', 'online', 'score'],
} as const;

export const searchToolsTool: Tool = {
  name: SEARCH_TOOLS,
  title: 'Search tools',
  description:
    'Find tools by what they do. Many tools are available but not listed: search first, then run ' +
    'a result with call_tool. Describe the task in a few plain words ("read a file", "git diff", ' +
    '"current time in Tokyo"); naming a host in the query ("on buildbox") prefers its tools, and ' +
    'host/server restrict the search. Best match first; each result has the exact name to call ' +
    'and its input schema. A tool on several hosts is listed once, with the others in alsoOn.',
  inputSchema: {
    type: 'object',
    properties: {
      query: {
        type: 'string',
        minLength: 1,
        maxLength: QUERY_MAX_CHARS,
        description: 'What the tool should do, in plain words',
      },
      host: { type: 'string', description: 'Only tools on this host (see list_hosts)' },
      server: { type: 'string', description: 'Only tools of this server (see list_hosts)' },
      limit: {
        type: 'integer',
        minimum: 1,
        maximum: SEARCH_LIMIT_MAX,
        default: SEARCH_LIMIT_DEFAULT,
        description: 'Most results to return',
      },
    },
    required: ['query'],
    additionalProperties: false,
  },
  outputSchema: {
    type: 'object',
    properties: { results: { type: 'array', items: resultItemSchema } },
    required: ['results'],
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
};

export const callToolTool: Tool = {
  name: CALL_TOOL,
  title: 'Call a tool',
  description:
    'Run a tool found with search_tools. name: the exact name from a search result; arguments: ' +
    "an object that matches that result's inputSchema. Returns the tool's own result. Search " +
    'again rather than guessing a name.',
  inputSchema: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, description: 'The tool name from a search_tools result' },
      arguments: { type: 'object', description: "The tool's arguments, as its inputSchema describes" },
    },
    required: ['name'],
    additionalProperties: false,
  },
};

const hostItemSchema = {
  type: 'object',
  properties: {
    host: { type: 'string' },
    online: { type: 'boolean' },
    toolCount: { type: 'integer' },
    servers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          server: { type: 'string' },
          online: { type: 'boolean' },
          toolCount: { type: 'integer' },
        },
        required: ['server', 'online', 'toolCount'],
      },
    },
  },
  required: ['host', 'online', 'toolCount', 'servers'],
} as const;

export const listHostsTool: Tool = {
  name: LIST_HOSTS,
  title: 'List hosts',
  description:
    'List the hosts and servers whose tools you can search, whether each is online, and how many ' +
    'tools each has. "local" is this machine. Use search_tools to find a tool.',
  inputSchema: { type: 'object', properties: {}, additionalProperties: false },
  outputSchema: {
    type: 'object',
    properties: { hosts: { type: 'array', items: hostItemSchema } },
    required: ['hosts'],
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
};

/** What tools/list returns to an agent in discovery mode. */
export const META_TOOLS: readonly Tool[] = [searchToolsTool, callToolTool, listHostsTool];

/** In discovery mode these names are the meta-tools, whatever else is exposed. */
export function isMetaTool(name: string): boolean {
  return name === SEARCH_TOOLS || name === CALL_TOOL || name === LIST_HOSTS;
}

// ---------------------------------------------------------------------------------------------
// Arguments

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  record: 'an object',
};

/** zod's defaults read like a type checker; these read like an answer to a model. */
const errorMessages: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${EXPECTED[issue.expected] ?? issue.expected}`;
    case 'too_small':
      if (issue.origin === 'string') return `must not be empty`;
      return `must be at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters`;
      return `must be at most ${issue.maximum}`;
    case 'unrecognized_keys':
      return `unknown argument${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    default:
      return undefined;
  }
};

const nameArg = z.string().trim().min(1).max(NAME_MAX_CHARS);

export const searchToolsArgs = z.strictObject({
  query: z.string().trim().min(1).max(QUERY_MAX_CHARS),
  host: nameArg.optional(),
  server: nameArg.optional(),
  limit: z.number().int().min(1).max(SEARCH_LIMIT_MAX).default(SEARCH_LIMIT_DEFAULT),
});

export const callToolArgs = z.strictObject({
  name: nameArg,
  arguments: z.record(z.string(), z.unknown()).optional(),
});

export const listHostsArgs = z.strictObject({});

export type SearchToolsArgs = z.infer<typeof searchToolsArgs>;
export type CallToolArgs = z.infer<typeof callToolArgs>;

export type ParsedArgs<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Validates a meta-tool's arguments. The error names every offending argument, e.g.
 * `Invalid arguments for search_tools: limit must be at most 50; query is required`.
 */
export function parseMetaArgs<T>(schema: z.ZodType<T>, tool: string, args: unknown): ParsedArgs<T> {
  const result = schema.safeParse(args ?? {}, { error: errorMessages });
  if (result.success) return { ok: true, value: result.data };
  const problems = result.error.issues.map((issue) => {
    if (issue.path.length > 0) return `${issue.path.join('.')} ${issue.message}`;
    return issue.code === 'unrecognized_keys' ? issue.message : `the arguments ${issue.message}`;
  });
  return { ok: false, error: `Invalid arguments for ${tool}: ${problems.join('; ')}` };
}

// ---------------------------------------------------------------------------------------------
// Results

/**
 * The text of a search_tools result, for clients that ignore structured content: each tool's
 * name (what call_tool takes), where it runs, one line of description and its arguments.
 */
export function renderSearchResults(results: readonly SearchResult[]): string {
  if (results.length === 0) {
    return (
      'No tool matches. Try other words for what the tool does, fewer words, or list_hosts to see ' +
      'which hosts and servers are connected.'
    );
  }
  const lines = [
    `${results.length} tool${results.length === 1 ? '' : 's'}, best match first. Run one with ` +
      'call_tool {"name": <name>, "arguments": {...}}.',
  ];
  results.forEach((r, i) => {
    const where = `${r.host === 'local' ? 'local' : `host ${r.host}`}, server ${r.server}${r.online ? '' : ', OFFLINE'}`;
    lines.push('', `${i + 1}. ${r.name}${r.title ? ` — ${r.title}` : ''} (${where})`);
    if (r.description) lines.push(`   ${r.description}`);
    lines.push(...argumentLines(r.inputSchema).map((l) => `   ${l}`));
    if (r.alsoOn && r.alsoOn.length > 0) {
      const more = (r.alsoOnCount ?? r.alsoOn.length) - r.alsoOn.length;
      lines.push(`   also on other hosts as: ${r.alsoOn.join(', ')}${more > 0 ? ` (and ${more} more)` : ''}`);
    }
  });
  return lines.join('\n');
}

/** The CallToolResult of search_tools: structured results and their text rendering. */
export function searchToolsResult(results: readonly SearchResult[]): CallToolResult {
  return {
    content: [{ type: 'text', text: renderSearchResults(results) }],
    structuredContent: { results: results.map((r) => ({ ...r })) },
  };
}

function argumentLines(schema: unknown): string[] {
  const properties = isObject(schema) && isObject(schema.properties) ? schema.properties : undefined;
  if (!properties || Object.keys(properties).length === 0) return ['arguments: none'];
  const required = new Set(
    isObject(schema) && Array.isArray(schema.required)
      ? schema.required.filter((x) => typeof x === 'string')
      : [],
  );
  const names = Object.keys(properties);
  const lines = ['arguments:'];
  for (const name of names.slice(0, TEXT_MAX_ARGUMENTS)) {
    const prop = properties[name];
    const parts = [typeOf(prop)];
    if (required.has(name)) parts.push('required');
    const description = isObject(prop) && typeof prop.description === 'string' ? prop.description : '';
    lines.push(
      `  ${name} (${parts.join(', ')})${description ? `: ${oneLine(description, TEXT_ARGUMENT_CHARS)}` : ''}`,
    );
  }
  if (names.length > TEXT_MAX_ARGUMENTS)
    lines.push(`  … ${names.length - TEXT_MAX_ARGUMENTS} more in inputSchema`);
  return lines;
}

function typeOf(prop: unknown): string {
  if (!isObject(prop)) return 'any';
  if (Array.isArray(prop.enum) && prop.enum.length > 0 && prop.enum.length <= 6) {
    return prop.enum.map((v) => JSON.stringify(v)).join(' | ');
  }
  const type = Array.isArray(prop.type)
    ? prop.type.join(' | ')
    : typeof prop.type === 'string'
      ? prop.type
      : 'any';
  if (type === 'array' && isObject(prop.items) && typeof prop.items.type === 'string') {
    return `array of ${prop.items.type}`;
  }
  return type;
}

/** The structured result of list_hosts. */
export interface HostListing {
  hosts: {
    host: string;
    /** At least one of its servers is online. */
    online: boolean;
    toolCount: number;
    servers: { server: string; online: boolean; toolCount: number }[];
  }[];
}

/** Groups server lines by host, `local` first, then hosts and servers by name. */
export function hostListing(servers: readonly ServerSummary[]): HostListing {
  const byHost = new Map<string, HostListing['hosts'][number]>();
  for (const s of servers) {
    let host = byHost.get(s.host);
    if (!host) {
      host = { host: s.host, online: false, toolCount: 0, servers: [] };
      byHost.set(s.host, host);
    }
    host.servers.push({ server: s.server, online: s.online, toolCount: s.toolCount });
    host.toolCount += s.toolCount;
    host.online ||= s.online;
  }
  const hosts = [...byHost.values()].sort((a, b) => compareHosts(a.host, b.host));
  for (const h of hosts) h.servers.sort((a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0));
  return { hosts };
}

export function renderHostListing(listing: HostListing): string {
  if (listing.hosts.length === 0) return 'No hosts or servers with tools are connected.';
  const lines: string[] = [];
  for (const h of listing.hosts) {
    lines.push(
      `${h.host}: ${h.online ? 'online' : 'OFFLINE'}, ${h.toolCount} tool${h.toolCount === 1 ? '' : 's'}`,
    );
    for (const s of h.servers) {
      const state = s.online === h.online ? '' : s.online ? ', online' : ', OFFLINE';
      lines.push(`  ${s.server}: ${s.toolCount} tool${s.toolCount === 1 ? '' : 's'}${state}`);
    }
  }
  return lines.join('\n');
}

/** The CallToolResult of list_hosts. */
export function listHostsResult(servers: readonly ServerSummary[]): CallToolResult {
  const listing = hostListing(servers);
  return {
    content: [{ type: 'text', text: renderHostListing(listing) }],
    structuredContent: { hosts: listing.hosts },
  };
}

/**
 * Bytes of a tools/list result holding `tools`, as JSON: what a client puts in the model's
 * context when it lists every tool. Compare the full catalogue with `META_TOOLS`.
 */
export function definitionBytes(tools: readonly Tool[]): number {
  return Buffer.byteLength(JSON.stringify({ tools }), 'utf8');
}

function compareHosts(a: string, b: string): number {
  if (a === b) return 0;
  if (a === 'local') return -1;
  if (b === 'local') return 1;
  return a < b ? -1 : 1;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
