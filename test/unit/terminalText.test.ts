import { describe, expect, it } from 'vitest';
import { escapeTerminalText, terminalSafeJson } from '../../src/cli/terminalText.js';

describe('escapeTerminalText', () => {
  it.each([
    ['clear screen', '\u001b[2J\u001b[H', '\\x1b[2J\\x1b[H'],
    ['bell and backspace', 'a\u0007b\u0008c', 'a\\x07b\\x08c'],
    ['DEL and C1 CSI', 'x\u007fy\u009bz', 'x\\x7fy\\x9bz'],
    ['right-to-left override', 'abc\u202egnp.exe', 'abc\\u202egnp.exe'],
    ['isolates and marks', '\u2066a\u2069\u200e\u061c', '\\u2066a\\u2069\\u200e\\u061c'],
    ['form feed and vertical tab', 'a\u000cb\u000bc', 'a\\x0cb\\x0bc'],
  ])('shows %s as escapes', (_what, input, shown) => {
    expect(escapeTerminalText(input)).toBe(shown);
  });

  it('keeps what a terminal shows as text: newlines, tabs, carriage returns, Unicode', () => {
    const text = 'line 1\n\tcol\r\nnaïve 日本語 🎉';
    expect(escapeTerminalText(text)).toBe(text);
  });
});

describe('terminalSafeJson', () => {
  it('writes what a terminal would act on as JSON escapes, so the guard leaves it valid JSON', () => {
    const value = { name: 'x\u009b2J\u202egnp', 'k\u007f': '\u001b[H', plain: 'naïve 日本語' };
    const text = terminalSafeJson(value);
    expect(escapeTerminalText(text)).toBe(text);
    expect(JSON.parse(text)).toEqual(value);
    expect(text).toBe('{"name":"x\\u009b2J\\u202egnp","k\\u007f":"\\u001b[H","plain":"naïve 日本語"}');
    expect(JSON.parse(terminalSafeJson(value, 2))).toEqual(value);
  });
});
