import { DianeError, ExitCode } from '../errors.js';

export type StoreErrorCode =
  | 'newer-schema'
  | 'older-schema'
  | 'corrupt'
  | 'foreign'
  | 'locked'
  | 'unreadable'
  | 'unreachable';

/** A database problem a person can act on; the message says what to do, no stack trace needed. */
export class StoreError extends DianeError {
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string) {
    super(message, ExitCode.store, code);
    this.name = 'StoreError';
  }
}

/**
 * Translates what SQLite reports while opening into a StoreError, or returns undefined for
 * anything else (a bug, which should surface with its stack).
 */
export function storeErrorFrom(err: unknown, path: string): StoreError | undefined {
  if (err instanceof StoreError) return err;
  if (!(err instanceof Error)) return undefined;
  const sqliteCode = (err as { code?: unknown }).code;
  const code = typeof sqliteCode === 'string' ? sqliteCode : '';
  const detail = err.message;
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT')) {
    return new StoreError(
      'corrupt',
      `${path} is not a valid Diane database (${detail}). It was left untouched; move it aside to start fresh.`,
    );
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new StoreError(
      'locked',
      `${path} is locked by another process (${detail}). Wait for it to finish, or stop the other Diane.`,
    );
  }
  if (
    /^SQLITE_(CANTOPEN|PERM|READONLY|IOERR|AUTH)/.test(code) ||
    // better-sqlite3 checks the directory itself and throws a plain TypeError.
    /directory does not exist/.test(detail)
  ) {
    return new StoreError('unreadable', `cannot open ${path} for reading and writing (${detail}).`);
  }
  return undefined;
}
