import { executionAsyncId } from 'node:async_hooks';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditTail } from '../../src/audit/auditTail.js';
import { DianeError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import {
  type AuditRecord,
  latestSchemaVersion,
  type MasterStore,
  type NewPairingRequest,
  type NewSlaveServer,
  type StoreOptions,
} from '../../src/store/index.js';

/**
 * What the contract needs of a backend. Each test gets a fresh, empty database (`fresh`); every
 * store opened until the next `fresh` shares it, as several masters share one PostgreSQL schema.
 */
export interface ContractBackend {
  /** Switches to a new, empty database. */
  fresh(): Promise<void>;
  /** Opens (creating and migrating) a store on the current database. */
  open(opts?: StoreOptions): Promise<MasterStore>;
  /** How many migrations were ever applied to the current database (each at most once). */
  migrationRuns(): Promise<number>;
  /** Drops everything made by this file. */
  dispose(): Promise<void>;
}

const T0 = new Date('2025-03-01T10:00:00.000Z');
const silent = createLogger('fatal');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

function slave(hostId: string, certSerial = `serial-${hostId}`): NewSlaveServer {
  return { hostId, certSerial, issuedAt: T0, expiresAt: new Date('2026-03-01T10:00:00.000Z') };
}

function request(hostId: string, expiresAt: Date, extra: Partial<NewPairingRequest> = {}): NewPairingRequest {
  return { hostId, pairingCode: '123-456', csr: `csr-${hostId}`, expiresAt, requestedAt: T0, ...extra };
}

function auditRecord(extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    at: T0,
    agent: 'owner',
    kind: 'tools/call',
    exposedName: 'ws1_read',
    host: 'ws1',
    server: 'fs',
    originalName: 'read',
    durationMs: 12.5,
    outcome: 'ok',
    error: null,
    bytesIn: 10,
    bytesOut: 5_000_000_000,
    arguments: '{"path":"/x"}',
    callId: 'c1',
    ...extra,
  };
}

/**
 * The behaviour every store implementation owes its callers: each repository method, the
 * transactions, the compare-and-set of pairing decisions across two stores on one database, and
 * migrations that run once however many stores start together.
 */
export function describeStoreContract(name: string, backend: () => ContractBackend | undefined): void {
  describe(`store contract: ${name}`, () => {
    const opened: MasterStore[] = [];
    let clock = T0;
    const open = async (opts: StoreOptions = { now: () => clock }) => {
      const store = await b().open(opts);
      opened.push(store);
      return store;
    };
    const b = (): ContractBackend => {
      const found = backend();
      if (!found) throw new Error('no backend');
      return found;
    };

    beforeEach(async () => {
      clock = T0;
      await b().fresh();
    });
    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close();
    });
    afterAll(async () => {
      await backend()?.dispose();
    });

    describe('slaveServers', () => {
      it('creates, reads, updates and deletes', async () => {
        const repo = (await open()).slaveServers;
        const created = await repo.create(slave('workstation'));
        expect(created).toEqual({
          id: expect.stringMatching(/^[0-9a-f-]{36}$/),
          hostId: 'workstation',
          certSerial: 'serial-workstation',
          issuedAt: T0,
          expiresAt: new Date('2026-03-01T10:00:00.000Z'),
          lastSeen: null,
          enabled: true,
          createdAt: T0,
          updatedAt: T0,
          keyFingerprint: null,
          caFingerprint: null,
          pending: null,
          lastRenewedAt: null,
          renewalError: null,
          renewalErrorAt: null,
        });
        await expect(repo.create(slave('workstation'))).rejects.toThrow();
        await repo.create(slave('laptop'));
        await repo.create(slave('Z-upper'));
        // Bytewise order on both backends, as SQLite's BINARY collation sorts.
        expect((await repo.list()).map((s) => s.hostId)).toEqual(['Z-upper', 'laptop', 'workstation']);

        expect(await repo.updateLastSeen('workstation', minutes(3))).toBe(true);
        clock = minutes(5);
        expect(await repo.setEnabled('workstation', false)).toBe(true);
        let current = (await repo.getByHostId('workstation'))!;
        expect(current.lastSeen).toEqual(minutes(3));
        expect(current.enabled).toBe(false);
        expect(current.updatedAt).toEqual(minutes(5));

        clock = minutes(7);
        const renewed = { certSerial: 'serial-2', issuedAt: minutes(7), expiresAt: minutes(60 * 24 * 365) };
        expect(await repo.updateCertificate('workstation', renewed)).toBe(true);
        current = (await repo.getByHostId('workstation'))!;
        expect(current).toMatchObject({ ...renewed, updatedAt: minutes(7), id: created.id, createdAt: T0 });

        expect(await repo.updateLastSeen('nobody', T0)).toBe(false);
        expect(await repo.setEnabled('nobody', true)).toBe(false);
        expect(await repo.updateCertificate('nobody', renewed)).toBe(false);
        expect(await repo.delete('workstation')).toBe(true);
        expect(await repo.delete('workstation')).toBe(false);
        expect(await repo.getByHostId('workstation')).toBeUndefined();
      });

      it('refuses two slaves holding the same serial', async () => {
        const repo = (await open()).slaveServers;
        await repo.create(slave('ws1', 'same'));
        await expect(repo.create(slave('ws2', 'same'))).rejects.toThrow();
      });

      it('enrolls, re-enrolls, and finds hosts by serial and key', async () => {
        const repo = (await open()).slaveServers;
        const enrollment = (certSerial: string, keyFingerprint: string, issuedAt = T0) => ({
          hostId: 'ws1',
          certSerial,
          issuedAt,
          expiresAt: minutes(60),
          keyFingerprint,
          caFingerprint: 'sha256:ca1',
        });
        const first = await repo.upsertEnrollment(enrollment('aa01', 'sha256:k1'));
        expect(first).toMatchObject({ certSerial: 'aa01', keyFingerprint: 'sha256:k1', enabled: true });
        await repo.updateLastSeen('ws1', minutes(2));
        await repo.setEnabled('ws1', false);
        await repo.setRenewalError('ws1', 'refused', minutes(3));
        clock = minutes(5);
        const second = await repo.upsertEnrollment(enrollment('bb02', 'sha256:k2', minutes(5)));
        expect(second).toMatchObject({
          id: first.id,
          certSerial: 'bb02',
          keyFingerprint: 'sha256:k2',
          caFingerprint: 'sha256:ca1',
          enabled: true,
          lastSeen: minutes(2),
          createdAt: T0,
          updatedAt: minutes(5),
          renewalError: null,
          renewalErrorAt: null,
        });
        expect((await repo.getByCertSerial('bb02'))?.hostId).toBe('ws1');
        expect(await repo.getByCertSerial('aa01')).toBeUndefined();
        expect((await repo.getByKeyFingerprint('sha256:k2'))?.hostId).toBe('ws1');
        expect(await repo.getByKeyFingerprint('sha256:k1')).toBeUndefined();
      });

      it('records, promotes and clears a pending certificate, and renewal errors', async () => {
        const repo = (await open()).slaveServers;
        await repo.create({ ...slave('ws1', 'cur'), keyFingerprint: 'sha256:cur' });
        const pending = {
          certSerial: 'next',
          keyFingerprint: 'sha256:next',
          caFingerprint: 'sha256:ca2',
          issuedAt: minutes(1),
          expiresAt: minutes(100),
        };
        expect(await repo.setRenewalError('ws1', 'too early', minutes(1))).toBe(true);
        expect(await repo.getByHostId('ws1')).toMatchObject({
          renewalError: 'too early',
          renewalErrorAt: minutes(1),
        });
        expect(await repo.recordPending('ws1', pending)).toBe(true);
        expect(await repo.recordPending('nobody', pending)).toBe(false);
        const row = (await repo.getByCertSerial('next'))!;
        expect(row).toMatchObject({ hostId: 'ws1', certSerial: 'cur', pending, renewalError: null });
        expect(await repo.promotePending('ws1', 'other', minutes(2))).toBe(false);
        expect(await repo.promotePending('ws1', 'next', minutes(2))).toBe(true);
        expect(await repo.getByHostId('ws1')).toMatchObject({
          certSerial: 'next',
          keyFingerprint: 'sha256:next',
          caFingerprint: 'sha256:ca2',
          issuedAt: minutes(1),
          expiresAt: minutes(100),
          lastRenewedAt: minutes(2),
          pending: null,
        });
        await repo.recordPending('ws1', { ...pending, certSerial: 'third' });
        expect(await repo.clearPending('ws1', 'nope')).toBe(false);
        expect(await repo.clearPending('ws1', 'third')).toBe(true);
        expect((await repo.getByHostId('ws1'))?.pending).toBeNull();
        expect(await repo.setRenewalError('ws1', null, minutes(3))).toBe(true);
        expect(await repo.getByHostId('ws1')).toMatchObject({ renewalError: null, renewalErrorAt: null });
      });

      it('backfills the issuing CA of rows that name none', async () => {
        const repo = (await open()).slaveServers;
        await repo.create(slave('ws1'));
        await repo.upsertEnrollment({
          ...slave('ws2'),
          keyFingerprint: 'sha256:k',
          caFingerprint: 'sha256:known',
        });
        expect(await repo.backfillCaFingerprint('sha256:old')).toBe(1);
        expect((await repo.getByHostId('ws1'))?.caFingerprint).toBe('sha256:old');
        expect((await repo.getByHostId('ws2'))?.caFingerprint).toBe('sha256:known');
        expect(await repo.backfillCaFingerprint('sha256:old')).toBe(0);
      });
    });

    describe('revokedCredentials', () => {
      it('revokes once per serial, by serial and by key, in insertion order', async () => {
        const repo = (await open()).revokedCredentials;
        expect(await repo.isRevoked('s1')).toBe(false);
        const first = await repo.revoke({
          hostId: 'ws1',
          certSerial: 's1',
          reason: 'Compromised',
          keyFingerprint: 'sha256:k1',
        });
        expect(first).toEqual({
          id: expect.any(String),
          hostId: 'ws1',
          certSerial: 's1',
          revokedAt: T0,
          reason: 'Compromised',
          keyFingerprint: 'sha256:k1',
        });
        clock = minutes(1);
        // A second revocation of the same serial keeps the first record.
        expect(await repo.revoke({ hostId: 'ws1', certSerial: 's1', reason: 'again' })).toEqual(first);
        expect(await repo.isRevoked('s1')).toBe(true);
        expect(await repo.isKeyRevoked('sha256:k1')).toBe(true);
        expect(await repo.isKeyRevoked('sha256:k2')).toBe(false);
        expect(await repo.getBySerial('missing')).toBeUndefined();

        // Same millisecond: insertion order decides.
        await repo.revoke({ hostId: 'ws2', certSerial: 'z' });
        await repo.revoke({ hostId: 'ws2', certSerial: 'a' });
        expect((await repo.list()).map((r) => r.certSerial)).toEqual(['s1', 'z', 'a']);
        expect((await repo.listForHost('ws2')).map((r) => r.certSerial)).toEqual(['z', 'a']);
        expect(await repo.listForHost('nobody')).toEqual([]);
      });

      it('revokes a host all or none', async () => {
        const store = await open();
        const stored = await store.revokedCredentials.revokeHost(
          'ws1',
          ['p1', { certSerial: 'p2', keyFingerprint: 'sha256:k2' }],
          'retired',
        );
        expect(stored.map((r) => [r.certSerial, r.keyFingerprint, r.reason])).toEqual([
          ['p1', null, 'retired'],
          ['p2', 'sha256:k2', 'retired'],
        ]);
        // Inside a transaction it joins it: a failure after it takes it back.
        await expect(
          store.transaction(async (tx) => {
            await tx.revokedCredentials.revokeHost('ws2', ['q1', 'q2'], null);
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await store.revokedCredentials.listForHost('ws2')).toEqual([]);
      });
    });

    describe('pairingRequests', () => {
      it('creates, finds and lists requests', async () => {
        const repo = (await open()).pairingRequests;
        const created = await repo.create(
          request('ws1', minutes(10), {
            requestIdHash: 'h1',
            sourceAddress: '10.0.0.1',
            keyFingerprint: 'sha256:k1',
            rePair: true,
          }),
        );
        expect(created).toEqual({
          id: expect.any(String),
          hostId: 'ws1',
          pairingCode: '123-456',
          csr: 'csr-ws1',
          requestedAt: T0,
          expiresAt: minutes(10),
          status: 'pending',
          requestIdHash: 'h1',
          sourceAddress: '10.0.0.1',
          keyFingerprint: 'sha256:k1',
          rePair: true,
          clientCert: null,
          certSerial: null,
          certExpiresAt: null,
          decidedAt: null,
        });
        expect(await repo.get(created.id)).toEqual(created);
        expect(await repo.getByRequestIdHash('h1')).toEqual(created);
        expect(await repo.getByRequestIdHash('h2')).toBeUndefined();
        const second = await repo.create(request('ws1', minutes(20), { pairingCode: '999-000' }));
        const other = await repo.create(request('ws2', minutes(5), { pairingCode: '555-111' }));
        // Same requested_at: newest (last inserted) first for a host, oldest first pending.
        expect((await repo.listForHost('ws1')).map((r) => r.id)).toEqual([second.id, created.id]);
        expect((await repo.listPending(T0)).map((r) => r.id)).toEqual([created.id, second.id, other.id]);
        expect((await repo.listPending(minutes(5))).map((r) => r.id)).toEqual([created.id, second.id]);
        expect((await repo.findPending('ws1', '999-000'))?.id).toBe(second.id);
        expect(await repo.findPending('ws1', '555-111')).toBeUndefined();
        expect(await repo.pendingCodes()).toEqual(new Set(['123-456', '999-000', '555-111']));
        expect(await repo.hasPendingWithKey('sha256:k1', T0)).toBe(true);
        expect(await repo.hasPendingWithKey('sha256:k1', minutes(10))).toBe(false);
        expect(await repo.hasPendingWithKey('sha256:other', T0)).toBe(false);
      });

      it('decides by compare-and-set', async () => {
        const repo = (await open()).pairingRequests;
        const a = await repo.create(request('ws1', minutes(10)));
        expect(await repo.updateStatus(a.id, 'pending', 'approved')).toBe(true);
        expect(await repo.updateStatus(a.id, 'pending', 'approved')).toBe(false);
        expect(await repo.updateStatus('missing', 'pending', 'approved')).toBe(false);

        const b2 = await repo.create(request('ws2', minutes(10)));
        const approval = {
          clientCert: 'PEM',
          certSerial: 'ab12',
          certExpiresAt: minutes(1000),
          decidedAt: minutes(1),
          rePair: true,
        };
        expect(await repo.recordApproval(b2.id, approval)).toBe(true);
        expect(await repo.recordApproval(b2.id, approval)).toBe(false);
        expect(await repo.recordDenial(b2.id, minutes(2))).toBe(false);
        expect(await repo.get(b2.id)).toMatchObject({
          status: 'approved',
          clientCert: 'PEM',
          certSerial: 'ab12',
          certExpiresAt: minutes(1000),
          decidedAt: minutes(1),
          rePair: true,
        });

        const c = await repo.create(request('ws3', minutes(10)));
        expect(await repo.recordDenial(c.id, minutes(3))).toBe(true);
        expect(await repo.get(c.id)).toMatchObject({ status: 'denied', decidedAt: minutes(3) });
      });

      it('expires and deletes by time', async () => {
        const repo = (await open()).pairingRequests;
        const soon = await repo.create(request('ws1', minutes(5)));
        const later = await repo.create(request('ws2', minutes(50), { pairingCode: '222-333' }));
        expect(await repo.expireOne(soon.id, minutes(4))).toBeUndefined();
        expect(await repo.expireOne(soon.id, minutes(5))).toMatchObject({
          id: soon.id,
          status: 'expired',
          decidedAt: minutes(5),
        });
        expect(await repo.expireOne(soon.id, minutes(6))).toBeUndefined();
        expect(await repo.markExpired(minutes(49))).toEqual([]);
        const marked = await repo.markExpired(minutes(50));
        expect(marked.map((r) => [r.id, r.status])).toEqual([[later.id, 'expired']]);
        expect(await repo.deleteExpired(minutes(5))).toBe(1);
        expect(await repo.deleteExpired(minutes(60))).toBe(1);
        expect(await repo.get(later.id)).toBeUndefined();
      });
    });

    describe('agents', () => {
      it('creates, finds, updates, rotates and removes', async () => {
        const repo = (await open()).agents;
        const created = await repo.create({
          name: 'ci-bot',
          tokenHash: 'h1',
          allow: ['fs_*'],
          deny: ['fs_rm'],
        });
        expect(created).toEqual({
          id: expect.any(String),
          name: 'ci-bot',
          tokenHash: 'h1',
          allow: ['fs_*'],
          deny: ['fs_rm'],
          mode: 'full',
          recordArguments: false,
          createdAt: T0,
          updatedAt: T0,
          tokenRotatedAt: T0,
          lastUsedAt: null,
        });
        const taken = await repo.create({ name: 'ci-bot', tokenHash: 'h2' }).catch((err: unknown) => err);
        expect(taken).toBeInstanceOf(DianeError);
        expect((taken as DianeError).code).toBe('agent-exists');
        await expect(repo.create({ name: 'Bad Name', tokenHash: 'h3' })).rejects.toThrow(
          /invalid agent name/,
        );
        await repo.create({ name: 'a-first', tokenHash: 'h4', mode: 'discovery', recordArguments: true });
        expect((await repo.list()).map((a) => a.name)).toEqual(['a-first', 'ci-bot']);
        expect((await repo.findByTokenHash('h4'))?.name).toBe('a-first');
        expect(await repo.findByTokenHash('nope')).toBeUndefined();

        clock = minutes(1);
        const updated = await repo.update('ci-bot', { deny: [], recordArguments: true });
        expect(updated).toMatchObject({
          allow: ['fs_*'],
          deny: [],
          recordArguments: true,
          mode: 'full',
          updatedAt: minutes(1),
        });
        expect(await repo.update('nobody', { deny: [] })).toBeUndefined();
        clock = minutes(2);
        expect(await repo.rotateTokenHash('ci-bot', 'h9')).toBe(true);
        expect(await repo.findByTokenHash('h1')).toBeUndefined();
        expect(await repo.getByName('ci-bot')).toMatchObject({ tokenHash: 'h9', tokenRotatedAt: minutes(2) });
        expect(await repo.rotateTokenHash('nobody', 'h10')).toBe(false);

        expect(await repo.touchLastUsed(created.id, minutes(3))).toBe(true);
        expect(await repo.touchLastUsed(created.id, minutes(3.5))).toBe(false);
        expect(await repo.touchLastUsed(created.id, minutes(4))).toBe(true);
        expect((await repo.getByName('ci-bot'))?.lastUsedAt).toEqual(minutes(4));

        expect(await repo.remove('ci-bot')).toBe(true);
        expect(await repo.remove('ci-bot')).toBe(false);
      });
    });

    describe('auditEvents', () => {
      it('appends, queries, pages and trims, never reusing an id', async () => {
        const repo = (await open()).auditEvents;
        expect(await repo.maxId()).toBe(0);
        expect(await repo.count()).toBe(0);
        const stored = await repo.insertMany([
          auditRecord(),
          auditRecord({ at: minutes(1), agent: 'ci', outcome: 'tool_error', error: 'boom', host: null }),
          auditRecord({ at: minutes(2), kind: 'prompts/get', durationMs: null, bytesIn: null }),
        ]);
        expect(stored.map((r) => r.id)).toEqual([stored[0]!.id, stored[0]!.id + 1, stored[0]!.id + 2]);
        expect(await repo.count()).toBe(3);
        expect(await repo.maxId()).toBe(stored[2]!.id);

        const all = await repo.query();
        expect(all).toEqual(stored);
        expect(all[0]).toEqual({ id: stored[0]!.id, ...auditRecord() });
        expect((await repo.query({ agent: 'ci' })).map((r) => r.id)).toEqual([stored[1]!.id]);
        expect((await repo.query({ host: 'ws1' })).length).toBe(2);
        expect((await repo.query({ outcome: 'tool_error' }))[0]?.error).toBe('boom');
        expect((await repo.query({ kind: 'prompts/get' })).length).toBe(1);
        expect((await repo.query({ since: minutes(1) })).length).toBe(2);
        expect((await repo.query({ until: minutes(1) })).length).toBe(1);
        expect((await repo.query({ afterId: stored[0]!.id, limit: 1 })).map((r) => r.id)).toEqual([
          stored[1]!.id,
        ]);
        expect((await repo.query({ newest: true, limit: 2 })).map((r) => r.id)).toEqual([
          stored[1]!.id,
          stored[2]!.id,
        ]);

        // Older than 60 s at minutes(2.5): the first two, one per chunk; then at most one row in all.
        clock = minutes(2.5);
        expect(await repo.trim(60_000, 10, 1)).toBe(1);
        expect(await repo.trim(60_000, 10, 1)).toBe(1);
        expect(await repo.trim(60_000, 10, 1)).toBe(0);
        await repo.insertMany([auditRecord({ at: minutes(2.5) })]);
        expect(await repo.trim(60_000, 1)).toBe(1);
        const left = await repo.query();
        expect(left.map((r) => r.id)).toEqual([stored[2]!.id + 1]);
        // Deleting the newest row does not free its id.
        await repo.trim(0, 0);
        const [next] = await repo.insertMany([auditRecord()]);
        expect(next!.id).toBeGreaterThan(stored[2]!.id + 1);
      });

      it('filters the same on every backend: combined, at the edges, and by exact text', async () => {
        const repo = (await open()).auditEvents;
        const ms = (n: number) => new Date(T0.getTime() + n);
        const rows = await repo.insertMany([
          auditRecord({ at: ms(0), agent: 'ci', host: 'ws1', outcome: 'ok', kind: 'tools/call' }),
          auditRecord({ at: ms(1), agent: 'ci', host: 'ws2', outcome: 'timeout', kind: 'tools/call' }),
          auditRecord({ at: ms(999), agent: 'CI', host: 'ws1', outcome: 'ok', kind: 'resources/read' }),
          auditRecord({ at: ms(1_000), agent: null, host: null, outcome: 'dropped', kind: 'audit/dropped' }),
          auditRecord({ at: ms(60_000), agent: 'ci-bot', host: 'ws1', outcome: 'ok', kind: 'tools/call' }),
          auditRecord({
            at: ms(60_001),
            agent: 'émile',
            host: 'wś',
            outcome: 'tool_error',
            kind: 'prompts/get',
          }),
        ]);
        const ids = (q: Parameters<typeof repo.query>[0]) =>
          repo.query(q).then((found) => found.map((r) => rows.findIndex((w) => w.id === r.id)));
        // Exact, case-sensitive text: no prefix, no case folding, no collation surprises.
        expect(await ids({ agent: 'ci' })).toEqual([0, 1]);
        expect(await ids({ agent: 'CI' })).toEqual([2]);
        expect(await ids({ agent: 'émile' })).toEqual([5]);
        expect(await ids({ host: 'wś' })).toEqual([5]);
        // A host filter never matches the master's own rows (no host).
        expect(await ids({ host: 'ws1' })).toEqual([0, 2, 4]);
        // since is inclusive and until exclusive, to the millisecond.
        expect(await ids({ since: ms(1), until: ms(1_000) })).toEqual([1, 2]);
        expect(await ids({ since: ms(1_000), until: ms(1_001) })).toEqual([3]);
        expect(await ids({ until: ms(0) })).toEqual([]);
        // Every filter at once, and each with the paging window.
        expect(
          await ids({
            agent: 'ci',
            host: 'ws1',
            outcome: 'ok',
            kind: 'tools/call',
            since: ms(0),
            until: ms(1),
          }),
        ).toEqual([0]);
        expect(await ids({ host: 'ws1', afterId: rows[0]!.id, limit: 1 })).toEqual([2]);
        expect(await ids({ host: 'ws1', newest: true, limit: 2 })).toEqual([2, 4]);
        expect(await ids({ outcome: 'ok', newest: true, limit: 10 })).toEqual([0, 2, 4]);
        expect(await ids({ kind: 'audit/dropped' })).toEqual([3]);
        expect(await ids({ agent: 'nobody' })).toEqual([]);
      });

      it('hands out ids in commit order, so a follower reading "after id N" misses nothing', async () => {
        const first = await open();
        const second = await open();
        const reader = await open();
        const followed: { id: number; callId: string | null }[] = [];
        const tail = new AuditTail(reader.auditEvents, { pollMs: 10, pageRows: 100 }, silent);
        const stopFollowing = tail.subscribe((row) => followed.push({ id: row.id, callId: row.callId }));
        await tail.ready();
        try {
          // a takes its id and stays open while b appends. Were ids not given in commit order,
          // PostgreSQL would commit b at once with higher ids, the follower would move past them,
          // and a, committed later with a lower id, would never be seen.
          let release!: () => void;
          const held = new Promise<void>((resolve) => {
            release = resolve;
          });
          let inserted!: () => void;
          const aInserted = new Promise<void>((resolve) => {
            inserted = resolve;
          });
          const a = first.transaction(async (tx) => {
            const rows = await tx.auditEvents.insertMany([auditRecord({ callId: 'a' })]);
            inserted();
            await held;
            return rows;
          });
          await aInserted;
          const b = second.transaction((tx) =>
            tx.auditEvents.insertMany([auditRecord({ callId: 'b1' }), auditRecord({ callId: 'b2' })]),
          );
          await new Promise((resolve) => setTimeout(resolve, 150));
          release();
          const [[rowA], [rowB1]] = await Promise.all([a, b]);
          expect(rowB1!.id).toBeGreaterThan(rowA!.id);
          const c = await second.auditEvents.insertMany([auditRecord({ callId: 'c' })]);
          const until = Date.now() + 5_000;
          while (!followed.some((r) => r.callId === 'c') && Date.now() < until) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          expect(followed.map((r) => r.callId)).toEqual(['a', 'b1', 'b2', 'c']);
          expect(followed.map((r) => r.id)).toEqual([rowA!.id, rowB1!.id, rowB1!.id + 1, c[0]!.id]);
        } finally {
          stopFollowing();
          tail.close();
        }
      });
    });

    describe('transactions', () => {
      it('commit what their function did, and roll it all back when it throws', async () => {
        const store = await open();
        const value = await store.transaction(async (tx) => {
          await tx.slaveServers.create(slave('kept'));
          return 42;
        });
        expect(value).toBe(42);
        await expect(
          store.transaction(async (tx) => {
            await tx.slaveServers.create(slave('lost'));
            await tx.revokedCredentials.revoke({ hostId: 'lost', certSerial: 'x' });
            await tx.agents.create({ name: 'lost', tokenHash: 'h' });
            await tx.auditEvents.insertMany([auditRecord()]);
            throw new Error('changed my mind');
          }),
        ).rejects.toThrow('changed my mind');
        expect((await store.slaveServers.list()).map((s) => s.hostId)).toEqual(['kept']);
        expect(await store.revokedCredentials.list()).toEqual([]);
        expect(await store.agents.list()).toEqual([]);
        expect(await store.auditEvents.count()).toBe(0);
      });

      it('refuse the store itself and nested transactions inside one', async () => {
        const store = await open();
        await expect(store.transaction(() => store.slaveServers.list())).rejects.toThrow(
          /repositories handed/,
        );
        await expect(store.transaction(() => store.transaction(async () => 1))).rejects.toThrow(
          /do not nest/,
        );
        // Still usable afterwards.
        expect(await store.slaveServers.list()).toEqual([]);
      });

      it('leave no promise hooks installed once their transactions end (a cost to every promise)', async () => {
        const store = await open();
        const hooksOn = async () => {
          await null;
          return executionAsyncId() !== 0;
        };
        await Promise.all(
          Array.from({ length: 4 }, (_, i) =>
            store.transaction(async (tx) => {
              await tx.slaveServers.create(slave(`h${i}`));
              expect(await hooksOn()).toBe(true);
            }),
          ),
        );
        expect(await hooksOn()).toBe(false);
        await store.tryWrite((tx) => tx.slaveServers.updateLastSeen('h0', minutes(1)));
        expect(await hooksOn()).toBe(false);
      });

      it('serialise concurrent transactions of one store', async () => {
        const store = await open();
        await store.slaveServers.create(slave('ws1'));
        // Each reads the count and writes it back plus one; interleaved, some would be lost.
        const bump = () =>
          store.transaction(async (tx) => {
            const seen = (await tx.revokedCredentials.list()).length;
            await tx.revokedCredentials.revoke({ hostId: 'ws1', certSerial: `s${seen}` });
          });
        await Promise.all(Array.from({ length: 8 }, bump));
        expect((await store.revokedCredentials.list()).length).toBe(8);
      });

      it('background writes report what they wrote', async () => {
        const store = await open();
        await store.slaveServers.create(slave('ws1'));
        const result = await store.tryWrite((tx) => tx.slaveServers.updateLastSeen('ws1', minutes(1)));
        expect(result).toEqual({ written: true, value: true });
        await expect(
          store.tryWrite(async (tx) => {
            await tx.slaveServers.updateLastSeen('ws1', minutes(2));
            throw new Error('not a lock problem');
          }),
        ).rejects.toThrow('not a lock problem');
        expect((await store.slaveServers.getByHostId('ws1'))?.lastSeen).toEqual(minutes(1));
      });
    });

    describe('two stores on one database', () => {
      it('let exactly one of an approval and a denial of the same request win', async () => {
        const a = await open();
        const bStore = await open();
        for (let round = 0; round < 10; round++) {
          const { id } = await a.pairingRequests.create(
            request(`ws${round}`, minutes(10), { pairingCode: `${100 + round}-000` }),
          );
          // The service's shape: read, judge, then compare-and-set, in one transaction each.
          const decide = (store: MasterStore, how: 'approve' | 'deny') =>
            store.transaction(async (tx) => {
              const current = await tx.pairingRequests.get(id);
              if (current?.status !== 'pending') return false;
              return how === 'approve'
                ? tx.pairingRequests.recordApproval(id, {
                    clientCert: 'PEM',
                    certSerial: `serial-${round}`,
                    certExpiresAt: minutes(100),
                    decidedAt: minutes(1),
                    rePair: false,
                  })
                : tx.pairingRequests.recordDenial(id, minutes(1));
            });
          const results = await Promise.all([decide(a, 'approve'), decide(bStore, 'deny')]);
          expect(results.filter(Boolean)).toHaveLength(1);
          const status = (await a.pairingRequests.get(id))?.status;
          expect(status).toBe(results[0] ? 'approved' : 'denied');
        }
      });

      it('let exactly one of two approvals win', async () => {
        const stores = [await open(), await open()];
        const { id } = await stores[0]!.pairingRequests.create(request('ws1', minutes(10)));
        const results = await Promise.all(
          stores.map((store) => store.pairingRequests.updateStatus(id, 'pending', 'approved')),
        );
        expect(results.sort()).toEqual([false, true]);
      });

      it('see each other’s writes', async () => {
        const a = await open();
        const other = await open();
        await a.agents.create({ name: 'shared', tokenHash: 'h' });
        expect((await other.agents.findByTokenHash('h'))?.name).toBe('shared');
      });
    });

    describe('migrations', () => {
      it('run once, and reopening changes nothing', async () => {
        const first = await open();
        expect(first.schemaVersion).toBe(latestSchemaVersion);
        await first.agents.create({ name: 'kept', tokenHash: 'h' });
        await first.close();
        const again = await open();
        expect(again.schemaVersion).toBe(latestSchemaVersion);
        expect((await again.agents.list()).map((a) => a.name)).toEqual(['kept']);
        expect(await b().migrationRuns()).toBe(latestSchemaVersion);
      });

      it('run exactly once when three stores start at once on a new database', async () => {
        const stores = await Promise.all([open(), open(), open()]);
        for (const store of stores) expect(store.schemaVersion).toBe(latestSchemaVersion);
        expect(await b().migrationRuns()).toBe(latestSchemaVersion);
        await stores[0]!.slaveServers.create(slave('ws1'));
        expect((await stores[2]!.slaveServers.list()).length).toBe(1);
      });
    });
  });
}
