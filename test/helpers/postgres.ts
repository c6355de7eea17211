import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server the PostgreSQL tests use: DIANE_TEST_POSTGRES, or a local one with trust auth. */
export const TEST_POSTGRES_URL = process.env.DIANE_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether a PostgreSQL server answers at TEST_POSTGRES_URL; when not, prints why the tests that
 * need one are skipped, so a skip is never silent.
 */
export async function postgresAvailable(what: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (err) {
    console.warn(`${what}: skipped, no PostgreSQL at ${TEST_POSTGRES_URL} (${(err as Error).message})`);
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A schema name no other test uses; drop it with dropSchemas. */
export function newSchemaName(prefix = 'diane_test'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** The store URL of a schema on the test server. */
export function storeUrlFor(schema: string): string {
  const url = new URL(TEST_POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return url.href;
}

export async function dropSchemas(schemas: Iterable<string>): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** One query against the test server, for checks the repositories do not offer. */
export async function queryTestServer<Row extends pg.QueryResultRow>(
  sql: string,
  values: unknown[] = [],
): Promise<Row[]> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    return (await client.query<Row>(sql, values)).rows;
  } finally {
    await client.end();
  }
}
