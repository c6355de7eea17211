import type { Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { buildNameTable, LiveNameTable, splitServerName } from '../../src/mcp/nameTable.js';

const tool = (name: string, description = ''): Tool => ({
  name,
  description,
  inputSchema: { type: 'object' },
});

describe('buildNameTable', () => {
  it('exposes <upstream>_<tool> and maps back to the original name', () => {
    const table = buildNameTable(
      [
        { upstream: 'filesystem', items: [tool('search_files'), tool('read_file')] },
        { upstream: 'github', items: [tool('search_files')] },
      ],
      64,
    );
    expect(table.exposed.map((t) => t.exposedName).sort()).toEqual([
      'filesystem_read_file',
      'filesystem_search_files',
      'github_search_files',
    ]);
    const entry = table.byName.get('filesystem_search_files');
    expect(entry).toMatchObject({ upstream: 'filesystem', originalName: 'search_files' });
    expect(entry?.definition.name).toBe('filesystem_search_files');
    expect(table.rejected).toEqual([]);
  });

  it("lists each upstream's earlier refusals once, with that upstream", () => {
    const refusal = (upstream: string) => ({
      exposedName: `${upstream}/*`,
      upstream,
      originalName: '1 more tools',
      reason: 'upstream-cap' as const,
      detail: `cap of ${upstream}`,
    });
    const table = buildNameTable(
      [
        { upstream: 'a', items: [tool('x')] },
        { upstream: 'b', items: [tool('y')] },
      ],
      64,
      undefined,
      [refusal('a'), refusal('b')],
    );
    expect(table.rejected).toEqual([refusal('a'), refusal('b')]);
    expect(table.exposed.map((e) => e.exposedName)).toEqual(['a_x', 'b_y']);
  });

  it('routes through the table, never by splitting on underscores', () => {
    // "a-b" + "c_d" and an upstream "a" with tool "b_c_d" give different names; the table keeps
    // the original tool name even when it contains underscores.
    const table = buildNameTable([{ upstream: 'work-station', items: [tool('fs_search_files')] }], 64);
    expect(table.byName.get('work-station_fs_search_files')).toMatchObject({
      upstream: 'work-station',
      originalName: 'fs_search_files',
    });
  });

  it('refuses every claimant of a colliding name, whatever the order', () => {
    const a = { upstream: 'srv', items: [tool('dup', 'first'), tool('dup', 'second'), tool('ok')] };
    const table = buildNameTable([a], 64);
    expect(table.byName.has('srv_dup')).toBe(false);
    expect(table.byName.has('srv_ok')).toBe(true);
    expect(table.rejected.filter((r) => r.reason === 'collision')).toHaveLength(2);
    const reversed = buildNameTable([{ upstream: 'srv', items: [...a.items].reverse() }], 64);
    expect(reversed.exposed.map((t) => t.exposedName)).toEqual(['srv_ok']);
  });

  it('refuses a name over the limit instead of truncating it', () => {
    const long = 'x'.repeat(61); // srv_ + 61 = 65 characters
    const table = buildNameTable([{ upstream: 'srv', items: [tool(long), tool('short')] }], 64);
    expect(table.exposed.map((t) => t.exposedName)).toEqual(['srv_short']);
    expect(table.rejected).toEqual([
      expect.objectContaining({
        exposedName: `srv_${long}`,
        reason: 'too-long',
        detail: expect.stringContaining('64'),
      }),
    ]);
    for (const t of table.exposed) expect(t.exposedName.length).toBeLessThanOrEqual(64);
    const exact = buildNameTable([{ upstream: 'srv', items: [tool('y'.repeat(60))] }], 64);
    expect(exact.byName.has(`srv_${'y'.repeat(60)}`)).toBe(true);
    const wider = buildNameTable([{ upstream: 'srv', items: [tool(long)] }], 128);
    expect(wider.byName.has(`srv_${long}`)).toBe(true);
  });

  it('tells which names agents would see differently after an update', () => {
    const table = new LiveNameTable<Tool>(64);
    table.set('s', [tool('a', 'x')]);
    expect(table.set('s', [tool('a', 'x')]).changed).toEqual([]);
    expect(table.set('s', [tool('a', 'y')]).changed).toEqual([{ exposedName: 's_a', upstream: 's' }]);
    expect(table.set('s', [tool('a', 'y'), tool('b')]).changed).toEqual([
      { exposedName: 's_b', upstream: 's' },
    ]);
    expect(table.delete('s').changed.map((c) => c.exposedName)).toEqual(['s_a', 's_b']);
  });
});

describe('splitServerName', () => {
  it.each([
    ['filesystem_read_file', { server: 'filesystem', name: 'read_file' }],
    ['echo_echo', { server: 'echo', name: 'echo' }],
    ['a_b', { server: 'a', name: 'b' }],
    ['_leading', undefined],
    ['trailing_', undefined],
    ['noseparator', undefined],
    ['', undefined],
  ])('%s', (name, expected) => {
    expect(splitServerName(name)).toEqual(expected);
  });
});
