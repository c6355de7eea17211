import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/files.js';
import { DianeError, ExitCode } from '../errors.js';
import { MASTER_ID_PATTERN } from './busWire.js';

export const MASTER_ID_FILE = 'master-id';

/**
 * The id other masters know this one by (subjects, presence entries, `slave list`). It must stay
 * the same across restarts, so that a restarted master takes over its own stale presence
 * entries: chosen once (`--master-id`, or the host name and a random suffix) and kept in
 * `$DIANE_HOME/master-id`.
 */
export function loadOrCreateMasterId(home: string, wanted?: string): string {
  if (wanted !== undefined) return checkMasterId(wanted);
  const file = join(home, MASTER_ID_FILE);
  if (existsSync(file)) return checkMasterId(readFileSync(file, 'utf8').trim());
  const base = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32);
  const id = `${base || 'master'}-${randomBytes(3).toString('hex')}`;
  writeFileAtomic(file, `${id}\n`, 0o600);
  return id;
}

export function checkMasterId(id: string): string {
  if (!MASTER_ID_PATTERN.test(id)) {
    throw new DianeError(
      `${JSON.stringify(id.slice(0, 64))} is not a valid master id: use 1-48 lowercase letters, digits and hyphens`,
      ExitCode.config,
      'MASTER_ID_INVALID',
    );
  }
  return id;
}
