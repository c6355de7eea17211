import type { Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import {
  CALL_TOOL,
  callToolArgs,
  definitionBytes,
  hostListing,
  LIST_HOSTS,
  listHostsArgs,
  listHostsResult,
  META_TOOLS,
  parseMetaArgs,
  renderHostListing,
  renderSearchResults,
  SEARCH_TOOLS,
  searchToolsArgs,
  searchToolsResult,
} from '../../src/mcp/discovery/metaTools.js';
import { type SearchResult, ToolIndex } from '../../src/mcp/discovery/toolIndex.js';
import { catalogueUpstreams, loadCatalogue } from '../helpers/discoveryCatalogue.js';

const result = (fields: Partial<SearchResult> = {}): SearchResult => ({
  name: 'laptop_filesystem_read_text_file',
  host: 'laptop',
  server: 'filesystem',
  title: 'Read Text File',
  description: 'Read the complete contents of a file.',
  inputSchema: {
    type: 'object',
    properties: {
      path: { type: 'string' },
      head: { type: 'number', description: 'If provided, returns only the first N lines of the file' },
      mode: { type: 'string', enum: ['text', 'lines'] },
      paths: { type: 'array', items: { type: 'string' } },
    },
    required: ['path'],
  },
  online: true,
  score: 12.5,
  ...fields,
});

describe('meta-tool definitions', () => {
  it('are the three tools, each with an object input schema and a description that says how to proceed', () => {
    expect(META_TOOLS.map((t) => t.name)).toEqual([SEARCH_TOOLS, CALL_TOOL, LIST_HOSTS]);
    for (const tool of META_TOOLS) {
      expect(tool.inputSchema.type).toBe('object');
      expect(tool.inputSchema.additionalProperties).toBe(false);
      expect(tool.title).toBeTruthy();
      expect(tool.description!.length).toBeLessThan(600);
    }
    const [search, call] = META_TOOLS as [Tool, Tool, Tool];
    expect(search.description).toMatch(/search first/);
    expect(search.description).toMatch(/call_tool/);
    expect(call.description).toMatch(/search_tools/);
    expect(search.inputSchema.required).toEqual(['query']);
    expect(call.inputSchema.required).toEqual(['name']);
  });

  it('announce the limits the argument schemas enforce', () => {
    const props = META_TOOLS[0]!.inputSchema.properties as Record<string, Record<string, unknown>>;
    expect(props.query).toMatchObject({ minLength: 1, maxLength: 500 });
    expect(props.limit).toMatchObject({ minimum: 1, maximum: 50, default: 10 });
    expect(parseMetaArgs(searchToolsArgs, SEARCH_TOOLS, { query: 'x'.repeat(500), limit: 50 }).ok).toBe(true);
    expect(parseMetaArgs(searchToolsArgs, SEARCH_TOOLS, { query: 'x'.repeat(501) }).ok).toBe(false);
    expect(parseMetaArgs(searchToolsArgs, SEARCH_TOOLS, { query: 'x', limit: 51 }).ok).toBe(false);
  });

  it('keep discovery mode small next to the full catalogue', () => {
    const all = catalogueUpstreams(loadCatalogue()).flatMap((u) => u.entries);
    const full: Tool[] = all.map((e) => ({
      name: e.name,
      ...(e.title ? { title: e.title } : {}),
      ...(e.description ? { description: e.description } : {}),
      inputSchema: e.inputSchema as Tool['inputSchema'],
    }));
    expect(definitionBytes(META_TOOLS)).toBeLessThan(4096);
    expect(definitionBytes(full)).toBeGreaterThan(20 * definitionBytes(META_TOOLS));
  });
});

describe('meta-tool arguments', () => {
  const search = (args: unknown) => parseMetaArgs(searchToolsArgs, SEARCH_TOOLS, args);

  it('accept a query with defaults, trimmed', () => {
    expect(search({ query: '  read a file ' })).toEqual({
      ok: true,
      value: { query: 'read a file', limit: 10 },
    });
    expect(search({ query: 'x', host: 'db1', server: 'postgres', limit: 3 })).toEqual({
      ok: true,
      value: { query: 'x', host: 'db1', server: 'postgres', limit: 3 },
    });
  });

  it.each([
    [{}, 'Invalid arguments for search_tools: query is required'],
    [undefined, 'Invalid arguments for search_tools: query is required'],
    [{ query: '   ' }, 'Invalid arguments for search_tools: query must not be empty'],
    [{ query: 'x'.repeat(501) }, 'Invalid arguments for search_tools: query must be at most 500 characters'],
    [{ query: 'x', limit: 0 }, 'Invalid arguments for search_tools: limit must be at least 1'],
    [{ query: 'x', limit: 51 }, 'Invalid arguments for search_tools: limit must be at most 50'],
    [{ query: 'x', limit: 2.5 }, 'Invalid arguments for search_tools: limit must be an integer'],
    [{ query: 'x', limit: '5' }, 'Invalid arguments for search_tools: limit must be a number'],
    [{ query: 42 }, 'Invalid arguments for search_tools: query must be a string'],
    [{ query: 'x', host: '' }, 'Invalid arguments for search_tools: host must not be empty'],
    [{ query: 'x', sort: 'name' }, 'Invalid arguments for search_tools: unknown argument "sort"'],
    ['read', 'Invalid arguments for search_tools: the arguments must be an object'],
    [{ limit: 99 }, 'Invalid arguments for search_tools: query is required; limit must be at most 50'],
  ])('refuse %j with a clear message', (args, message) => {
    expect(search(args)).toEqual({ ok: false, error: message });
  });

  it('call_tool takes a name and an optional arguments object', () => {
    const call = (args: unknown) => parseMetaArgs(callToolArgs, CALL_TOOL, args);
    expect(call({ name: 'time_get_current_time', arguments: { timezone: 'Asia/Tokyo' } })).toEqual({
      ok: true,
      value: { name: 'time_get_current_time', arguments: { timezone: 'Asia/Tokyo' } },
    });
    expect(call({ name: 'fetch_fetch' })).toEqual({ ok: true, value: { name: 'fetch_fetch' } });
    expect(call({})).toEqual({ ok: false, error: 'Invalid arguments for call_tool: name is required' });
    expect(call({ name: 'x', arguments: [1] })).toEqual({
      ok: false,
      error: 'Invalid arguments for call_tool: arguments must be an object',
    });
    expect(call({ name: 'x', args: {} })).toEqual({
      ok: false,
      error: 'Invalid arguments for call_tool: unknown argument "args"',
    });
  });

  it('list_hosts takes nothing', () => {
    expect(parseMetaArgs(listHostsArgs, LIST_HOSTS, undefined)).toEqual({ ok: true, value: {} });
    expect(parseMetaArgs(listHostsArgs, LIST_HOSTS, {})).toEqual({ ok: true, value: {} });
    expect(parseMetaArgs(listHostsArgs, LIST_HOSTS, { host: 'x' }).ok).toBe(false);
  });
});

describe('renderSearchResults', () => {
  it('says what to do when nothing matches', () => {
    expect(renderSearchResults([])).toMatch(/^No tool matches\..*list_hosts/);
  });

  it('gives each tool its callable name, place, description and arguments', () => {
    const text = renderSearchResults([
      result({ alsoOn: ['db1_filesystem_read_text_file'], alsoOnCount: 3 }),
      result({
        name: 'time_get_current_time',
        host: 'local',
        server: 'time',
        title: undefined,
        description: 'Get current time',
        inputSchema: { type: 'object' },
        online: false,
      }),
    ]);
    expect(text).toBe(
      [
        '2 tools, best match first. Run one with call_tool {"name": <name>, "arguments": {...}}.',
        '',
        '1. laptop_filesystem_read_text_file — Read Text File (host laptop, server filesystem)',
        '   Read the complete contents of a file.',
        '   arguments:',
        '     path (string, required)',
        '     head (number): If provided, returns only the first N lines of the file',
        '     mode ("text" | "lines")',
        '     paths (array of string)',
        '   also on other hosts as: db1_filesystem_read_text_file (and 2 more)',
        '',
        '2. time_get_current_time (local, server time, OFFLINE)',
        '   Get current time',
        '   arguments: none',
      ].join('\n'),
    );
  });

  it('lists at most ten arguments', () => {
    const properties = Object.fromEntries(
      Array.from({ length: 14 }, (_, i) => [`a${i}`, { type: 'string' }]),
    );
    const text = renderSearchResults([result({ inputSchema: { type: 'object', properties } })]);
    expect(text).toContain('a9 (string)');
    expect(text).not.toContain('a10 (string)');
    expect(text).toContain('… 4 more in inputSchema');
  });

  it('searchToolsResult carries the same results as structured content', () => {
    const index = new ToolIndex();
    for (const { key, entries } of catalogueUpstreams(loadCatalogue())) index.upsertUpstream(key, entries);
    const results = index.search({ query: 'what time is it in Tokyo', limit: 3 });
    const call = searchToolsResult(results);
    expect(call.structuredContent).toEqual({ results });
    expect(call.content).toEqual([{ type: 'text', text: renderSearchResults(results) }]);
    expect(JSON.parse(JSON.stringify(call.structuredContent))).toEqual({ results });
  });
});

describe('list_hosts', () => {
  const servers = [
    { host: 'laptop', server: 'git', online: false, toolCount: 12 },
    { host: 'buildbox', server: 'shell', online: true, toolCount: 6 },
    { host: 'local', server: 'time', online: true, toolCount: 2 },
    { host: 'buildbox', server: 'docker', online: true, toolCount: 13 },
    { host: 'local', server: 'github', online: false, toolCount: 25 },
  ];

  it('groups servers by host, local first, with totals and state', () => {
    expect(hostListing(servers)).toEqual({
      hosts: [
        {
          host: 'local',
          online: true,
          toolCount: 27,
          servers: [
            { server: 'github', online: false, toolCount: 25 },
            { server: 'time', online: true, toolCount: 2 },
          ],
        },
        {
          host: 'buildbox',
          online: true,
          toolCount: 19,
          servers: [
            { server: 'docker', online: true, toolCount: 13 },
            { server: 'shell', online: true, toolCount: 6 },
          ],
        },
        {
          host: 'laptop',
          online: false,
          toolCount: 12,
          servers: [{ server: 'git', online: false, toolCount: 12 }],
        },
      ],
    });
  });

  it('renders as text, marking what differs from its host', () => {
    expect(renderHostListing(hostListing(servers))).toBe(
      [
        'local: online, 27 tools',
        '  github: 25 tools, OFFLINE',
        '  time: 2 tools',
        'buildbox: online, 19 tools',
        '  docker: 13 tools',
        '  shell: 6 tools',
        'laptop: OFFLINE, 12 tools',
        '  git: 12 tools',
      ].join('\n'),
    );
    expect(renderHostListing(hostListing([]))).toBe('No hosts or servers with tools are connected.');
    const call = listHostsResult(servers);
    expect(call.structuredContent).toEqual(hostListing(servers));
  });
});

describe('definitionBytes', () => {
  it('is the UTF-8 length of a tools/list result', () => {
    const tools: Tool[] = [{ name: 'é', inputSchema: { type: 'object' } }];
    expect(definitionBytes(tools)).toBe(
      Buffer.byteLength('{"tools":[{"name":"é","inputSchema":{"type":"object"}}]}'),
    );
    expect(definitionBytes([])).toBe('{"tools":[]}'.length);
  });
});
