import { expect } from 'vitest';
import type { CliResult } from './cli.js';

/**
 * A refusal as a person sees it: this exit code and this `diane: ...` line, and no stack trace.
 * Checking the exit code alone would let a crash pass for a refusal.
 */
export function expectRefusal(result: CliResult, code: number, message: string | RegExp): void {
  const line = result.stderr.split('\n').find((l) => l.startsWith('diane: ')) ?? result.stderr;
  expect({ code: result.code, message: line, stackTrace: /^\s+at /m.test(result.stderr) }).toEqual({
    code,
    message: typeof message === 'string' ? `diane: ${message}` : expect.stringMatching(message),
    stackTrace: false,
  });
}
