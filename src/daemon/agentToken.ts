import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/files.js';
import { DianeError, ExitCode } from '../errors.js';

/**
 * The bearer token agents present when the MCP endpoint listens beyond loopback. Generated
 * once into `$DIANE_HOME/agent-token` (0600) and printed by `diane info`.
 */
export function loadOrCreateAgentToken(path: string): string {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (!/^[A-Za-z0-9_-]{32,}$/.test(token)) {
      throw new DianeError(
        `${path} does not hold a valid token; delete it to generate a new one`,
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
