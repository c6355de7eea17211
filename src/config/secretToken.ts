import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { DianeError, ExitCode } from '../errors.js';
import { writeFileAtomic } from './files.js';

/**
 * A token kept in a file of the home (the agent token, the pairing join token): read if it is
 * there, otherwise generated (256 random bits, base64url) and written atomically, 0600. A file
 * that others can read, that someone else owns, or that does not hold a token of `shape` is
 * refused rather than used: whoever holds the token is let in.
 */
export function loadOrCreateSecretToken(path: string, what: string, shape: RegExp): string {
  const existing = readPrivateFile(path, what);
  if (existing !== undefined) {
    const token = existing.trim();
    if (!shape.test(token)) {
      throw new DianeError(
        `${path} does not hold a valid ${what}; delete it to generate a new one`,
        ExitCode.config,
      );
    }
    return token;
  }
  return writeNewSecretToken(path);
}

/** A new token (256 random bits, base64url) in place of the file's, atomically, 0600. */
export function writeNewSecretToken(path: string): string {
  const token = randomBytes(32).toString('base64url');
  writeFileAtomic(path, `${token}\n`, 0o600);
  return token;
}

/** The file's text, checked on the descriptor that is read (no window to swap the file). */
function readPrivateFile(path: string, what: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const euid = process.geteuid?.();
    if (euid !== undefined && st.uid !== euid) {
      throw new DianeError(
        `${path} belongs to uid ${st.uid}, not to uid ${euid} who runs Diane; it is not used. ` +
          `Remove it (rm ${path}) and Diane generates a new ${what}.`,
        ExitCode.config,
      );
    }
    if (euid !== undefined && st.mode & 0o077) {
      throw new DianeError(
        `${path} is readable or writable by others (mode 0${(st.mode & 0o777).toString(8)}); it is not ` +
          `used. If only you could have read it: chmod 600 ${path}; otherwise remove it and Diane ` +
          `generates a new ${what}.`,
        ExitCode.config,
      );
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
