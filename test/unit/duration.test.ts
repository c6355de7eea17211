import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/config/duration.js';
import { DianeError, ExitCode } from '../../src/errors.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['8s', 8_000],
    ['1.5s', 1_500],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['365d', 365 * 86_400_000],
    ['250', 250],
    ['0', 0],
    ['0.5ms', 1],
  ])('parses %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    '',
    'abc',
    '-5s',
    '10 m',
    ' 10m',
    '10m ',
    '1.5',
    '5w',
    'NaN',
    'Infinity',
    '1e3',
    '.5s',
    '101y',
    '36600d',
  ])('rejects %j with a usage error', (text) => {
    let caught: unknown;
    try {
      parseDuration(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DianeError);
    expect((caught as DianeError).exitCode).toBe(ExitCode.usage);
    expect((caught as DianeError).message).toBe(
      `invalid duration ${JSON.stringify(text)}: use a number with a unit, e.g. 500ms, 8s, 10m, 1h, 365d`,
    );
  });

  it('accepts up to 100 years and refuses more', () => {
    expect(parseDuration('36500d')).toBe(36_500 * 86_400_000);
    expect(() => parseDuration('36501d')).toThrow(DianeError);
    expect(() => parseDuration('99999999999999999999999999d')).toThrow(DianeError);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [250, '250ms'],
    [1_500, '1.5s'],
    [8_000, '8s'],
    [600_000, '10m'],
    [90_000, '1m 30s'],
    [2 * 3_600_000 + 5 * 60_000, '2h 5m'],
    [2 * 3_600_000 + 5 * 60_000 + 7_000, '2h 5m'],
    [365 * 86_400_000, '365d'],
    [86_400_000 + 3_600_000, '1d 1h'],
  ])('formats %d as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips the units it emits', () => {
    for (const text of ['500ms', '1.5s', '10m', '1h', '365d']) {
      expect(formatDuration(parseDuration(text))).toBe(text);
    }
  });
});
