import { readFileSync } from 'node:fs';
import { type Logger, silentLogger } from '../log.js';
import {
  type CaSet,
  type CaSetFiles,
  type CertificateAuthority,
  type CreateCaOptions,
  finishRollover,
  type ServerCertificate,
  type SlaveCas,
  spkiFingerprint,
  startRollover,
  trustedCas,
  x509,
} from '../pki/index.js';
import type { MasterStore } from '../store/index.js';
import type { ClusterTls } from './clusterListener.js';
import type { PairTrustReply } from './pairingWire.js';
import type { TrustResult } from './trustWire.js';

export interface CaDescription {
  fingerprint: string;
  subject: string;
  not_after: string;
}

/** Which CA issued a host's current certificate, seen from the rollover. */
export type HostCa = 'current' | 'next' | 'other';

export interface CaRolloverHost {
  host_id: string;
  enabled: boolean;
  connected: boolean;
  ca: HostCa;
  /** A renewed certificate from the next CA exists but no link has used it yet. */
  renewal_pending: boolean;
}

export interface CaRolloverStatus {
  state: 'stable' | 'rolling';
  current: CaDescription;
  next?: CaDescription;
  /** The CA retired by the last finished rollover (its key is gone). */
  retired?: CaDescription;
  hosts: CaRolloverHost[];
  /** Enabled hosts whose current certificate is not from the next CA yet. */
  waiting_for: string[];
  /** After rotate or finish on a CA other masters share: what the operator must do on them. */
  warning?: string;
}

export interface FinishResult extends CaRolloverStatus {
  /** Hosts left on the retired CA by a forced finish; their live links were cut. */
  left_behind: string[];
}

export class CaRolloverError extends Error {
  constructor(
    message: string,
    readonly status: 409 | 500,
  ) {
    super(message);
    this.name = 'CaRolloverError';
  }
}

export interface CaRolloverDeps {
  cas: SlaveCas;
  files: CaSetFiles;
  store: MasterStore;
  /** The live links: told to ask for the trust again, and cut when left behind. */
  links: {
    announceTrustChanged(): void;
    cutLinksOutside(caFingerprints: ReadonlySet<string>): Promise<string[]>;
    isConnected(hostId: string): boolean;
  };
  /** Makes sure the master's server certificate is from this CA (reissued when not). */
  serverCertificate: (ca: CertificateAuthority) => Promise<ServerCertificate>;
  /** Installs new TLS material on the cluster listener. */
  applyTls: (tls: ClusterTls) => void;
  logger?: Logger;
  /** Only for tests, which need throwaway CAs fast. */
  createOptions?: Partial<CreateCaOptions>;
  /** Whether other masters hold this CA too (`diane ca export`/`import` mark the home). */
  isShared?: () => boolean;
}

/**
 * A rollover happens in one master's home; the others keep their copy of the CA set until they
 * import it again. Warned, not refused: rotate/export/import is the procedure, and refusing would
 * only add a flag to type.
 */
const SHARED_ROTATE_WARNING =
  'this CA is shared with other masters (it was exported or imported). They do not see this rollover: ' +
  'run `diane ca export --out FILE` here now and `diane ca import FILE` on every other master (stopped, ' +
  'then started again). Until then they refuse the certificates this master issues from the next CA.';
const SHARED_FINISH_WARNING =
  'this CA is shared with other masters. Run `diane ca export --out FILE` here now and `diane ca import FILE` ' +
  'on every other master (stopped, then started again): until then they present a server certificate ' +
  'from the retired CA, which slaves told of this finish no longer trust, and they still sign with the retired key.';

/**
 * `diane ca rotate` and `diane ca finish`: a CA rollover the standard way. Rotate makes the next
 * CA, trusts both, issues from the next one, and tells every live slave over its link (which the
 * slave verified with the old chain). Slaves renew onto the next CA at once. Finish, once every
 * enabled host holds a certificate of the next CA, makes it the only one: the server certificate
 * is reissued from it and the old key is deleted.
 */
export class CaRolloverService {
  private readonly logger: Logger;
  private busy = false;

  constructor(private readonly deps: CaRolloverDeps) {
    this.logger = deps.logger ?? silentLogger;
  }

  /** The TLS material for the set in use; the daemon installs it at start. */
  async tls(set: CaSet = this.deps.cas.get()): Promise<ClusterTls> {
    const server = await this.deps.serverCertificate(set.current);
    return {
      certPem: server.certPem,
      keyPem: server.keyPem,
      chainCaPem: set.current.certPem,
      trustedCaPems: trustedCas(set).map((ca) => ca.certPem),
    };
  }

  /** What a slave learns over its link (`diane/trust`). */
  trust(): TrustResult {
    return {
      ca_certs: this.deps.cas.trusted().map((ca) => ca.certPem),
      issuing_ca_fingerprint: this.deps.cas.issuing().fingerprint,
    };
  }

  /** What a pairing slave may check its pin against (`GET /api/slave/trust`). */
  pairingTrust(): PairTrustReply {
    const set = this.deps.cas.get();
    return {
      ca_certs: trustedCas(set).map((ca) => ca.certPem),
      cross_certs: set.crossPem ? [set.crossPem] : [],
    };
  }

  async status(): Promise<CaRolloverStatus> {
    const set = this.deps.cas.get();
    const roleOf = (fingerprint: string | null | undefined): HostCa => {
      if (fingerprint === set.current.fingerprint) return 'current';
      if (set.next && fingerprint === set.next.fingerprint) return 'next';
      // Before schema v5 the issuer was not recorded; such rows are backfilled when a rollover
      // starts, so a null can only mean the CA that is current.
      return fingerprint === null ? 'current' : 'other';
    };
    const hosts = (await this.deps.store.slaveServers.list()).map(
      (row): CaRolloverHost => ({
        host_id: row.hostId,
        enabled: row.enabled,
        connected: this.deps.links.isConnected(row.hostId),
        ca: roleOf(row.caFingerprint),
        renewal_pending: set.next !== undefined && row.pending?.caFingerprint === set.next.fingerprint,
      }),
    );
    const retired = this.retired();
    return {
      state: set.next ? 'rolling' : 'stable',
      current: describe(set.current.cert, set.current.fingerprint),
      ...(set.next ? { next: describe(set.next.cert, set.next.fingerprint) } : {}),
      ...(retired ? { retired } : {}),
      hosts,
      waiting_for: set.next ? hosts.filter((h) => h.enabled && h.ca !== 'next').map((h) => h.host_id) : [],
    };
  }

  async rotate(): Promise<CaRolloverStatus> {
    return this.exclusive(async () => {
      const before = this.deps.cas.get();
      if (before.next) {
        throw new CaRolloverError(
          'a CA rollover is already under way; finish it first (`diane ca finish`)',
          409,
        );
      }
      // Rows from before schema v5 name no issuer: all of them are from the CA that is current.
      await this.deps.store.transaction((tx) =>
        tx.slaveServers.backfillCaFingerprint(before.current.fingerprint),
      );
      const set = await startRollover(this.deps.files, before, this.deps.createOptions);
      this.deps.applyTls(await this.tls(set));
      this.deps.cas.replace(set);
      this.logger.info(
        { current: set.current.fingerprint, next: set.next?.fingerprint },
        'CA rollover started: both CAs are trusted and new certificates come from the next one',
      );
      this.deps.links.announceTrustChanged();
      return { ...(await this.status()), ...this.sharedWarning(SHARED_ROTATE_WARNING) };
    });
  }

  async finish(opts: { force: boolean }): Promise<FinishResult> {
    return this.exclusive(async () => {
      const before = await this.status();
      if (before.state !== 'rolling') {
        throw new CaRolloverError('no CA rollover is under way (`diane ca rotate` starts one)', 409);
      }
      if (before.waiting_for.length > 0 && !opts.force) {
        throw new CaRolloverError(
          `not every host has renewed onto the next CA yet: ${before.waiting_for.join(', ')}. ` +
            'Wait for them (a connected slave renews within a minute), or pass --force to retire ' +
            'the old CA anyway: those hosts must then pair again.',
          409,
        );
      }
      const set = finishRollover(this.deps.files, this.deps.cas.get());
      this.deps.cas.replace(set);
      this.deps.applyTls(await this.tls(set));
      this.deps.links.announceTrustChanged();
      const cut = await this.deps.links.cutLinksOutside(new Set([set.current.fingerprint]));
      this.logger.info(
        { current: set.current.fingerprint, leftBehind: before.waiting_for, cut },
        'CA rollover finished: the old CA is retired',
      );
      return {
        ...(await this.status()),
        left_behind: before.waiting_for,
        ...this.sharedWarning(SHARED_FINISH_WARNING),
      };
    });
  }

  private sharedWarning(warning: string): { warning?: string } {
    if (!this.deps.isShared?.()) return {};
    this.logger.warn(warning);
    return { warning };
  }

  private retired(): CaDescription | undefined {
    try {
      const cert = new x509.X509Certificate(readFileSync(this.deps.files.retiredCertPath, 'utf8'));
      return describe(cert, undefined);
    } catch {
      return undefined;
    }
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) throw new CaRolloverError('another CA operation is running; try again', 409);
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }
}

function describe(cert: x509.X509Certificate, fingerprint: string | undefined): CaDescription {
  return {
    fingerprint: fingerprint ?? spkiFingerprint(cert.publicKey.rawData),
    subject: cert.subject,
    not_after: cert.notAfter.toISOString(),
  };
}
