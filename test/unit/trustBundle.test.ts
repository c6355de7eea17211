import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaRolloverService } from '../../src/cluster/caRollover.js';
import { homePaths } from '../../src/config/paths.js';
import { createCa } from '../../src/pki/createCa.js';
import {
  certKeyFingerprint,
  ensureServerCertificate,
  exportTrustBundle,
  installTrustBundle,
  isCaShared,
  loadCaSet,
  openSealed,
  openTrustBundle,
  SealedBoxError,
  seal,
  startRollover,
} from '../../src/pki/index.js';

/** The weakest cost an opened file may ask for: keeps the tests fast, and is still accepted. */
const FAST_KDF = { n: 2 ** 15, r: 8, p: 1 };
const PASS = 'correct horse battery staple';
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function newHome(): ReturnType<typeof homePaths> {
  const dir = mkdtempSync(join(tmpdir(), 'diane-bundle-'));
  dirs.push(dir);
  return homePaths(dir);
}

function caFiles(paths: ReturnType<typeof homePaths>) {
  return {
    certPath: paths.caCert,
    keyPath: paths.caKey,
    nextCertPath: paths.caNextCert,
    nextKeyPath: paths.caNextKey,
    crossPath: paths.caCross,
    retiredCertPath: paths.caRetiredCert,
  };
}

/** A master home with a CA, an agent token and a join token. */
async function masterHome(): Promise<ReturnType<typeof homePaths>> {
  const paths = newHome();
  await createCa({ certPath: paths.caCert, keyPath: paths.caKey, keyBits: 2048 });
  writeFileSync(paths.token, `${'a'.repeat(43)}\n`, { mode: 0o600 });
  writeFileSync(paths.joinToken, `${'j'.repeat(43)}\n`, { mode: 0o600 });
  return paths;
}

const mode = (path: string) => statSync(path).mode & 0o777;
const snapshot = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));

describe('sealed box', () => {
  it('round-trips, and binds the header to the ciphertext', async () => {
    const text = await seal('{"x":1}', PASS, { label: 'test', kdf: FAST_KDF });
    expect((await openSealed(text, PASS)).plaintext).toBe('{"x":1}');
    expect(text).not.toContain('"x"');

    const env = JSON.parse(text);
    const altered = (patch: (e: typeof env) => void) => {
      const copy = structuredClone(env);
      patch(copy);
      return JSON.stringify(copy);
    };
    // A swapped label or a changed cost fails like a wrong passphrase.
    await expect(
      openSealed(
        altered((e) => (e.label = 'other')),
        PASS,
      ),
    ).rejects.toThrow(/authentication failed/);
    await expect(
      openSealed(
        altered((e) => (e.kdf.n = 2 ** 16)),
        PASS,
      ),
    ).rejects.toThrow(/authentication failed/);
  });

  it('refuses a wrong passphrase, a flipped ciphertext byte, a truncated file, a weak cost', async () => {
    const text = await seal('secret', PASS, { label: 'test', kdf: FAST_KDF });
    await expect(openSealed(text, 'not the passphrase')).rejects.toBeInstanceOf(SealedBoxError);

    const env = JSON.parse(text);
    const bytes = Buffer.from(env.ciphertext, 'base64');
    bytes[0]! ^= 1;
    env.ciphertext = bytes.toString('base64');
    await expect(openSealed(JSON.stringify(env), PASS)).rejects.toThrow(/altered/);

    await expect(openSealed(text.slice(0, text.length / 2), PASS)).rejects.toThrow(/not valid JSON/);
    const weak = { ...JSON.parse(text), kdf: { ...JSON.parse(text).kdf, n: 1024 } };
    await expect(openSealed(JSON.stringify(weak), PASS)).rejects.toThrow(/not a Diane bundle/);
  });

  it('wants a passphrase of some length to seal', async () => {
    await expect(seal('x', 'short', { label: 't', kdf: FAST_KDF })).rejects.toThrow(/at least 12/);
  });
});

describe('CA bundle between masters', () => {
  it('exports and imports the CA and the shared tokens, with their modes, and no server key', async () => {
    const a = await masterHome();
    await ensureServerCertificate((await loadCaSet(caFiles(a))).current, {
      certPath: a.serverCert,
      keyPath: a.serverKey,
      hosts: ['master-a.example'],
    });
    const { text, result } = await exportTrustBundle(a, PASS, { kdf: FAST_KDF });
    expect(result.fingerprint).toBe(certKeyFingerprint(readFileSync(a.caCert, 'utf8')));
    expect(result.included).toEqual(['agent-token', 'join-token']);
    expect(text).not.toContain('PRIVATE KEY');

    const b = newHome();
    const opened = await openTrustBundle(text, PASS);
    expect(JSON.stringify(opened.bundle)).not.toContain(readFileSync(a.serverKey, 'utf8').trim());
    const imported = installTrustBundle(b, opened, { force: false });
    expect(imported.fingerprint).toBe(result.fingerprint);
    for (const file of [a.caCert, a.caKey, a.token, a.joinToken]) {
      const twin = join(b.home, file.slice(a.home.length + 1));
      expect(readFileSync(twin, 'utf8')).toBe(readFileSync(file, 'utf8'));
    }
    expect(mode(b.caKey)).toBe(0o600);
    expect(mode(b.token)).toBe(0o600);
    expect(mode(b.joinToken)).toBe(0o600);
    expect(mode(b.caCert)).toBe(0o644);
    expect(readdirSync(b.home)).not.toContain('server-key.pem');
    expect(isCaShared(b)).toBe(true);

    // Master B issues its own server certificate from the shared CA, with its own names.
    const serverB = await ensureServerCertificate((await loadCaSet(caFiles(b))).current, {
      certPath: b.serverCert,
      keyPath: b.serverKey,
      hosts: ['master-b.example'],
    });
    expect(serverB.reissued).toBe(true);
    expect(serverB.keyPem).not.toBe(readFileSync(a.serverKey, 'utf8'));

    // Importing the same bundle again changes nothing.
    const again = installTrustBundle(b, await openTrustBundle(text, PASS), { force: false });
    expect(again.files.every((f) => f.change === 'unchanged')).toBe(true);
  });

  it('writes nothing on a wrong passphrase or a tampered file', async () => {
    const a = await masterHome();
    const { text } = await exportTrustBundle(a, PASS, { kdf: FAST_KDF });
    const b = newHome();
    await expect(openTrustBundle(text, 'wrong passphrase!')).rejects.toThrow(/wrong passphrase/);
    const env = JSON.parse(text);
    env.cipher.tag = Buffer.alloc(16).toString('base64');
    await expect(openTrustBundle(JSON.stringify(env), PASS)).rejects.toThrow(/altered/);
    expect(readdirSync(b.home)).toEqual([]);
  });

  it('refuses to replace a different CA unless forced, and leaves the home as it was', async () => {
    const a = await masterHome();
    const b = await masterHome();
    const { text } = await exportTrustBundle(a, PASS, { kdf: FAST_KDF });
    const before = snapshot(b.home);
    const opened = await openTrustBundle(text, PASS);
    expect(() => installTrustBundle(b, opened, { force: false })).toThrow(/another slave CA.*--force/s);
    expect(snapshot(b.home)).toEqual(before);

    installTrustBundle(b, opened, { force: true });
    expect(readFileSync(b.caKey, 'utf8')).toBe(readFileSync(a.caKey, 'utf8'));
  });

  it('carries a rollover, and takes the finished rollover on a master that had its start', async () => {
    const a = await masterHome();
    // C took the CA before the rollover and never hears of its start.
    const c = newHome();
    const before = await exportTrustBundle(a, PASS, { kdf: FAST_KDF });
    installTrustBundle(c, await openTrustBundle(before.text, PASS), { force: false });
    const rolling = await startRollover(caFiles(a), await loadCaSet(caFiles(a)), { keyBits: 2048 });
    const started = await exportTrustBundle(a, PASS, { kdf: FAST_KDF });
    expect(started.result.nextFingerprint).toBe(rolling.next?.fingerprint);

    const b = newHome();
    installTrustBundle(b, await openTrustBundle(started.text, PASS), { force: false });
    const onB = await loadCaSet(caFiles(b));
    expect(onB.next?.fingerprint).toBe(rolling.next?.fingerprint);
    expect(onB.crossPem).toBe(rolling.crossPem);

    // Finished on A: B's next CA is the bundle's current one, so no --force is needed.
    const { finishRollover } = await import('../../src/pki/caSet.js');
    finishRollover(caFiles(a), rolling);
    const finished = await exportTrustBundle(a, PASS, { kdf: FAST_KDF });
    const result = installTrustBundle(b, await openTrustBundle(finished.text, PASS), { force: false });
    expect(result.files.map((f) => [f.path, f.change])).toContainEqual([b.caNextCert, 'removed']);
    const finishedOnB = await loadCaSet(caFiles(b));
    expect(finishedOnB.current.fingerprint).toBe(rolling.next?.fingerprint);
    expect(finishedOnB.next).toBeUndefined();
    expect(readFileSync(b.caRetiredCert, 'utf8')).toBe(rolling.current.certPem);
    // C's CA is the bundle's retired one: the end of a rollover of it, no --force either.
    installTrustBundle(c, await openTrustBundle(finished.text, PASS), { force: false });
    expect((await loadCaSet(caFiles(c))).current.fingerprint).toBe(rolling.next?.fingerprint);
  });
});

describe('a CA rollover on a master whose CA is shared', () => {
  it('warns that the other masters must import it again, at rotate and at finish', async () => {
    const paths = await masterHome();
    const { SlaveCas } = await import('../../src/pki/caSet.js');
    const cas = new SlaveCas(await loadCaSet(caFiles(paths)));
    const slaveServers = { backfillCaFingerprint: async () => 0, list: async () => [] };
    const store = { transaction: (fn: (tx: unknown) => unknown) => fn({ slaveServers }), slaveServers };
    let shared = false;
    const service = new CaRolloverService({
      cas,
      files: caFiles(paths),
      store: store as never,
      links: { announceTrustChanged: () => {}, cutLinksOutside: async () => [], isConnected: () => false },
      serverCertificate: (ca) =>
        ensureServerCertificate(ca, { certPath: paths.serverCert, keyPath: paths.serverKey, hosts: [] }),
      applyTls: () => {},
      createOptions: { keyBits: 2048 },
      isShared: () => shared,
    });
    expect((await service.rotate()).warning).toBeUndefined();
    await service.finish({ force: false });

    shared = true;
    expect((await service.rotate()).warning).toMatch(/shared with other masters.*diane ca export/s);
    expect((await service.finish({ force: false })).warning).toMatch(/retired CA/);
  });
});
