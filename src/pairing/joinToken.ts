import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/files.js';
import { DianeError, ExitCode } from '../errors.js';

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32,128}$/;

/** Whether `text` could be a join token at all; says nothing about whether it is the right one. */
export function isJoinTokenShaped(text: string): boolean {
  return TOKEN_SHAPE.test(text);
}

/**
 * The master's join token (`HomePaths.joinToken`), created on first use (256 random bits, 0600, written atomically)
 * and kept across restarts, so that a printed pair command stays valid. Delete the file and
 * restart to rotate it.
 */
export function loadOrCreateJoinToken(path: string): string {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (!isJoinTokenShaped(token)) {
      throw new DianeError(
        `${path} does not hold a valid join token; delete it to generate a new one`,
        ExitCode.config,
      );
    }
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileAtomic(path, `${token}\n`, 0o600);
  return token;
}

/**
 * Constant time whatever the input: both sides are hashed first, so neither the length nor
 * the first differing character of a guess shows in the timing.
 */
export function joinTokensEqual(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** For output that may end up in logs (the serve banner): the command without its secret. */
export function redactJoinToken(text: string): string {
  return text.replace(/--join-token=\S+/g, '--join-token=<see `diane info`>');
}
