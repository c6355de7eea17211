import { DianeError, ExitCode } from '../errors.js';

const UNIT_MS = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
} as const;

type Unit = keyof typeof UNIT_MS;

/** Anything longer is a typo, not a wish; it also keeps results far from float trouble. */
const MAX_DURATION_MS = 100 * 365 * UNIT_MS.d;

const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/**
 * Parses `500ms`, `8s`, `1.5s`, `10m`, `1h`, `365d`, or a bare integer of milliseconds.
 * The result is rounded to whole milliseconds.
 */
export function parseDuration(text: string): number {
  const match = DURATION_PATTERN.exec(text);
  const amount = match?.[1];
  const unit = match?.[2] as Unit | undefined;
  // A bare fraction ("1.5") has no obvious unit, so it is refused rather than guessed.
  if (match === null || amount === undefined || (unit === undefined && amount.includes('.'))) {
    throw invalidDuration(text);
  }
  const ms = Math.round(Number(amount) * UNIT_MS[unit ?? 'ms']);
  if (!Number.isFinite(ms) || ms > MAX_DURATION_MS) throw invalidDuration(text);
  return ms;
}

function invalidDuration(text: string): DianeError {
  return new DianeError(
    `invalid duration ${JSON.stringify(text)}: use a number with a unit, e.g. 500ms, 8s, 10m, 1h, 365d`,
    ExitCode.usage,
  );
}

const LARGE_UNITS: ReadonlyArray<readonly [Exclude<Unit, 'ms'>, number]> = [
  ['d', UNIT_MS.d],
  ['h', UNIT_MS.h],
  ['m', UNIT_MS.m],
  ['s', UNIT_MS.s],
];

/**
 * A short form for people: `250ms`, `1.5s`, `10m`, `2h 5m`, `365d`. Above a minute it shows the
 * largest unit and the next one down (if not zero), so it is approximate by design.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < UNIT_MS.s) return `${Math.round(ms)}ms`;
  if (ms < UNIT_MS.m) return `${Number((ms / UNIT_MS.s).toFixed(1))}s`;
  const whole = Math.floor(ms / UNIT_MS.s) * UNIT_MS.s;
  const first = LARGE_UNITS.findIndex(([, size]) => whole >= size);
  const [unit, size] = LARGE_UNITS[first]!;
  const count = Math.floor(whole / size);
  const next = LARGE_UNITS[first + 1];
  const nextCount = next === undefined ? 0 : Math.floor((whole - count * size) / next[1]);
  return next === undefined || nextCount === 0 ? `${count}${unit}` : `${count}${unit} ${nextCount}${next[0]}`;
}
