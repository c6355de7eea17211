import { createHash, randomBytes } from 'node:crypto';

/** A per-agent bearer token: 32 random bytes, base64url (43 characters). */
export const AGENT_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * A new agent token and the hash to store. The token is shown once (to the person creating or
 * rotating the agent) and never stored: the database holds only `hash`.
 */
export function generateAgentToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashAgentToken(token) };
}

/**
 * SHA-256 (hex) of a token, as stored in `agents.token_hash` and looked up on every request.
 *
 * A plain fast hash is enough here, unlike for passwords: slow, salted hashes (scrypt, argon2)
 * exist to make guessing a low-entropy secret from a stolen hash expensive, but these tokens are
 * 256 random bits, so there is nothing to guess and SHA-256's preimage resistance protects them
 * fully. Being unsalted and deterministic is what lets a request's token be found through the
 * unique index on the hash: the raw token is never compared with anything, so there is no
 * timing-sensitive string comparison to get wrong.
 */
export function hashAgentToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
