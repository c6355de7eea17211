import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenewalRefusedError } from '../../src/cluster/renewal.js';
import { ObservedRenewalService } from '../../src/daemon/observedRenewal.js';
import { type CertificateAuthority, loadOrCreateCa, makeCsr, SlaveCas } from '../../src/pki/index.js';
import { openStore, type Store } from '../../src/store/index.js';

const DAY = 24 * 60 * 60 * 1000;

let root: string;
let ca: CertificateAuthority;
let store: Store;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'diane-observed-renewal-'));
  ca = await loadOrCreateCa({
    certPath: join(root, 'ca-cert.pem'),
    keyPath: join(root, 'ca-key.pem'),
    keyBits: 2048,
  });
  store = openStore(join(root, 'diane.db'));
});

afterAll(() => {
  store.close();
  rmSync(root, { recursive: true, force: true });
});

describe('ObservedRenewalService (the metrics of renewals on the master)', () => {
  it('reports an issued certificate, and a refusal with its reason, and still throws it', async () => {
    const seen: string[] = [];
    const service = new ObservedRenewalService(
      { store, ca: new SlaveCas({ current: ca }), settings: { certValidityMs: 30 * DAY } },
      {
        issued: (host) => seen.push(`issued ${host}`),
        failed: (host, reason) => seen.push(`failed ${host} ${reason}`),
      },
    );
    const now = Date.now();
    store.slaveServers.upsertEnrollment({
      hostId: 'ws1',
      certSerial: '00aa01',
      issuedAt: new Date(now - 20 * DAY),
      expiresAt: new Date(now + 10 * DAY),
      keyFingerprint: 'sha256:old-key',
      caFingerprint: ca.fingerprint,
    });
    const csrPem = (await makeCsr('ws1')).csrPem;

    const refused = await service
      .renew({ hostId: 'nobody', linkSerial: '00aa01', csrPem })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RenewalRefusedError);
    const renewed = await service.renew({ hostId: 'ws1', linkSerial: '00aa01', csrPem });
    expect(renewed.client_cert).toContain('BEGIN CERTIFICATE');
    expect(seen).toEqual(['failed nobody unknown-host', 'issued ws1']);
  });
});
