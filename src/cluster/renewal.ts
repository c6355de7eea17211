import { type Logger, silentLogger } from '../log.js';
import {
  CsrRejectedError,
  type IssuingCa,
  issueSlaveCertificate,
  type ValidatedCsr,
  validateCsr,
} from '../pki/index.js';
import type { MasterRepos, MasterStore } from '../store/index.js';
import type { RenewalRefusal, RenewResult } from './renewalWire.js';

export interface RenewalSettings {
  /** Validity of a renewed certificate: the master's `--cert-validity`, as for pairing. */
  certValidityMs: number;
}

export interface RenewalServiceDeps {
  store: MasterStore;
  /** Where renewed certificates are signed: the next CA during a rollover. */
  ca: IssuingCa;
  settings: RenewalSettings;
  now?: () => Date;
  logger?: Logger;
}

/** What the master's end of a link knows: the host the hub's check named, and the link's serial. */
export interface RenewalRequest {
  hostId: string;
  linkSerial: string;
  csrPem: string;
}

export class RenewalRefusedError extends Error {
  constructor(
    readonly reason: RenewalRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'RenewalRefusedError';
  }
}

interface Refusal {
  reason: RenewalRefusal;
  message: string;
}

/**
 * The master's renewal rules. A renewal never widens anything: the host id is the link's (never
 * the message's), the CSR passes the pairing policy for that host id, the certificate comes from
 * the pairing template, and only a link opened with the host's current, unexpired, unrevoked
 * certificate of an enabled host may ask.
 *
 * The renewed certificate is recorded as *pending*; the current one stays valid until a link
 * opened with the pending one arrives (`confirm`), which revokes the previous serial (reason
 * `renewed`) and makes the pending one current in one transaction. So the slave always holds a
 * certificate the master accepts, whichever side dies mid-renewal, and once the new certificate
 * is in use the old one opens nothing.
 */
export class RenewalService {
  private readonly store: MasterStore;
  private readonly ca: IssuingCa;
  private readonly settings: RenewalSettings;
  private readonly now: () => Date;
  private readonly logger: Logger;

  constructor(deps: RenewalServiceDeps) {
    this.store = deps.store;
    this.ca = deps.ca;
    this.settings = deps.settings;
    this.now = deps.now ?? (() => new Date());
    this.logger = deps.logger ?? silentLogger;
  }

  async renew(request: RenewalRequest): Promise<RenewResult> {
    const { hostId, linkSerial } = request;
    // Judged before any signing work, and again inside the recording transaction.
    const early = await this.refusalFor(this.store, hostId, linkSerial, this.now());
    if (early) throw await this.refused(hostId, early);
    const csr = await this.validate(request.csrPem, hostId);
    const issuedAt = this.now();
    const ca = this.ca.issuing();
    const issued = await issueSlaveCertificate(ca, csr, hostId, {
      validityMs: this.settings.certValidityMs,
      now: issuedAt,
    });
    // Signing is slow, so it is done before the transaction, not while it holds the write lock;
    // the rules are then checked again inside it. A certificate dropped here is useless, because
    // the hub accepts only serials recorded in the store.
    const refusal = await this.store.transaction(async (tx): Promise<Refusal | undefined> => {
      const again = await this.refusalFor(tx, hostId, linkSerial, this.now());
      if (again) return again;
      const keyProblem = await this.knownKey(tx, csr.keyFingerprint);
      if (keyProblem) return keyProblem;
      // refusalFor found the row inside this transaction.
      const row = (await tx.slaveServers.getByHostId(hostId))!;
      // An earlier renewal whose answer never reached the slave (or was never used): it must not
      // stay a second way in.
      if (row.pending) {
        await tx.revokedCredentials.revoke({
          hostId,
          certSerial: row.pending.certSerial,
          reason: 'renewal-abandoned',
          keyFingerprint: row.pending.keyFingerprint,
        });
      }
      await tx.slaveServers.recordPending(hostId, {
        certSerial: issued.serialHex,
        keyFingerprint: issued.keyFingerprint,
        caFingerprint: ca.fingerprint,
        issuedAt,
        expiresAt: issued.notAfter,
      });
      return undefined;
    });
    if (refusal) throw await this.refused(hostId, refusal);
    this.logger.info(
      { host: hostId, serial: issued.serialHex, expiresAt: issued.notAfter.toISOString() },
      'renewed the certificate of a slave; pending until its first link with it',
    );
    return {
      client_cert: issued.certPem,
      issued_at: issuedAt.toISOString(),
      expires_at: issued.notAfter.toISOString(),
    };
  }

  /**
   * A link opened with the host's pending certificate: that certificate becomes current and the
   * previous serial is revoked as `renewed`, in one transaction. False when `serial` is not (or
   * no longer) the host's pending certificate, which then opens nothing.
   */
  async confirm(hostId: string, serial: string): Promise<boolean> {
    const confirmed = await this.store.transaction(async (tx) => {
      const row = await tx.slaveServers.getByHostId(hostId);
      if (!row?.enabled || row.pending?.certSerial !== serial) return false;
      await tx.revokedCredentials.revoke({
        hostId,
        certSerial: row.certSerial,
        reason: 'renewed',
        keyFingerprint: row.keyFingerprint,
      });
      return tx.slaveServers.promotePending(hostId, serial, this.now());
    });
    if (confirmed)
      this.logger.info({ host: hostId, serial }, 'renewed certificate in use; the previous one is revoked');
    return confirmed;
  }

  /**
   * A link opened with the host's current certificate while a renewed one is pending: the slave
   * never took the renewed one into use (it died before writing it, or the answer was lost).
   * The pending certificate is revoked (`renewal-abandoned`), so at no moment do two
   * certificates of one host both open new links. The slave renews again, at once, since it is
   * past its renewal time.
   */
  async abandonPending(hostId: string, linkSerial: string): Promise<boolean> {
    const abandoned = await this.store.transaction(async (tx) => {
      const row = await tx.slaveServers.getByHostId(hostId);
      if (!row?.pending || row.certSerial !== linkSerial) return undefined;
      await tx.revokedCredentials.revoke({
        hostId,
        certSerial: row.pending.certSerial,
        reason: 'renewal-abandoned',
        keyFingerprint: row.pending.keyFingerprint,
      });
      await tx.slaveServers.clearPending(hostId, row.pending.certSerial);
      return row.pending.certSerial;
    });
    if (abandoned) {
      this.logger.warn(
        { host: hostId, serial: abandoned },
        'the previous certificate came back before the renewed one was used; the renewed one is revoked',
      );
    }
    return abandoned !== undefined;
  }

  /** Why the link with this serial may not renew, or undefined. Reads only. */
  private async refusalFor(
    repos: MasterRepos,
    hostId: string,
    linkSerial: string,
    now: Date,
  ): Promise<Refusal | undefined> {
    const row = await repos.slaveServers.getByHostId(hostId);
    if (!row) return { reason: 'unknown-host', message: `${hostId} is not a paired host` };
    if (await repos.revokedCredentials.getBySerial(linkSerial)) {
      return { reason: 'revoked', message: 'the certificate of this link is revoked' };
    }
    if (!row.enabled) return { reason: 'disabled', message: `${hostId} is disabled` };
    if (row.certSerial !== linkSerial) {
      return {
        reason: 'not-current',
        message: `the certificate of this link is not the current one of ${hostId}`,
      };
    }
    if (row.expiresAt.getTime() <= now.getTime()) {
      return { reason: 'expired', message: 'the certificate expired; pair this host again' };
    }
    return undefined;
  }

  /** A renewal brings a fresh key: one in use, pending pairing or ever revoked is refused. */
  private async knownKey(tx: MasterRepos, keyFingerprint: string): Promise<Refusal | undefined> {
    const known =
      (await tx.revokedCredentials.isKeyRevoked(keyFingerprint)) ||
      (await tx.slaveServers.getByKeyFingerprint(keyFingerprint)) !== undefined ||
      (await tx.pairingRequests.hasPendingWithKey(keyFingerprint, this.now()));
    if (!known) return undefined;
    return { reason: 'key-reused', message: 'a renewal needs a new key; this one is already known' };
  }

  private async validate(csrPem: string, hostId: string): Promise<ValidatedCsr> {
    try {
      return await validateCsr(csrPem, hostId);
    } catch (err) {
      if (err instanceof CsrRejectedError) {
        throw await this.refused(hostId, { reason: 'csr-rejected', message: err.message });
      }
      throw err;
    }
  }

  /** Records the refusal on the host's row (for `slave list`), logs it, and returns the error. */
  private async refused(hostId: string, refusal: Refusal): Promise<RenewalRefusedError> {
    this.logger.warn({ host: hostId, reason: refusal.reason, why: refusal.message }, 'refused a renewal');
    try {
      // Background bookkeeping: never wait for another process's lock for it.
      await this.store.tryWrite((tx) =>
        tx.slaveServers.setRenewalError(hostId, `${refusal.reason}: ${refusal.message}`, this.now()),
      );
    } catch (err) {
      this.logger.warn({ host: hostId, err: (err as Error).message }, 'could not record the renewal refusal');
    }
    return new RenewalRefusedError(refusal.reason, refusal.message);
  }
}
