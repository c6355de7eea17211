import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PAIRING_SETTINGS, PairingError, PairingService } from '../../src/pairing/index.js';
import { loadOrCreateCa, makeCsr, SlaveCas } from '../../src/pki/index.js';
import {
  latestSchemaVersion,
  openPostgresStore,
  type PostgresMasterStore,
  parseStoreTarget,
  StoreError,
} from '../../src/store/index.js';
import { type ContractBackend, describeStoreContract } from '../contract/store.contract.js';
import {
  dropSchemas,
  newSchemaName,
  postgresAvailable,
  queryTestServer,
  storeUrlFor,
} from '../helpers/postgres.js';

const available = await postgresAvailable('store contract: PostgreSQL');
const schemas = new Set<string>();
let schema = '';

function openOn(name: string, now?: () => Date): Promise<PostgresMasterStore> {
  const target = parseStoreTarget(storeUrlFor(name), '/unused');
  if (target.kind !== 'postgres') throw new Error('expected a PostgreSQL target');
  return openPostgresStore({ ...target, ...(now ? { now } : {}) });
}

const postgres: ContractBackend = {
  async fresh() {
    schema = newSchemaName();
    schemas.add(schema);
  },
  open: (opts) => openOn(schema, opts?.now),
  async migrationRuns() {
    const rows = await queryTestServer<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${schema}.schema_migrations`,
    );
    return rows[0]?.n ?? 0;
  },
  async dispose() {
    await dropSchemas(schemas);
  },
};

describeStoreContract('PostgreSQL', () => (available ? postgres : undefined));

// The contract drops its schemas when it ends; this catches those of the tests below.
afterAll(async () => {
  if (available) await dropSchemas(schemas);
});

describe.skipIf(!available)('two masters deciding the same pairing request', () => {
  it('approve on one and deny on the other: exactly one wins, and the store agrees with it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'diane-pg-pairing-'));
    const ca = await loadOrCreateCa({
      certPath: join(root, 'slave-ca-cert.pem'),
      keyPath: join(root, 'slave-ca-key.pem'),
      keyBits: 2048,
    });
    const name = newSchemaName();
    schemas.add(name);
    const stores = [await openOn(name), await openOn(name)];
    const [a, b] = stores.map(
      (store) =>
        new PairingService({
          store,
          ca: new SlaveCas({ current: ca }),
          settings: { ...DEFAULT_PAIRING_SETTINGS, maxPendingTotal: 100, maxPendingPerPrefix: 100 },
        }),
    ) as [PairingService, PairingService];
    try {
      for (let round = 0; round < 4; round++) {
        const hostId = `ws${round}`;
        const { csrPem } = await makeCsr(hostId);
        const { pairingCode } = await a.submit({ hostId, csrPem, sourceAddress: `192.0.2.${round}` });
        const [approved, denied] = await Promise.allSettled([
          a.approve(hostId, pairingCode),
          b.deny(hostId, pairingCode),
        ]);
        expect([approved.status, denied.status].filter((s) => s === 'fulfilled')).toHaveLength(1);
        const loser = approved.status === 'rejected' ? approved : (denied as PromiseRejectedResult);
        expect(loser.reason).toBeInstanceOf(PairingError);
        const enrolled = await stores[1]!.slaveServers.getByHostId(hostId);
        const [request] = await stores[1]!.pairingRequests.listForHost(hostId);
        if (approved.status === 'fulfilled') {
          expect(request?.status).toBe('approved');
          expect(enrolled?.certSerial).toBe(approved.value.certSerial);
        } else {
          expect(request?.status).toBe('denied');
          expect(enrolled).toBeUndefined();
        }
      }
    } finally {
      for (const store of stores) await store.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!available)('PostgreSQL store specifics', () => {
  it('applies the migrations in exactly one of several masters starting at once', async () => {
    const name = newSchemaName();
    schemas.add(name);
    const stores = await Promise.all([openOn(name), openOn(name), openOn(name)]);
    try {
      expect(stores.map((s) => s.migrationsApplied).sort()).toEqual([0, 0, latestSchemaVersion]);
      const rows = await queryTestServer<{ version: number }>(
        `SELECT version FROM ${name}.schema_migrations ORDER BY version`,
      );
      expect(rows.map((r) => r.version)).toEqual(
        Array.from({ length: latestSchemaVersion }, (_, i) => i + 1),
      );
    } finally {
      for (const store of stores) await store.close();
      await dropSchemas([name]);
    }
  });

  it("refuses a schema holding another program's tables, and one of a newer Diane", async () => {
    const foreign = newSchemaName();
    const newer = newSchemaName();
    schemas.add(foreign).add(newer);
    await queryTestServer(`CREATE SCHEMA ${foreign}; CREATE TABLE ${foreign}.orders (id int)`);
    const refusal = await openOn(foreign).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(StoreError);
    expect((refusal as StoreError).code).toBe('foreign');

    (await openOn(newer)).close();
    await queryTestServer(`INSERT INTO ${newer}.schema_migrations VALUES (999, 'future', 'x')`);
    const tooNew = await openOn(newer).catch((err: unknown) => err);
    expect((tooNew as StoreError).code).toBe('newer-schema');
    await dropSchemas([foreign, newer]);
  });

  it('says a server that does not answer is unreachable', async () => {
    const error = await openPostgresStore({
      connectionString: 'postgres://postgres@127.0.0.1:1/test',
      schema: 'diane',
      display: 'postgres://postgres@127.0.0.1:1/test',
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('unreachable');
    expect((error as StoreError).exitCode).toBe(4);
  });
});
