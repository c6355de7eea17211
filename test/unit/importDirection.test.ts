import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/home.js';

/**
 * Which folders of src/ each folder may import from. Dependencies point one way: `mcp` knows
 * nothing of slaves (a slave is one more Upstream), `cluster` builds on `mcp`, and only the
 * composition roots (`daemon`, `cli`) see everything. Root files (errors.ts, log.ts, version.ts)
 * are allowed everywhere.
 */
const ALLOWED: Record<string, string[]> = {
  config: [],
  http: [],
  store: [],
  audit: ['config', 'store'],
  pki: ['config'],
  pairing: ['config', 'pki', 'store'],
  mcp: ['config', 'http'],
  cluster: ['config', 'http', 'mcp', 'pairing', 'pki', 'store'],
  agents: ['config', 'mcp', 'store'],
  // Reads the router and is handed everything else as plain functions by the daemon.
  metrics: ['http', 'mcp'],
  admin: ['agents', 'audit', 'cluster', 'config', 'http', 'mcp', 'pairing', 'store'],
  // Several masters: routes calls to the links other masters hold; sees the slave registry.
  bus: ['cluster', 'config', 'mcp'],
  // The web console: a client of the admin socket, with the audit vocabulary for its filters.
  console: ['admin', 'audit', 'config', 'http'],
  daemon: [
    'admin',
    'agents',
    'audit',
    'bus',
    'cluster',
    'config',
    'http',
    'mcp',
    'metrics',
    'pairing',
    'pki',
    'store',
  ],
  cli: [
    'admin',
    'agents',
    'audit',
    'bus',
    'cluster',
    'config',
    'console',
    'daemon',
    'http',
    'mcp',
    'pairing',
    'pki',
    'store',
  ],
};

function filesOf(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesOf(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('import direction between src/ folders', () => {
  const src = join(repoRoot, 'src');
  const folders = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);

  it('knows every folder', () => {
    expect(folders.sort()).toEqual(Object.keys(ALLOWED).sort());
  });

  it.each(Object.keys(ALLOWED))('%s imports only what it may', (folder) => {
    const wrong: string[] = [];
    for (const file of filesOf(join(src, folder))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/from '\.\.\/([a-z]+)\//g)) {
        if (!ALLOWED[folder]!.includes(match[1]!)) wrong.push(`${file.slice(src.length + 1)} -> ${match[1]}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
