import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isStopword, stem, synonymsOf, terms, words } from '../../src/mcp/discovery/text.js';
import {
  DESCRIPTION_CHARS,
  MAX_ALSO_ON,
  MAX_SEARCH_LIMIT,
  type SearchOptions,
  type ToolEntry,
  ToolIndex,
} from '../../src/mcp/discovery/toolIndex.js';
import {
  type Catalogue,
  catalogueUpstreams,
  loadCatalogue,
  loadQueries,
  toEntry,
} from '../helpers/discoveryCatalogue.js';

const catalogue = loadCatalogue();
const queries = loadQueries();

function indexOf(cat: Catalogue = catalogue, keep: (entry: ToolEntry) => boolean = () => true): ToolIndex {
  const index = new ToolIndex();
  for (const { key, entries } of catalogueUpstreams(cat)) {
    const kept = entries.filter(keep);
    if (kept.length > 0) index.upsertUpstream(key, kept);
  }
  return index;
}

function entry(name: string, fields: Partial<ToolEntry> = {}): ToolEntry {
  return {
    name,
    host: 'local',
    server: 'srv',
    originalName: name,
    inputSchema: { type: 'object' },
    ...fields,
  };
}

const names = (index: ToolIndex, options: Partial<SearchOptions> & { query: string }) =>
  index.search({ limit: 10, ...options }).map((r) => r.name);

describe('ranking quality over the fixture catalogue', () => {
  it('finds the expected tool in the top 5 for at least 90 % of the queries', () => {
    const index = indexOf();
    expect(queries).toHaveLength(30);
    let top1 = 0;
    let top5 = 0;
    const misses: string[] = [];
    for (const q of queries) {
      const results = index.search({ query: q.query, limit: 5 });
      const rank = results.findIndex((r) => q.expected.includes(r.name));
      if (rank === 0) top1 += 1;
      if (rank >= 0) top5 += 1;
      else misses.push(`  "${q.query}": got ${results.map((r) => r.name).join(', ')}`);
    }
    const pct = (n: number) => `${((100 * n) / queries.length).toFixed(1)} %`;
    console.log(
      `discovery ranking over ${index.size} tools: top-1 ${top1}/${queries.length} (${pct(top1)}), ` +
        `top-5 ${top5}/${queries.length} (${pct(top5)})${misses.length ? `\nmissed:\n${misses.join('\n')}` : ''}`,
    );
    expect(top5 / queries.length).toBeGreaterThanOrEqual(0.9);
    // Not the issue's target; a floor so that a change that hurts the first answer is noticed.
    expect(top1 / queries.length).toBeGreaterThanOrEqual(0.6);
  });

  it('expects only names the catalogue exposes', () => {
    const all = new Set(catalogueUpstreams(catalogue).flatMap((u) => u.entries.map((e) => e.name)));
    for (const q of queries) for (const name of q.expected) expect(all, q.query).toContain(name);
  });
});

describe('text normalisation', () => {
  it('splits names on separators, camelCase and digits, and keeps mixed words whole too', () => {
    expect(words('list_directory_with_sizes')).toEqual(['list', 'directory', 'with', 'sizes']);
    expect(words('get-tiny-image')).toEqual(['get', 'tiny', 'image']);
    expect(words('oldText dryRun')).toEqual(['old', 'text', 'dry', 'run']);
    expect(words('getHTTPResponse')).toEqual(['get', 'http', 'response']);
    expect(words('fs.readFile')).toEqual(['fs', 'read', 'file']);
    expect(words('base64')).toEqual(['base', '64', 'base64']);
    expect(words('k8s db1')).toEqual(['k8s', 'db', 'db1']);
    expect(words('Read the file, please!')).toEqual(['read', 'the', 'file', 'please']);
    expect(words('a b c')).toEqual([]);
  });

  it('splits ASCII words exactly like the Unicode regular expressions it stands in for', () => {
    const reference = (text: string): string[] => {
      const out: string[] = [];
      for (const chunk of text.split(/[^\p{L}\p{N}]+/u)) {
        if (chunk.length < 2 || chunk.length > 40) continue;
        const parts = chunk
          .replace(/(\p{Ll})(\p{Lu})/gu, '$1 $2')
          .replace(/(\p{Lu}+)(\p{Lu}\p{Ll})/gu, '$1 $2')
          .replace(/(\p{L})(\p{N})/gu, '$1 $2')
          .replace(/(\p{N})(\p{L})/gu, '$1 $2')
          .toLowerCase()
          .split(' ');
        out.push(...parts.filter((p) => p.length > 1));
        if (parts.length > 1 && /\p{N}/u.test(chunk) && /\p{L}/u.test(chunk)) out.push(chunk.toLowerCase());
      }
      return out;
    };
    const alphabet = fc.constantFrom(...Array.from('aAbBzZ09_-. éÉ😀𝒜'));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 30 }), (chars) => {
        const text = chars.join('');
        expect(words(text)).toEqual(reference(text));
      }),
      { numRuns: 2000 },
    );
    expect(words('Größe ÄnderungsDatum 東京')).toEqual(reference('Größe ÄnderungsDatum 東京'));
  });

  it('drops stopwords and stems what is left', () => {
    expect(isStopword('the')).toBe(true);
    expect(isStopword('file')).toBe(false);
    expect(terms('Show me the files in my directories')).toEqual(['show', stem('file'), 'directory']);
  });

  it('makes inflected forms meet', () => {
    const same = [
      ['file', 'files', 'filed'],
      ['directory', 'directories'],
      ['run', 'running'],
      ['create', 'created', 'creating', 'creates'],
      ['process', 'processes'],
      ['branch', 'branches'],
      ['commit', 'commits', 'committed'],
      ['stop', 'stopped', 'stops'],
      ['list', 'listing', 'listed', 'lists'],
      ['entity', 'entities'],
      ['modify', 'modified'],
      ['change', 'changes', 'changed'],
      ['match', 'matches'],
    ];
    for (const group of same) {
      expect(new Set(group.map(stem)), group.join('/')).toHaveProperty('size', 1);
    }
  });

  it('leaves words alone where a suffix is part of the word', () => {
    expect(stem('status')).toBe('status');
    expect(stem('analysis')).toBe('analysis');
    expect(stem('access')).toBe('access');
    expect(stem('string')).toBe('string');
    expect(stem('need')).toBe('need');
    expect(stem('git')).toBe('git');
    expect(stem('k8s')).toBe('k8s');
  });

  it('has a small symmetric synonym map', () => {
    expect(synonymsOf(stem('remove'))).toContain(stem('delete'));
    expect(synonymsOf(stem('delete'))).toContain(stem('remove'));
    expect(synonymsOf(stem('folder'))).toContain(stem('directory'));
    expect(synonymsOf('grep')).toContain('search');
    expect(synonymsOf('zebra')).toEqual([]);
  });
});

describe('ToolIndex', () => {
  it('ranks by name first: an exact original name, then an exact exposed name, then a prefix', () => {
    const index = indexOf();
    expect(names(index, { query: 'read_text_file' })[0]).toMatch(/_filesystem_read_text_file$/);
    expect(names(index, { query: 'laptop_filesystem_get_file_info' })[0]).toBe(
      'laptop_filesystem_get_file_info',
    );
    expect(names(index, { query: 'list_directory_w' })[0]).toMatch(/_list_directory_with_sizes$/);
  });

  it('finds words through synonyms, at a discount', () => {
    const index = new ToolIndex();
    index.upsertUpstream('a', [
      entry('delete_item', { description: 'Delete an item' }),
      entry('remove_item', { description: 'Remove an item' }),
    ]);
    expect(names(index, { query: 'remove item' })).toEqual(['remove_item', 'delete_item']);
    expect(names(index, { query: 'erase' })).toEqual(['delete_item', 'remove_item']);
  });

  it('prefers the copy on a host the query names, written as one word or two', () => {
    const index = indexOf();
    expect(names(index, { query: 'read text file on db1' })[0]).toBe('db1_filesystem_read_text_file');
    expect(names(index, { query: 'read text file on the build box' })[0]).toBe(
      'buildbox_filesystem_read_text_file',
    );
    const hyphen = new ToolIndex();
    hyphen.upsertUpstream('build-box', [entry('build-box_fs_read', { host: 'build-box', server: 'fs' })]);
    hyphen.upsertUpstream('laptop', [entry('laptop_fs_read', { host: 'laptop', server: 'fs' })]);
    expect(names(hyphen, { query: 'read on build box', groupCopies: false })[0]).toBe('build-box_fs_read');
    expect(names(hyphen, { query: 'read on buildbox', groupCopies: false })[0]).toBe('build-box_fs_read');
  });

  it('does not take "local" for a host mention: it is an everyday word', () => {
    const index = new ToolIndex();
    index.upsertUpstream('time', [entry('time_now', { description: 'Current local time' })]);
    index.upsertUpstream('ws', [
      entry('ws_git_git_branch', {
        host: 'ws',
        originalName: 'git_branch',
        description: 'List local or remote branches',
      }),
    ]);
    index.upsertUpstream('nb', [
      entry('nb_notes_git_branch', { host: 'nb', originalName: 'git_branch', description: 'List branches' }),
    ]);
    const scoreOf = (query: string) =>
      index.search({ query, limit: 5 }).find((r) => r.name === 'nb_notes_git_branch')!.score;
    expect(names(index, { query: 'list local branches' })[0]).toBe('ws_git_git_branch');
    expect(scoreOf('list local branches')).toBe(scoreOf('list branches'));
    // A real host mention does lower the others.
    expect(scoreOf('list branches on ws')).toBeLessThan(scoreOf('list branches'));
  });

  it('folds identical tools on several hosts into one result listing the others', () => {
    const index = indexOf();
    const [first, ...rest] = index.search({ query: 'git status', limit: 10 });
    expect(first!.name).toBe('buildbox_git_git_status');
    expect(first!.alsoOn).toEqual(['laptop_git_git_status', 'workstation_git_git_status']);
    expect(first!.alsoOnCount).toBe(2);
    expect(rest.map((r) => r.name)).not.toContain('laptop_git_git_status');

    const flat = names(index, { query: 'git status', groupCopies: false });
    expect(flat.slice(0, 3)).toEqual([
      'buildbox_git_git_status',
      'laptop_git_git_status',
      'workstation_git_git_status',
    ]);
  });

  it('lists at most MAX_ALSO_ON other copies and counts all of them', () => {
    const index = new ToolIndex();
    for (let i = 0; i < 12; i++) {
      const host = `h${String(i).padStart(2, '0')}`;
      index.upsertUpstream(host, [entry(`${host}_srv_ping`, { host, originalName: 'ping' })]);
    }
    const [only] = index.search({ query: 'ping', limit: 5 });
    expect(only!.name).toBe('h00_srv_ping');
    expect(only!.alsoOn).toHaveLength(MAX_ALSO_ON);
    expect(only!.alsoOn![0]).toBe('h01_srv_ping');
    expect(only!.alsoOnCount).toBe(11);
  });

  it('does not fold tools whose definitions differ', () => {
    const index = new ToolIndex();
    index.upsertUpstream('a', [entry('a_srv_ping', { host: 'a', originalName: 'ping', description: 'v1' })]);
    index.upsertUpstream('b', [entry('b_srv_ping', { host: 'b', originalName: 'ping', description: 'v2' })]);
    expect(names(index, { query: 'ping' })).toEqual(['a_srv_ping', 'b_srv_ping']);
  });

  it('breaks ties by name, whatever the order upstreams arrived in', () => {
    const build = (order: string[]) => {
      const index = new ToolIndex();
      for (const host of order) {
        index.upsertUpstream(host, [entry(`${host}_srv_echo`, { host, originalName: 'echo' })]);
      }
      return index;
    };
    const expected = ['alpha_srv_echo', 'beta_srv_echo', 'gamma_srv_echo'];
    for (const order of [
      ['gamma', 'alpha', 'beta'],
      ['beta', 'gamma', 'alpha'],
    ]) {
      const index = build(order);
      const results = index.search({ query: 'echo', limit: 10, groupCopies: false });
      expect(results.map((r) => r.name)).toEqual(expected);
      expect(new Set(results.map((r) => r.score)).size).toBe(1);
      expect(names(index, { query: 'echo' })).toEqual(['alpha_srv_echo']);
    }
  });

  it('replaces one upstream at a time and ends up where a fresh build would', () => {
    const upstreams = catalogueUpstreams(catalogue);
    const incremental = new ToolIndex();
    for (const { key, entries } of upstreams) incremental.upsertUpstream(key, entries.slice(0, 3));
    for (const { key, entries } of upstreams) incremental.upsertUpstream(key, entries);
    incremental.upsertUpstream('ops', []);
    incremental.removeUpstream('ops');
    incremental.upsertUpstream('gone', [entry('gone_srv_zebra_tool', { host: 'gone' })]);
    incremental.removeUpstream('gone');

    const fresh = indexOf(catalogue, (e) => e.host !== 'ops');
    expect(incremental.size).toBe(fresh.size);
    expect(incremental.hasUpstream('ops')).toBe(false);
    expect(names(incremental, { query: 'zebra' })).toEqual([]);
    for (const q of [...queries.map((x) => x.query), 'list the pods']) {
      expect(incremental.search({ query: q, limit: 10 }), q).toEqual(fresh.search({ query: q, limit: 10 }));
    }
  });

  it('forgets a tool that an upstream no longer lists', () => {
    const index = new ToolIndex();
    index.upsertUpstream('srv', [entry('srv_old_thing'), entry('srv_keep')]);
    expect(names(index, { query: 'old thing' })).toEqual(['srv_old_thing']);
    index.upsertUpstream('srv', [entry('srv_new_thing'), entry('srv_keep')]);
    expect(names(index, { query: 'old thing' })).toEqual(['srv_new_thing']);
    expect(names(index, { query: 'old' })).toEqual([]);
    expect(index.size).toBe(2);
    expect(index.removeUpstream('srv')).toBe(true);
    expect(index.removeUpstream('srv')).toBe(false);
    expect(index.size).toBe(0);
    expect(names(index, { query: 'keep' })).toEqual([]);
  });

  it('keeps an offline upstream findable, flagged, and prefers an online copy', () => {
    const index = indexOf();
    expect(index.setOnline('buildbox', false)).toBe(true);
    expect(index.setOnline('nowhere', false)).toBe(false);
    const [status] = index.search({ query: 'git status', limit: 1 });
    expect(status!.name).toBe('laptop_git_git_status');
    expect(status!.online).toBe(true);
    expect(status!.alsoOn).toContain('buildbox_git_git_status');

    const [docker] = index.search({ query: 'list docker containers on the build box', limit: 1 });
    expect(docker).toMatchObject({ name: 'buildbox_docker_list_containers', online: false });

    // A new catalogue of an offline host keeps it offline unless told otherwise.
    index.upsertUpstream(
      'buildbox',
      catalogueUpstreams(catalogue).find((u) => u.key === 'buildbox')!.entries,
    );
    const onBuildbox = { query: 'build_image', host: 'buildbox', limit: 1 };
    expect(index.search(onBuildbox)[0]).toMatchObject({ name: 'buildbox_docker_build_image', online: false });
    index.upsertUpstream('buildbox', [entry('buildbox_docker_build_image', { host: 'buildbox' })], true);
    expect(index.search(onBuildbox)[0]).toMatchObject({ name: 'buildbox_docker_build_image', online: true });
  });

  it('restricts to a host or a server when asked', () => {
    const index = indexOf();
    const onDb = index.search({ query: 'read file', host: 'db1', limit: 50 });
    expect(onDb.length).toBeGreaterThan(0);
    expect(onDb.every((r) => r.host === 'db1')).toBe(true);
    const git = index.search({ query: 'show', server: 'git', limit: 50 });
    expect(git.length).toBeGreaterThan(0);
    expect(git.every((r) => r.server === 'git')).toBe(true);
    expect(index.search({ query: 'read file', host: 'nowhere', limit: 5 })).toEqual([]);
  });

  it('honours the limit and returns nothing for empty or stopword-only queries', () => {
    const index = indexOf();
    expect(index.search({ query: 'file', limit: 0 })).toEqual([]);
    expect(index.search({ query: 'file', limit: -3 })).toEqual([]);
    expect(index.search({ query: 'file', limit: Number.NaN })).toEqual([]);
    expect(index.search({ query: 'file', limit: 2 })).toHaveLength(2);
    expect(index.search({ query: 'file', limit: 2.9 })).toHaveLength(2);
    expect(index.search({ query: 'file', limit: 1e9, groupCopies: false }).length).toBeLessThanOrEqual(
      MAX_SEARCH_LIMIT,
    );
    expect(index.search({ query: '', limit: 5 })).toEqual([]);
    expect(index.search({ query: 'the of and', limit: 5 })).toEqual([]);
    expect(index.search({ query: 'qwertyuiop', limit: 5 })).toEqual([]);
    expect(new ToolIndex().search({ query: 'file', limit: 5 })).toEqual([]);
    // A long query is cut, not refused.
    expect(index.search({ query: 'file '.repeat(500), limit: 5 }).length).toBeGreaterThan(0);
  });

  it('returns one line of description, cut near 200 characters', () => {
    const index = new ToolIndex();
    const long = `First line\nsecond   line ${'word '.repeat(100)}`;
    index.upsertUpstream('srv', [entry('srv_long', { description: long, title: 'Long one' })]);
    const [r] = index.search({ query: 'long', limit: 1 });
    expect(r!.description).not.toContain('\n');
    expect(r!.description.startsWith('First line second line word')).toBe(true);
    expect(r!.description.length).toBeLessThanOrEqual(DESCRIPTION_CHARS);
    expect(r!.description.endsWith('…')).toBe(true);
    expect(r!.title).toBe('Long one');
    expect(r!.inputSchema).toEqual({ type: 'object' });
  });

  it('indexes argument names and descriptions, nested ones too, and survives odd schemas', () => {
    const index = new ToolIndex();
    index.upsertUpstream('srv', [
      entry('srv_edit', {
        inputSchema: {
          type: 'object',
          properties: {
            edits: {
              type: 'array',
              items: { type: 'object', properties: { oldText: { description: 'Text to search for' } } },
            },
            mode: { type: 'string', enum: ['overwrite', 'append'] },
          },
        },
      }),
      entry('srv_odd', { inputSchema: { type: 'object', properties: [1, 2] as unknown as object } }),
      entry('srv_odd2', { inputSchema: { type: 'object', properties: { x: null, y: 'str' } } }),
      entry('srv_huge', {
        inputSchema: {
          type: 'object',
          properties: Object.fromEntries(
            Array.from({ length: 5000 }, (_, i) => [`p${i}`, { type: 'string' }]),
          ),
        },
      }),
    ]);
    expect(names(index, { query: 'old text' })).toEqual(['srv_edit']);
    expect(names(index, { query: 'append' })).toEqual(['srv_edit']);
    expect(names(index, { query: 'odd' })).toEqual(['srv_odd', 'srv_odd2']);
  });

  it('summarises servers per host with counts and state', () => {
    const index = indexOf();
    index.setOnline('laptop', false);
    const summary = index.summary();
    expect(summary[0]).toEqual({ host: 'local', server: 'brave-search', online: true, toolCount: 2 });
    expect(summary).toContainEqual({ host: 'laptop', server: 'git', online: false, toolCount: 12 });
    expect(summary.reduce((n, s) => n + s.toolCount, 0)).toBe(index.size);
  });
});

describe('ToolIndex filter (an agent scope)', () => {
  const scopes: [string, (name: string, host: string) => boolean][] = [
    ['local only', (_name, host) => host === 'local'],
    ['no buildbox', (_name, host) => host !== 'buildbox'],
    ['no git, no laptop', (name, host) => !name.includes('_git_') && host !== 'laptop'],
    ['every third name', (name) => hash(name) % 3 !== 0],
    ['nothing', () => false],
  ];

  const hostOf = new Map(
    catalogueUpstreams(catalogue).flatMap((u) => u.entries.map((e) => [e.name, e.host])),
  );

  it.each(scopes)(
    '%s: results are exactly those of an index holding only the visible tools',
    (_label, filter) => {
      const full = indexOf();
      const visibleOnly = indexOf(catalogue, (e) => filter(e.name, e.host));
      const extra = [
        'read text file on the build box',
        'buildbox',
        'git',
        'laptop time',
        'workstation_git_git_log',
      ];
      for (const query of [...queries.map((q) => q.query), ...extra]) {
        for (const groupCopies of [true, false]) {
          const seen = full.search({ query, limit: 10, filter, groupCopies });
          expect(seen, query).toEqual(visibleOnly.search({ query, limit: 10, groupCopies }));
          for (const r of seen) {
            expect(filter(r.name, r.host)).toBe(true);
            for (const other of r.alsoOn ?? []) expect(filter(other, hostOf.get(other)!)).toBe(true);
          }
        }
      }
      expect(full.summary(filter)).toEqual(visibleOnly.summary());
    },
  );

  it('asks the filter about each tool at most once per search', () => {
    const index = indexOf();
    const asked = new Map<string, number>();
    index.search({
      query: 'read file on the laptop',
      limit: 10,
      filter: (name) => {
        asked.set(name, (asked.get(name) ?? 0) + 1);
        return name.startsWith('laptop_');
      },
    });
    expect(Math.max(...asked.values())).toBe(1);
  });

  it('does not let a hidden tool change the visible results, even one named in the query', () => {
    const base = new ToolIndex();
    base.upsertUpstream('a', [entry('a_srv_read', { host: 'a', originalName: 'read' })]);
    const withHidden = new ToolIndex();
    withHidden.upsertUpstream('a', [entry('a_srv_read', { host: 'a', originalName: 'read' })]);
    withHidden.upsertUpstream('secret', [
      entry('secret_srv_read', { host: 'secret', originalName: 'read', description: 'read read read' }),
      entry('secret_srv_readall', { host: 'secret', originalName: 'readall' }),
    ]);
    const filter = (_name: string, host: string) => host !== 'secret';
    for (const query of ['read', 'read on secret', 'secret_srv_read', 'read all', 'readall']) {
      expect(withHidden.search({ query, limit: 5, filter }), query).toEqual(base.search({ query, limit: 5 }));
    }
  });
});

/** A stable pseudo-random split of names. */
function hash(text: string): number {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}

describe('catalogue fixture', () => {
  it('has a few hundred tools over several hosts, with tools shared by hosts', () => {
    const all = catalogueUpstreams(catalogue).flatMap((u) => u.entries);
    expect(all.length).toBeGreaterThanOrEqual(200);
    expect(new Set(all.map((e) => e.name)).size).toBe(all.length);
    expect(new Set(all.map((e) => e.host)).size).toBeGreaterThanOrEqual(5);
    expect(all.filter((e) => e.originalName === 'read_text_file').length).toBeGreaterThan(1);
    expect(toEntry('local', 'time', { name: 'x', inputSchema: { type: 'object' } }).name).toBe('time_x');
  });
});
