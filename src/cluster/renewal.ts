import { type Logger, silentLogger } from '../log.js';
import {
  CsrRejectedError,
  type IssuingCa,
  issueSlaveCertificate,
  type ValidatedCsr,
  validateCsr,
} from '../pki/index.js';
import type { Store } from '../store/index.js';
import type { RenewalRefusal, RenewResult } from './renewalWire.js';

export interface RenewalSettings {
  /** Validity of a renewed certificate: the master's `--cert-validity`, as for pairing. */
  certValidityMs: number;
}

export interface RenewalServiceDeps {
  store: Store;
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
  private readonly store: Store;
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
    const early = this.refusalFor(hostId, linkSerial, this.now());
    if (early) throw this.refused(hostId, early);
    const csr = await this.validate(request.csrPem, hostId);
    const issuedAt = this.now();
    const ca = this.ca.issuing();
    const issued = await issueSlaveCertificate(ca, csr, hostId, {
      validityMs: this.settings.certValidityMs,
      now: issuedAt,
    });
    // Signing is asynchronous and a transaction cannot span an await: the certificate is made
    // first and the rules are checked again with the write lock held. A certificate dropped here
    // is useless, because the hub accepts only serials recorded in the store.
    const refusal = this.store.transaction((): Refusal | undefined => {
      const again = this.refusalFor(hostId, linkSerial, this.now());
      if (again) return again;
      const keyProblem = this.knownKey(csr.keyFingerprint);
      if (keyProblem) return keyProblem;
      // refusalFor found the row inside this transaction.
      const row = this.store.slaveServers.getByHostId(hostId)!;
      // An earlier renewal whose answer never reached the slave (or was never used): it must not
      // stay a second way in.
      if (row.pending) {
        this.store.revokedCredentials.revoke({
          hostId,
          certSerial: row.pending.certSerial,
          reason: 'renewal-abandoned',
          keyFingerprint: row.pending.keyFingerprint,
        });
      }
      this.store.slaveServers.recordPending(hostId, {
        certSerial: issued.serialHex,
        keyFingerprint: issued.keyFingerprint,
        caFingerprint: ca.fingerprint,
        issuedAt,
        expiresAt: issued.notAfter,
      });
      return undefined;
    });
    if (refusal) throw this.refused(hostId, refusal);
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
  confirm(hostId: string, serial: string): boolean {
    const confirmed = this.store.transaction(() => {
      const row = this.store.slaveServers.getByHostId(hostId);
      if (!row?.enabled || row.pending?.certSerial !== serial) return false;
      this.store.revokedCredentials.revoke({
        hostId,
        certSerial: row.certSerial,
        reason: 'renewed',
        keyFingerprint: row.keyFingerprint,
      });
      return this.store.slaveServers.promotePending(hostId, serial, this.now());
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
  abandonPending(hostId: string, linkSerial: string): boolean {
    const abandoned = this.store.transaction(() => {
      const row = this.store.slaveServers.getByHostId(hostId);
      if (!row?.pending || row.certSerial !== linkSerial) return undefined;
      this.store.revokedCredentials.revoke({
        hostId,
        certSerial: row.pending.certSerial,
        reason: 'renewal-abandoned',
        keyFingerprint: row.pending.keyFingerprint,
      });
      this.store.slaveServers.clearPending(hostId, row.pending.certSerial);
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
  private refusalFor(hostId: string, linkSerial: string, now: Date): Refusal | undefined {
    const row = this.store.slaveServers.getByHostId(hostId);
    if (!row) return { reason: 'unknown-host', message: `${hostId} is not a paired host` };
    if (this.store.revokedCredentials.getBySerial(linkSerial)) {
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
  private knownKey(keyFingerprint: string): Refusal | undefined {
    const known =
      this.store.revokedCredentials.isKeyRevoked(keyFingerprint) ||
      this.store.slaveServers.getByKeyFingerprint(keyFingerprint) !== undefined ||
      this.store.pairingRequests.hasPendingWithKey(keyFingerprint, this.now());
    if (!known) return undefined;
    return { reason: 'key-reused', message: 'a renewal needs a new key; this one is already known' };
  }

  private async validate(csrPem: string, hostId: string): Promise<ValidatedCsr> {
    try {
      return await validateCsr(csrPem, hostId);
    } catch (err) {
      if (err instanceof CsrRejectedError) {
        throw this.refused(hostId, { reason: 'csr-rejected', message: err.message });
      }
      throw err;
    }
  }

  /** Records the refusal on the host's row (for `slave list`), logs it, and returns the error. */
  private refused(hostId: string, refusal: Refusal): RenewalRefusedError {
    this.logger.warn({ host: hostId, reason: refusal.reason, why: refusal.message }, 'refused a renewal');
    try {
      // Background bookkeeping: never wait for another process's lock for it.
      this.store.tryWrite(() => {
        this.store.slaveServers.setRenewalError(hostId, `${refusal.reason}: ${refusal.message}`, this.now());
      });
    } catch (err) {
      this.logger.warn({ host: hostId, err: (err as Error).message }, 'could not record the renewal refusal');
    }
    return new RenewalRefusedError(refusal.reason, refusal.message);
  }
}
