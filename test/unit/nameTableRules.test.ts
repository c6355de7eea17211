import { describe, expect, it } from 'vitest';
import { buildNameTable, type Named } from '../../src/mcp/nameTable.js';

/** The refusal rules of the name table, row by row, with the exact words an admin sees. */
interface Item extends Named {
  description?: string;
}

const item = (name: string, description?: string): Item => (description ? { name, description } : { name });

describe('buildNameTable refuses', () => {
  it('every claimant of a name two upstreams produce, naming all of them', () => {
    // With the identity naming of a transparent router, two upstreams can claim one name.
    const table = buildNameTable(
      [
        { upstream: 'a', items: [item('search'), item('only_a')] },
        { upstream: 'b', items: [item('search')] },
      ],
      64,
      (_upstream, name) => name,
    );
    expect(table.exposed.map((e) => e.exposedName)).toEqual(['only_a']);
    expect(table.rejected).toEqual([
      {
        exposedName: 'search',
        upstream: 'a',
        originalName: 'search',
        reason: 'collision',
        detail: 'claimed by a:search, b:search',
      },
      {
        exposedName: 'search',
        upstream: 'b',
        originalName: 'search',
        reason: 'collision',
        detail: 'claimed by a:search, b:search',
      },
    ]);
  });

  it('a name one character over the limit, saying by how much', () => {
    const table = buildNameTable([{ upstream: 'srv', items: [item('x'.repeat(7))] }], 10);
    expect(table.rejected).toEqual([
      {
        exposedName: 'srv_xxxxxxx',
        upstream: 'srv',
        originalName: 'xxxxxxx',
        reason: 'too-long',
        detail: '11 characters, the limit is 10',
      },
    ]);
    expect(table.exposed).toEqual([]);
  });
});

describe('buildNameTable exposes', () => {
  it('the definition under its exposed name, every other field kept', () => {
    const table = buildNameTable([{ upstream: 'srv', items: [item('t', 'does things')] }], 64);
    expect(table.exposed).toEqual([
      {
        exposedName: 'srv_t',
        upstream: 'srv',
        originalName: 't',
        definition: { name: 'srv_t', description: 'does things' },
      },
    ]);
    expect(table.byName.get('srv_t')).toBe(table.exposed[0]);
  });
});
