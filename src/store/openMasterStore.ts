import { openPostgresStore } from './postgresStore.js';
import { openStore } from './sqliteStore.js';
import type { MasterStore, StoreOptions } from './store.js';
import type { StoreTarget } from './storeTarget.js';

/** Opens (creating and migrating) the master's store wherever `--store` put it. */
export async function openMasterStore(target: StoreTarget, opts: StoreOptions = {}): Promise<MasterStore> {
  if (target.kind === 'sqlite') return openStore(target.path, opts);
  return openPostgresStore({
    connectionString: target.connectionString,
    schema: target.schema,
    display: target.display,
    ...opts,
  });
}
