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

  it('refuses a line over the limit and recovers for the next one', () => {
    const buf = new LineBuffer(8);
    const lines: string[] = [];
    expect(() => buf.push(Buffer.from('0123456789'), (l) => lines.push(l))).toThrow(/over 8 bytes/);
    buf.push(Buffer.from('ok\n'), (l) => lines.push(l));
    expect(lines).toEqual(['ok']);
  });
});
