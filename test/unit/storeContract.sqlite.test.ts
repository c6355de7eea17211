import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/index.js';
import { type ContractBackend, describeStoreContract } from '../contract/store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'diane-contract-'));
let n = 0;
let path = '';

const sqlite: ContractBackend = {
  async fresh() {
    path = join(dir, `diane-${++n}.db`);
  },
  async open(opts) {
    return openStore(path, opts);
  },
  async migrationRuns() {
    // Each migration bumps user_version by one inside its own transaction.
    const db = new Database(path, { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  },
  async dispose() {
    rmSync(dir, { recursive: true, force: true });
  },
};

describeStoreContract('SQLite', () => sqlite);
