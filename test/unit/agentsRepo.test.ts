import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AGENT_TOKEN_PATTERN, generateAgentToken, hashAgentToken } from '../../src/config/agentTokens.js';
import { DianeError, ExitCode } from '../../src/errors.js';
import {
  latestSchemaVersion,
  migrations,
  openStore,
  type SqliteMasterStore as Store,
} from '../../src/store/index.js';

let dir: string;
let dbPath: string;
const opened: Store[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'diane-agents-'));
  dbPath = join(dir, 'diane.db');
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(opts?: Parameters<typeof openStore>[1]): Store {
  const store = openStore(dbPath, opts);
  opened.push(store);
  return store;
}

const T0 = new Date('2025-03-01T10:00:00.000Z');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

async function thrown(fn: () => unknown): Promise<DianeError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DianeError);
    return err as DianeError;
  }
  throw new Error('expected a DianeError');
}

describe('agent tokens', () => {
  it('are 256 random bits in base64url, stored as their SHA-256', async () => {
    const a = generateAgentToken();
    const b = generateAgentToken();
    expect(a.token).toMatch(AGENT_TOKEN_PATTERN);
    expect(Buffer.from(a.token, 'base64url')).toHaveLength(32);
    expect(a.token).not.toBe(b.token);
    expect(a.hash).toBe(hashAgentToken(a.token));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    // The known answer pins the algorithm: stored hashes must keep matching across versions.
    expect(hashAgentToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('agents', () => {
  it('creates, finds by name and by token hash, lists, updates, rotates and removes', async () => {
    let clock = T0;
    const repo = open({ now: () => clock }).agents;
    const { token, hash } = generateAgentToken();
    const created = await repo.create({
      name: 'claude-code',
      tokenHash: hash,
      allow: ['ws1_*'],
      deny: ['*_rm'],
    });
    expect(created).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'claude-code',
      tokenHash: hash,
      allow: ['ws1_*'],
      deny: ['*_rm'],
      mode: 'full',
      recordArguments: false,
      createdAt: T0,
      updatedAt: T0,
      tokenRotatedAt: T0,
      lastUsedAt: null,
    });
    expect(await repo.getByName('claude-code')).toEqual(created);
    expect(await repo.findByTokenHash(hashAgentToken(token))).toEqual(created);
    expect(await repo.findByTokenHash(hashAgentToken(`${token}x`))).toBeUndefined();
    expect(await repo.getByName('nobody')).toBeUndefined();

    const other = await repo.create({ name: 'a-bot', tokenHash: generateAgentToken().hash });
    expect(other).toMatchObject({ allow: [], deny: [], mode: 'full', recordArguments: false });
    expect((await repo.list()).map((a) => a.name)).toEqual(['a-bot', 'claude-code']);

    clock = minutes(5);
    const updated = await repo.update('claude-code', {
      allow: ['*'],
      mode: 'discovery',
      recordArguments: true,
    });
    expect(updated).toEqual({
      ...created,
      allow: ['*'],
      mode: 'discovery',
      recordArguments: true,
      updatedAt: minutes(5),
    });
    // Fields left out keep their value.
    expect(await repo.update('claude-code', { deny: [] })).toMatchObject({
      allow: ['*'],
      deny: [],
      mode: 'discovery',
    });
    expect((await repo.update('claude-code', { recordArguments: false }))?.recordArguments).toBe(false);
    expect(await repo.update('nobody', { allow: [] })).toBeUndefined();

    clock = minutes(9);
    const next = generateAgentToken();
    expect(await repo.rotateTokenHash('claude-code', next.hash)).toBe(true);
    expect(await repo.findByTokenHash(hash)).toBeUndefined();
    expect(await repo.findByTokenHash(next.hash)).toMatchObject({
      name: 'claude-code',
      tokenRotatedAt: minutes(9),
      updatedAt: minutes(9),
      createdAt: T0,
    });
    expect(await repo.rotateTokenHash('nobody', generateAgentToken().hash)).toBe(false);

    expect(await repo.remove('claude-code')).toBe(true);
    expect(await repo.remove('claude-code')).toBe(false);
    expect(await repo.findByTokenHash(next.hash)).toBeUndefined();
    expect((await repo.list()).map((a) => a.name)).toEqual(['a-bot']);
  });

  it.each([
    ['', false],
    ['a', true],
    ['claude-code_2', true],
    ['0day', true],
    ['a'.repeat(64), true],
    ['a'.repeat(65), false],
    ['-lead', false],
    ['_lead', false],
    ['Claude', false],
    ['a b', false],
    ['a.b', false],
    ['agent\n', false],
    ['é', false],
  ])('validates the name %j (valid: %s)', async (name, valid) => {
    const repo = open().agents;
    const create = () => repo.create({ name, tokenHash: generateAgentToken().hash });
    if (valid) expect((await create()).name).toBe(name);
    else {
      const err = await thrown(create);
      expect(err.exitCode).toBe(ExitCode.usage);
      expect(err.code).toBe('invalid-agent-name');
    }
  });

  it('refuses an invalid name written past the repository (CHECK constraint)', async () => {
    const store = open();
    const insert = (name: string) =>
      store.db
        .prepare(
          `INSERT INTO agents (id, name, token_hash, allow, deny, created_at, updated_at, token_rotated_at)
           VALUES (?, ?, ?, '[]', '[]', 'x', 'x', 'x')`,
        )
        .run(name, name, `h-${name}`);
    expect(() => insert('Bad Name')).toThrow(/CHECK/);
    expect(() => insert('-x')).toThrow(/CHECK/);
    expect(() => insert('a'.repeat(65))).toThrow(/CHECK/);
    expect(insert('ok-name').changes).toBe(1);
  });

  it('refuses a taken name with a clear error, and a duplicate token hash', async () => {
    const repo = open().agents;
    const { hash } = generateAgentToken();
    await repo.create({ name: 'bot', tokenHash: hash });
    const err = await thrown(() => repo.create({ name: 'bot', tokenHash: generateAgentToken().hash }));
    expect(err.message).toBe('an agent named "bot" already exists');
    expect(err.code).toBe('agent-exists');
    await expect(repo.create({ name: 'bot2', tokenHash: hash })).rejects.toThrow(/UNIQUE.*token_hash/);
  });

  it('refuses an unknown mode, and reads a mode of a newer Diane as the narrower one', async () => {
    const store = open();
    const repo = store.agents;
    await expect(
      repo.create({ name: 'x', tokenHash: 'h', mode: 'root' as unknown as 'full' }),
    ).rejects.toThrow(/unknown agent mode/);
    await repo.create({ name: 'y', tokenHash: 'h2' });
    store.db.prepare("UPDATE agents SET mode = 'future' WHERE name = 'y'").run();
    expect((await repo.getByName('y'))?.mode).toBe('discovery');
  });

  it('touches last_used_at at most once per granularity, leaving updated_at alone', async () => {
    const repo = open({ now: () => T0 }).agents;
    const { id } = await repo.create({ name: 'bot', tokenHash: 'h' });
    expect(await repo.touchLastUsed(id, minutes(1))).toBe(true);
    expect(await repo.touchLastUsed(id, minutes(1.5))).toBe(false);
    expect((await repo.getByName('bot'))?.lastUsedAt).toEqual(minutes(1));
    expect(await repo.touchLastUsed(id, minutes(2), 60_000)).toBe(true);
    expect(await repo.touchLastUsed(id, minutes(2.1), 0)).toBe(true);
    expect(await repo.getByName('bot')).toMatchObject({ lastUsedAt: minutes(2.1), updatedAt: T0 });
    expect(await repo.touchLastUsed('no-such-id', minutes(3))).toBe(false);
  });

  it('is usable as a background write through tryWrite', async () => {
    const store = open();
    const { id } = await store.agents.create({ name: 'bot', tokenHash: 'h' });
    expect(await store.tryWrite((tx) => tx.agents.touchLastUsed(id, minutes(1)))).toEqual({
      written: true,
      value: true,
    });
  });
});

describe('schema v5', () => {
  it('upgrades a v4 database in place, keeping its rows, with the new tables empty', async () => {
    const old = new Database(dbPath);
    for (const migration of migrations.slice(0, 4)) old.exec(migration.sql);
    old.pragma('user_version = 4');
    old.pragma('application_id = 0x4449414e');
    old
      .prepare(
        `INSERT INTO slave_servers (id, host_id, cert_serial, issued_at, expires_at)
         VALUES ('s1', 'ws1', '0a01', '2025-03-01T10:00:00.000Z', '2026-03-01T10:00:00.000Z')`,
      )
      .run();
    old.close();
    const store = open();
    expect(store.schemaVersion).toBe(latestSchemaVersion);
    expect(latestSchemaVersion).toBe(6);
    expect((await store.slaveServers.getByHostId('ws1'))?.certSerial).toBe('0a01');
    expect(await store.agents.list()).toEqual([]);
    expect(await store.auditEvents.count()).toBe(0);
    const indexes = store.db
      .prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_events' ORDER BY name",
      )
      .pluck()
      .all();
    expect(indexes).toEqual([
      'audit_events_agent',
      'audit_events_at',
      'audit_events_host',
      'audit_events_outcome',
    ]);
    await store.agents.create({ name: 'bot', tokenHash: 'h' });
    await store.close();
    // And it opens again as an up-to-date database.
    expect((await open().agents.list()).map((a) => a.name)).toEqual(['bot']);
  });
});
