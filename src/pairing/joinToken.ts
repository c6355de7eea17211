import { createHash, timingSafeEqual } from 'node:crypto';
import { loadOrCreateSecretToken, writeNewSecretToken } from '../config/secretToken.js';

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32,128}$/;

/** Whether `text` could be a join token at all; says nothing about whether it is the right one. */
export function isJoinTokenShaped(text: string): boolean {
  return TOKEN_SHAPE.test(text);
}

/**
 * The master's join token (`HomePaths.joinToken`), created on first use and kept across
 * restarts, so that a printed pair command stays valid until the token is rotated.
 */
export function loadOrCreateJoinToken(path: string): string {
  return loadOrCreateSecretToken(path, 'join token', TOKEN_SHAPE);
}

/** Replaces the join token on disk (`diane slave join-token rotate`); the caller applies it. */
export function rotateJoinTokenFile(path: string): string {
  return writeNewSecretToken(path);
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
