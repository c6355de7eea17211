import { describe, expect, it } from 'vitest';
import { LineBuffer } from '../../src/mcp/lineBuffer.js';

describe('LineBuffer', () => {
  it('joins lines split across chunks and splits several lines in one chunk', () => {
    const lines: string[] = [];
    const buf = new LineBuffer(1024);
    for (const part of ['{"a":', '1}\n{"b":2}\n{"c"', ':3}', '\n'])
      buf.push(Buffer.from(part), (l) => lines.push(l));
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  it('keeps multi-byte characters whole when a chunk boundary cuts them', () => {
    const bytes = Buffer.from('"héllo ✓"\n');
    const lines: string[] = [];
    const buf = new LineBuffer(1024);
    for (let i = 0; i < bytes.length; i++) buf.push(bytes.subarray(i, i + 1), (l) => lines.push(l));
    expect(lines).toEqual(['"héllo ✓"']);
  });

  it('delivers an empty line as an empty string', () => {
    const lines: string[] = [];
    new LineBuffer(8).push(Buffer.from('\n\n'), (l) => lines.push(l));
    expect(lines).toEqual(['', '']);
  });
});

/**
 * The limit (8 bytes here) on both code paths: a line that ends inside the chunk where it started,
 * and a line joined from pending chunks. Each row: the chunks pushed, the lines delivered, and
 * which pushes throw. A refused line is dropped whole, even when its end arrives later.
 */
describe('LineBuffer at its limit', () => {
  const rows: Array<{ name: string; chunks: string[]; lines: string[]; throws: number[] }> = [
    { name: 'exactly the limit, in one chunk', chunks: ['12345678\n'], lines: ['12345678'], throws: [] },
    { name: 'one byte over, ending inside its chunk', chunks: ['123456789\n'], lines: [], throws: [0] },
    { name: 'exactly the limit, joined', chunks: ['1234', '5678\n'], lines: ['12345678'], throws: [] },
    { name: 'one byte over, joined', chunks: ['1234', '56789\n'], lines: [], throws: [1] },
    {
      name: 'exactly the limit pending, then its newline',
      chunks: ['12345678', '\n'],
      lines: ['12345678'],
      throws: [],
    },
    { name: 'one byte over while still pending', chunks: ['123456789'], lines: [], throws: [0] },
    { name: 'one byte over across pending chunks', chunks: ['1234', '56789'], lines: [], throws: [1] },
    {
      name: 'the lines around a refused one in the same chunk',
      chunks: ['a\n123456789\nb\n'],
      lines: ['a', 'b'],
      throws: [0],
    },
    {
      name: 'a line that starts in the chunk of a refused one',
      chunks: ['123456789\nab', 'c\n'],
      lines: ['abc'],
      throws: [0],
    },
    {
      name: 'the rest of a refused line, not taken for a line of its own',
      chunks: ['123456789', 'abc\nok\n'],
      lines: ['ok'],
      throws: [0],
    },
    {
      name: 'a refused line whose rest spans several chunks (refused once)',
      chunks: ['123456789', 'more', 'still\nnext', '\n'],
      lines: ['next'],
      throws: [0],
    },
    {
      name: 'a new line after the end of a refused one, pending',
      chunks: ['123456789', '\n1234', '5678\n'],
      lines: ['12345678'],
      throws: [0],
    },
    {
      name: 'two refused lines in one chunk (one throw)',
      chunks: ['123456789\n123456789\nok\n'],
      lines: ['ok'],
      throws: [0],
    },
  ];

  it.each(rows)('$name', ({ chunks, lines, throws }) => {
    const buf = new LineBuffer(8);
    const got: string[] = [];
    const threw: number[] = [];
    chunks.forEach((chunk, i) => {
      try {
        buf.push(Buffer.from(chunk), (l) => got.push(l));
      } catch (err) {
        expect((err as Error).message).toBe('message over 8 bytes');
        threw.push(i);
      }
    });
    expect({ lines: got, throws: threw }).toEqual({ lines, throws });
  });

  it('forgets a partial line on clear()', () => {
    const buf = new LineBuffer(8);
    const got: string[] = [];
    buf.push(Buffer.from('12'), (l) => got.push(l));
    buf.clear();
    buf.push(Buffer.from('3\n'), (l) => got.push(l));
    expect(got).toEqual(['3']);
  });

  it('stops skipping a refused line on clear(): the next bytes start a new stream', () => {
    const buf = new LineBuffer(8);
    const got: string[] = [];
    expect(() => buf.push(Buffer.from('123456789'), (l) => got.push(l))).toThrow(/over 8 bytes/);
    buf.clear();
    buf.push(Buffer.from('x\n'), (l) => got.push(l));
    expect(got).toEqual(['x']);
  });
});
