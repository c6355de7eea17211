import { resolve } from 'node:path';
import { DianeError, ExitCode } from '../errors.js';

/** Where the master keeps its state (`diane serve --store`, env DIANE_STORE). */
export type StoreTarget =
  | { kind: 'sqlite'; path: string }
  | {
      kind: 'postgres';
      /** The connection URL for `pg`, without Diane's own `schema` parameter. */
      connectionString: string;
      /** The PostgreSQL schema holding Diane's tables (`?schema=`, default `diane`). */
      schema: string;
      /** The URL as messages show it: the password replaced. */
      display: string;
    };

export const DEFAULT_POSTGRES_SCHEMA = 'diane';
/** A plain identifier, so it can be written into SQL unquoted and means the same everywhere. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Reads a `--store` value: empty for the SQLite file in DIANE_HOME, `sqlite:<path>` for another
 * file, `postgres://` or `postgresql://` URLs for PostgreSQL. Anything else is a usage error.
 */
export function parseStoreTarget(value: string | undefined, defaultSqlitePath: string): StoreTarget {
  const text = value?.trim() ?? '';
  if (text === '') return { kind: 'sqlite', path: defaultSqlitePath };
  if (text.startsWith('sqlite:')) {
    const path = text.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw usage('sqlite: needs a file path, as sqlite:/var/lib/diane/diane.db');
    return { kind: 'sqlite', path: resolve(path) };
  }
  if (/^postgres(ql)?:\/\//i.test(text)) return parsePostgresUrl(text);
  throw usage(
    `--store ${JSON.stringify(text.slice(0, 80))} is neither sqlite:<path> nor a postgres:// or ` +
      'postgresql:// URL',
  );
}

function parsePostgresUrl(text: string): StoreTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage('--store: the PostgreSQL URL does not parse (postgres://user:password@host:5432/database)');
  }
  const schema = url.searchParams.get('schema') ?? DEFAULT_POSTGRES_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw usage(
      `--store: schema ${JSON.stringify(schema)} must be lower-case letters, digits and _ (at most 63)`,
    );
  }
  url.searchParams.delete('schema');
  const display = new URL(url.href);
  if (display.password !== '') display.password = '***';
  return { kind: 'postgres', connectionString: url.href, schema, display: display.href };
}

function usage(message: string): DianeError {
  return new DianeError(message, ExitCode.usage, 'invalid-store');
}
