import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ToolEntry } from '../../src/mcp/discovery/toolIndex.js';
import type { JsonObject } from '../../src/mcp/upstream.js';
import { repoRoot } from './home.js';

/** A tool definition as a server lists it. */
export interface FixtureTool {
  name: string;
  title?: string;
  description?: string;
  inputSchema: JsonObject;
}

export interface Catalogue {
  servers: Record<string, FixtureTool[]>;
  hosts: Record<string, string[]>;
}

export interface RankingQuery {
  query: string;
  expected: string[];
  note?: string;
}

const dir = join(repoRoot, 'test', 'fixtures', 'discovery');

export function loadCatalogue(): Catalogue {
  return JSON.parse(readFileSync(join(dir, 'catalogue.json'), 'utf8')) as Catalogue;
}

export function loadQueries(): RankingQuery[] {
  return (JSON.parse(readFileSync(join(dir, 'queries.json'), 'utf8')) as { queries: RankingQuery[] }).queries;
}

/** The exposed name the router gives a tool: `<server>_<tool>` locally, `<host>_<server>_<tool>` on a slave. */
export function exposedName(host: string, server: string, tool: string): string {
  return host === 'local' ? `${server}_${tool}` : `${host}_${server}_${tool}`;
}

export function toEntry(host: string, server: string, tool: FixtureTool): ToolEntry {
  return {
    name: exposedName(host, server, tool.name),
    host,
    server,
    originalName: tool.name,
    ...(tool.title ? { title: tool.title } : {}),
    ...(tool.description ? { description: tool.description } : {}),
    inputSchema: tool.inputSchema,
  };
}

/**
 * The catalogue as the lead's wiring will feed it: one upstream per local server (key = server
 * name) and one per slave host (key = host id, all its servers).
 */
export function catalogueUpstreams(catalogue: Catalogue): { key: string; entries: ToolEntry[] }[] {
  const out: { key: string; entries: ToolEntry[] }[] = [];
  for (const [host, servers] of Object.entries(catalogue.hosts)) {
    if (host === 'local') {
      for (const server of servers) {
        out.push({ key: server, entries: catalogue.servers[server]!.map((t) => toEntry(host, server, t)) });
      }
    } else {
      out.push({
        key: host,
        entries: servers.flatMap((server) => catalogue.servers[server]!.map((t) => toEntry(host, server, t))),
      });
    }
  }
  return out;
}
