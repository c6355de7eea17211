import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolloverPinBundle } from '../../src/cluster/masterCa.js';
import type { SlaveCredentials } from '../../src/cluster/slaveCredentials.js';
import { applyTrust, splitPemBundle, trustedFingerprints } from '../../src/cluster/slaveTrust.js';
import {
  type CaSet,
  type CaSetFiles,
  type CertificateAuthority,
  certKeyFingerprint,
  crossCertify,
  finishRollover,
  issueSlaveCertificate,
  loadCaSet,
  loadOrCreateCa,
  makeCsr,
  startRollover,
  validateCsr,
} from '../../src/pki/index.js';

const FAST = { keyBits: 2048 };
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'diane-ca-rollover-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function filesIn(dir: string): CaSetFiles {
  return {
    certPath: join(dir, 'slave-ca-cert.pem'),
    keyPath: join(dir, 'slave-ca-key.pem'),
    nextCertPath: join(dir, 'slave-ca-next-cert.pem'),
    nextKeyPath: join(dir, 'slave-ca-next-key.pem'),
    crossPath: join(dir, 'slave-ca-cross-cert.pem'),
    retiredCertPath: join(dir, 'slave-ca-retired-cert.pem'),
  };
}

async function rolling(): Promise<{ files: CaSetFiles; set: CaSet }> {
  const files = filesIn(mkdtempSync(join(root, 'case-')));
  const first = await loadCaSet(files, FAST);
  return { files, set: await startRollover(files, first, FAST) };
}

describe('the CA set on disk', () => {
  it('rotate adds a next CA and a cross certificate; a restart finds the rollover again', async () => {
    const { files, set } = await rolling();
    expect(set.next).toBeDefined();
    expect(set.next!.fingerprint).not.toBe(set.current.fingerprint);
    expect(statSync(files.nextKeyPath).mode & 0o777).toBe(0o600);
    const again = await loadCaSet(files, FAST);
    expect(again.current.fingerprint).toBe(set.current.fingerprint);
    expect(again.next?.fingerprint).toBe(set.next!.fingerprint);
    expect(again.crossPem).toBe(set.crossPem);
    await expect(startRollover(files, again, FAST)).rejects.toThrow(/already under way/);
  });

  it('finish makes the next CA current, keeps the old certificate and deletes the old key', async () => {
    const { files, set } = await rolling();
    const oldCert = readFileSync(files.certPath, 'utf8');
    const done = finishRollover(files, set);
    expect(done.next).toBeUndefined();
    expect(done.current.fingerprint).toBe(set.next!.fingerprint);
    expect(readFileSync(files.retiredCertPath, 'utf8')).toBe(oldCert);
    for (const gone of [files.nextCertPath, files.nextKeyPath, files.crossPath])
      expect(existsSync(gone)).toBe(false);
    expect(statSync(files.keyPath).mode & 0o777).toBe(0o600);
    const loaded = await loadCaSet(files, FAST);
    expect(loaded.current.fingerprint).toBe(set.next!.fingerprint);
    expect(loaded.next).toBeUndefined();
    expect(() => finishRollover(files, loaded)).toThrow(/No CA rollover/);
  });

  it('a finish that died after moving the key is completed at the next start', async () => {
    const { files, set } = await rolling();
    renameSync(files.nextKeyPath, files.keyPath);
    const loaded = await loadCaSet(files, FAST);
    expect(loaded.current.fingerprint).toBe(set.next!.fingerprint);
    expect(loaded.next).toBeUndefined();
    expect(existsSync(files.crossPath)).toBe(false);
  });

  it('a rotate that died before its certificate was written is undone at the next start', async () => {
    const { files, set } = await rolling();
    rmSync(files.nextCertPath);
    const loaded = await loadCaSet(files, FAST);
    expect(loaded.current.fingerprint).toBe(set.current.fingerprint);
    expect(loaded.next).toBeUndefined();
    expect(existsSync(files.nextKeyPath)).toBe(false);
  });
});

describe('the pairing pin during a rollover', () => {
  let set: CaSet;
  let stranger: CertificateAuthority;
  beforeAll(async () => {
    set = (await rolling()).set;
    const dir = mkdtempSync(join(root, 'stranger-'));
    stranger = await loadOrCreateCa({ certPath: join(dir, 'c.pem'), keyPath: join(dir, 'k.pem'), ...FAST });
  });

  it('accepts the next CA pinned while the master presents the current one', () => {
    const bundle = rolloverPinBundle(set.current.certPem, set.next!.fingerprint, {
      ca_certs: [set.current.certPem, set.next!.certPem],
      cross_certs: [set.crossPem!],
    });
    expect(bundle).toBeDefined();
    expect(splitPemBundle(bundle!).map((pem) => certKeyFingerprint(pem))).toEqual([
      set.current.fingerprint,
      set.next!.fingerprint,
    ]);
  });

  it('refuses a stranger that presents its own CA and copies the real next CA into its reply', async () => {
    // The stranger can certify its own key with its own CA, never with the pinned one.
    const forgedCross = await crossCertify(stranger, stranger);
    const reply = {
      ca_certs: [stranger.certPem, set.next!.certPem],
      cross_certs: [set.crossPem!, forgedCross],
    };
    expect(rolloverPinBundle(stranger.certPem, set.next!.fingerprint, reply)).toBeUndefined();
  });

  it('refuses without the cross certificate, or when the pin names no CA of the reply', () => {
    const cas = [set.current.certPem, set.next!.certPem];
    expect(
      rolloverPinBundle(set.current.certPem, set.next!.fingerprint, { ca_certs: cas, cross_certs: [] }),
    ).toBeUndefined();
    expect(
      rolloverPinBundle(set.current.certPem, stranger.fingerprint, {
        ca_certs: cas,
        cross_certs: [set.crossPem!],
      }),
    ).toBeUndefined();
  });
});

describe('a slave learning the CAs over its link', () => {
  let set: CaSet;
  let creds: SlaveCredentials;
  beforeAll(async () => {
    set = (await rolling()).set;
    const { csrPem, keyPem } = await makeCsr('ws1');
    const issued = await issueSlaveCertificate(set.current, await validateCsr(csrPem, 'ws1'), 'ws1');
    creds = {
      host_id: 'ws1',
      master_url: 'https://127.0.0.1:8765',
      ws_url: 'wss://127.0.0.1:8765/slave/connect',
      client_cert: issued.certPem,
      client_key: keyPem,
      ca_cert: set.current.certPem,
      issued_at: new Date().toISOString(),
      expires_at: issued.notAfter.toISOString(),
    };
  });

  it('a rollover start adds the next CA and asks for a renewal onto it', () => {
    const update = applyTrust(creds, {
      ca_certs: [set.current.certPem, set.next!.certPem],
      issuing_ca_fingerprint: set.next!.fingerprint,
    });
    expect(update).toMatchObject({ changed: true, renewNow: true });
    expect(trustedFingerprints(update.creds)).toEqual(
      new Set([set.current.fingerprint, set.next!.fingerprint]),
    );
  });

  it('the same CAs change nothing, and a certificate of the issuing CA needs no renewal', () => {
    const update = applyTrust(creds, {
      ca_certs: [set.current.certPem],
      issuing_ca_fingerprint: set.current.fingerprint,
    });
    expect(update).toEqual({ creds, changed: false, renewNow: false });
  });

  it('the finish drops the old CA', () => {
    const both = { ...creds, ca_cert: `${set.current.certPem}${set.next!.certPem}` };
    const update = applyTrust(both, {
      ca_certs: [set.next!.certPem],
      issuing_ca_fingerprint: set.next!.fingerprint,
    });
    expect(trustedFingerprints(update.creds)).toEqual(new Set([set.next!.fingerprint]));
  });

  it('refuses an answer naming only unknown CAs, or a certificate that is not a CA', () => {
    expect(() =>
      applyTrust(creds, { ca_certs: [set.next!.certPem], issuing_ca_fingerprint: set.next!.fingerprint }),
    ).toThrow(/does not trust/);
    expect(() =>
      applyTrust(creds, { ca_certs: [creds.client_cert], issuing_ca_fingerprint: set.current.fingerprint }),
    ).toThrow(/not a CA/);
  });
});
