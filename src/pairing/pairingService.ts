import { type Logger, silentLogger } from '../log.js';
import {
  CsrRejectedError,
  type IssuingCa,
  issueSlaveCertificate,
  type ValidatedCsr,
  validateCsr,
} from '../pki/index.js';
import type { MasterRepos, MasterStore, PairingRequest } from '../store/index.js';
import {
  hashRequestId,
  newPairingCode,
  newRequestId,
  normalizePairingCode,
  pairingCodesEqual,
} from './codes.js';
import { PairingError } from './errors.js';
import { type PairingEvent, PairingEvents, type PairingEventType, type PairingListener } from './events.js';
import { checkHostId } from './hostId.js';
import { joinTokensEqual } from './joinToken.js';
import type { PairingSettings } from './settings.js';
import { sourcePrefix } from './sourcePrefix.js';

export interface PairingServiceDeps {
  store: MasterStore;
  /** Where new certificates are signed: the next CA during a rollover. */
  ca: IssuingCa;
  settings: PairingSettings;
  now?: () => Date;
  /** Why a host id is already used by something else (an upstream server), or undefined. */
  isNameTaken?: (hostId: string) => string | undefined;
  logger?: Logger;
  /** How often `start()` sweeps; tests shorten it. */
  sweepIntervalMs?: number;
  /** The master's join token; required when `settings.requireJoinToken` is set. */
  joinToken?: string;
}

export interface SubmitInput {
  hostId: string;
  csrPem: string;
  /** The socket's remote address; its prefix is what the caps count, and the admin sees it. */
  sourceAddress: string;
  /** What the slave presented as the join token, if anything. Never logged. */
  joinToken?: string;
}

export interface SubmitResult {
  /** The slave's secret handle for polling and pickup; returned once, stored only hashed. */
  requestId: string;
  pairingCode: string;
  expiresAt: Date;
  keyFingerprint: string;
}

export type PairingStatusView =
  | { status: 'pending'; hostId: string; expiresAt: Date }
  | { status: 'approved'; hostId: string; clientCert: string; caCert: string; certExpiresAt: Date }
  | { status: 'denied'; hostId: string }
  | { status: 'expired'; hostId: string };

export interface PendingRequestView {
  hostId: string;
  pairingCode: string;
  sourceAddress: string;
  keyFingerprint: string;
  requestedAt: Date;
  expiresAt: Date;
  /** The host is already enrolled: approving replaces its certificate. */
  rePair: boolean;
}

export interface ApproveResult {
  hostId: string;
  certSerial: string;
  certExpiresAt: Date;
  rePair: boolean;
}

const DEFAULT_SWEEP_INTERVAL_MS = 5000;
const MAX_SOURCE_ADDRESS_CHARS = 200;
/** Longer than any id we hand out; anything longer is not worth hashing. */
const MAX_REQUEST_ID_CHARS = 64;

/** Why a request cannot be decided; `expired` is set when looking at it just expired it. */
interface Refusal {
  error: PairingError;
  expired?: PairingRequest;
}

/**
 * The pairing lifecycle: a slave submits a CSR, the master shows a code, an admin approves or
 * denies it with that code, and the slave picks up its certificate with its request id. The code
 * only confirms which request the admin means; the request id is what the slave holds, and the
 * certificate is bound to the CSR's key, so only the key's holder can use it.
 *
 * Every check-then-write runs inside one store transaction, which serialises it against other
 * processes and other masters on the same database as well as against this one.
 */
export class PairingService {
  private readonly store: MasterStore;
  private readonly ca: IssuingCa;
  private readonly settings: PairingSettings;
  private readonly now: () => Date;
  private readonly isNameTaken: ((hostId: string) => string | undefined) | undefined;
  private readonly logger: Logger;
  private readonly sweepIntervalMs: number;
  private readonly events: PairingEvents;
  private joinToken: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(deps: PairingServiceDeps) {
    for (const cap of ['maxPendingPerHostFromPrefix', 'maxPendingPerPrefix', 'maxPendingTotal'] as const) {
      // A cap of 0 would refuse every request; the caps below count on at least one place.
      if (!Number.isInteger(deps.settings[cap]) || deps.settings[cap] < 1) {
        throw new RangeError(`PairingService: ${cap} must be a whole number of at least 1`);
      }
    }
    if (deps.settings.requireJoinToken && !deps.joinToken) {
      throw new Error('PairingService: requireJoinToken is set but no join token was given');
    }
    this.joinToken = deps.settings.requireJoinToken ? deps.joinToken : undefined;
    this.store = deps.store;
    this.ca = deps.ca;
    this.settings = deps.settings;
    this.now = deps.now ?? (() => new Date());
    this.isNameTaken = deps.isNameTaken;
    this.logger = deps.logger ?? silentLogger;
    this.sweepIntervalMs = deps.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.events = new PairingEvents(this.logger);
  }

  async submit(input: SubmitInput): Promise<SubmitResult> {
    // First: without the token, a peer must not even cost the master a CSR check.
    this.checkJoinToken(input.joinToken);
    const { hostId } = input;
    checkHostId(hostId, this.isNameTaken);
    const csr = await this.validate(input.csrPem, hostId);
    const sourceAddress = input.sourceAddress.slice(0, MAX_SOURCE_ADDRESS_CHARS);
    const requestId = newRequestId();
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.settings.ttlMs);

    const { request, displaced } = await this.store.transaction(async (tx) => {
      await this.refuseKnownKey(tx, csr.keyFingerprint, now);
      const displaced = await this.makeRoom(tx, hostId, sourceAddress, now);
      const taken = await tx.pairingRequests.pendingCodes();
      const request = await tx.pairingRequests.create({
        hostId,
        pairingCode: newPairingCode((code) => taken.has(code)),
        csr: csr.pem,
        requestedAt: now,
        expiresAt,
        requestIdHash: hashRequestId(requestId),
        sourceAddress,
        keyFingerprint: csr.keyFingerprint,
        rePair: (await tx.slaveServers.getByHostId(hostId)) !== undefined,
      });
      return { request, displaced };
    });
    if (displaced) this.reportDisplaced(displaced, request, now);
    this.logger.info(
      { host: hostId, code: request.pairingCode, source: sourceAddress, key: csr.keyFingerprint },
      'pairing request pending',
    );
    this.emit('new', request, now);
    return { requestId, pairingCode: request.pairingCode, expiresAt, keyFingerprint: csr.keyFingerprint };
  }

  /** What a slave learns by polling with its request id; unknown (or cleaned up) ids are 404. */
  async status(requestId: string): Promise<PairingStatusView> {
    const request =
      requestId.length > 0 && requestId.length <= MAX_REQUEST_ID_CHARS
        ? await this.store.pairingRequests.getByRequestIdHash(hashRequestId(requestId))
        : undefined;
    if (!request) throw new PairingError(404, 'PAIRING_UNKNOWN_REQUEST', 'Unknown pairing request');
    const { hostId } = request;
    switch (request.status) {
      case 'pending':
        // The sweeper may not have run yet; the answer must not wait for it.
        if (request.expiresAt.getTime() <= this.now().getTime()) return { status: 'expired', hostId };
        return { status: 'pending', hostId, expiresAt: request.expiresAt };
      case 'approved':
        if (request.clientCert === null || request.certExpiresAt === null) {
          throw new Error(`Pairing request ${request.id} is approved but holds no certificate`);
        }
        return {
          status: 'approved',
          hostId,
          clientCert: request.clientCert,
          caCert: this.ca.issuing().certPem,
          certExpiresAt: request.certExpiresAt,
        };
      case 'denied':
        return { status: 'denied', hostId };
      case 'expired':
        return { status: 'expired', hostId };
    }
  }

  async listPending(): Promise<PendingRequestView[]> {
    const pending = await this.store.pairingRequests.listPending(this.now());
    // Asked now rather than taken from submit time: another request of the same host may have
    // been approved since.
    const enrolled = new Set<string>();
    for (const hostId of new Set(pending.map((request) => request.hostId))) {
      if (await this.store.slaveServers.getByHostId(hostId)) enrolled.add(hostId);
    }
    return pending.map((request) => ({
      hostId: request.hostId,
      pairingCode: request.pairingCode,
      sourceAddress: request.sourceAddress ?? 'unknown',
      keyFingerprint: request.keyFingerprint ?? 'unknown',
      requestedAt: request.requestedAt,
      expiresAt: request.expiresAt,
      rePair: enrolled.has(request.hostId),
    }));
  }

  /**
   * Signs the request's CSR and records the result. Signing is asynchronous and a transaction
   * cannot span an await, so the certificate is made first and the transaction then re-checks
   * the request: if it was decided meanwhile, the certificate is dropped unrecorded, which makes
   * it useless (the hub only accepts serials that are in the store).
   */
  async approve(hostId: string, pairingCode: string): Promise<ApproveResult> {
    const code = this.parseCode(pairingCode);
    checkHostId(hostId, this.isNameTaken);
    const found = await this.decideOrRefuse(hostId, code, this.now());
    const target = found.request;

    const csr = await this.validate(target.csr, hostId);
    const issuedAt = this.now();
    const ca = this.ca.issuing();
    const issued = await issueSlaveCertificate(ca, csr, hostId, {
      validityMs: this.settings.certValidityMs,
      now: issuedAt,
    });

    const decidedAt = this.now();
    const outcome = await this.store.transaction(
      async (tx): Promise<Refusal | { request: PairingRequest; rePair: boolean }> => {
        const current = await tx.pairingRequests.get(target.id);
        if (!current) return { error: noPendingRequest(hostId, code) };
        const refusal = await this.refusalFor(tx, current, decidedAt);
        if (refusal) return refusal;
        const keyProblem = await this.knownKeyProblem(tx, csr.keyFingerprint);
        if (keyProblem) return { error: keyProblem };
        const previous = await tx.slaveServers.getByHostId(hostId);
        const rePair = previous !== undefined;
        const recorded = await tx.pairingRequests.recordApproval(current.id, {
          clientCert: issued.certPem,
          certSerial: issued.serialHex,
          certExpiresAt: issued.notAfter,
          decidedAt,
          rePair,
        });
        // refusalFor saw it pending inside this same transaction, so this cannot lose; if it ever
        // does, recording nothing is the safe answer.
        if (!recorded) return { error: noPendingRequest(hostId, code) };
        if (previous) {
          await tx.revokedCredentials.revoke({
            hostId,
            certSerial: previous.certSerial,
            reason: 'superseded',
            keyFingerprint: previous.keyFingerprint,
          });
        }
        await tx.slaveServers.upsertEnrollment({
          hostId,
          certSerial: issued.serialHex,
          issuedAt,
          expiresAt: issued.notAfter,
          keyFingerprint: issued.keyFingerprint,
          caFingerprint: ca.fingerprint,
        });
        return { request: current, rePair };
      },
    );
    if ('error' in outcome) throw this.refused(outcome);

    this.logger.info(
      { host: hostId, serial: issued.serialHex, rePair: outcome.rePair, key: issued.keyFingerprint },
      'pairing request approved',
    );
    this.emit('approved', outcome.request, decidedAt);
    return { hostId, certSerial: issued.serialHex, certExpiresAt: issued.notAfter, rePair: outcome.rePair };
  }

  async deny(hostId: string, pairingCode: string): Promise<{ hostId: string }> {
    const code = this.parseCode(pairingCode);
    const now = this.now();
    const outcome = await this.store.transaction(
      async (tx): Promise<Refusal | { request: PairingRequest }> => {
        const found = await this.findDecidable(tx, hostId, code, now);
        if ('error' in found) return found;
        if (!(await tx.pairingRequests.recordDenial(found.request.id, now))) {
          return { error: noPendingRequest(hostId, code) };
        }
        return found;
      },
    );
    if ('error' in outcome) throw this.refused(outcome);
    this.logger.info({ host: hostId, code }, 'pairing request denied');
    this.emit('denied', outcome.request, now);
    return { hostId };
  }

  subscribe(listener: PairingListener): () => void {
    return this.events.subscribe(listener);
  }

  /**
   * Expires pending requests whose time is up (reporting each), and forgets requests that ran
   * out more than `keepFinishedMs` ago, whatever their status: that window is the slave's to
   * pick up its certificate or learn the outcome, and the admin's to be told "expired" rather
   * than "no such request". It runs in the background, so it never waits for a lock another
   * process holds (that froze the event loop for the busy timeout): a busy database skips this
   * round, and answers stay right meanwhile because they check expiry themselves.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    const forgetBefore = new Date(now.getTime() - keepFinishedMs(this.settings));
    const swept = await this.store.tryWrite(async (tx) => {
      const rows = await tx.pairingRequests.markExpired(now);
      await tx.pairingRequests.deleteExpired(forgetBefore);
      return rows;
    });
    if (!swept.written) return;
    for (const request of swept.value) this.reportExpired(request, now);
  }

  start(): void {
    if (this.timer) return;
    this.sweepSafely();
    this.timer = setInterval(() => this.sweepSafely(), this.sweepIntervalMs);
    // The sweeper alone must never keep a process alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweepSafely(): void {
    this.sweep().catch((err: unknown) => {
      // A locked database now is no reason to stop sweeping later.
      this.logger.warn({ err }, 'pairing sweep failed');
    });
  }

  private async validate(csrPem: string, hostId: string): Promise<ValidatedCsr> {
    try {
      return await validateCsr(csrPem, hostId);
    } catch (err) {
      if (err instanceof CsrRejectedError) throw new PairingError(400, 'PAIRING_CSR_REJECTED', err.message);
      throw err;
    }
  }

  private parseCode(input: string): string {
    const code = normalizePairingCode(input);
    if (code === undefined) {
      throw new PairingError(
        400,
        'PAIRING_INVALID_CODE',
        `${JSON.stringify(input.slice(0, 32))} is not a pairing code: expected six digits, as 123-456`,
      );
    }
    return code;
  }

  /** Runs the lookup in its own transaction (it may expire the request) and throws a refusal. */
  private async decideOrRefuse(
    hostId: string,
    code: string,
    now: Date,
  ): Promise<{ request: PairingRequest }> {
    const found = await this.store.transaction((tx) => this.findDecidable(tx, hostId, code, now));
    if ('error' in found) throw this.refused(found);
    return found;
  }

  /**
   * The host's request with this code, if it can still be decided. Codes are compared in
   * constant time in JavaScript, not matched in SQL. Codes are unique only among pending
   * requests, so a pending match wins over an older decided one with the same code.
   */
  private async findDecidable(
    tx: MasterRepos,
    hostId: string,
    code: string,
    now: Date,
  ): Promise<Refusal | { request: PairingRequest }> {
    const matches = (await tx.pairingRequests.listForHost(hostId)).filter((request) =>
      pairingCodesEqual(request.pairingCode, code),
    );
    const request = matches.find((r) => r.status === 'pending') ?? matches[0];
    if (!request) return { error: noPendingRequest(hostId, code) };
    return (await this.refusalFor(tx, request, now)) ?? { request };
  }

  /** Must run inside a transaction: finding a pending request past its time expires it. */
  private async refusalFor(
    tx: MasterRepos,
    request: PairingRequest,
    now: Date,
  ): Promise<Refusal | undefined> {
    switch (request.status) {
      case 'approved':
      case 'denied':
        return {
          error: new PairingError(
            409,
            request.status === 'approved' ? 'PAIRING_ALREADY_APPROVED' : 'PAIRING_ALREADY_DENIED',
            `The pairing request for ${request.hostId} with code ${request.pairingCode} was already ${request.status}`,
          ),
        };
      case 'expired':
        return { error: expiredError() };
      case 'pending': {
        if (request.expiresAt.getTime() > now.getTime()) return undefined;
        const expired = await tx.pairingRequests.expireOne(request.id, now);
        return expired ? { error: expiredError(), expired } : { error: expiredError() };
      }
    }
  }

  private refused(refusal: Refusal): PairingError {
    if (refusal.expired) this.reportExpired(refusal.expired, this.now());
    return refusal.error;
  }

  private async refuseKnownKey(tx: MasterRepos, keyFingerprint: string, now: Date): Promise<void> {
    const problem = await this.knownKeyProblem(tx, keyFingerprint);
    if (problem) throw problem;
    if (await tx.pairingRequests.hasPendingWithKey(keyFingerprint, now)) {
      throw new PairingError(
        409,
        'PAIRING_KEY_PENDING',
        'A pairing request with this public key is already pending; wait for it to be decided',
      );
    }
  }

  /**
   * A key is good for one enrollment: reusing an enrolled or revoked key would let an old
   * certificate's holder ride on a new approval.
   */
  private async knownKeyProblem(tx: MasterRepos, keyFingerprint: string): Promise<PairingError | undefined> {
    // Revoked first: a revoked host's row still holds its key, and "revoked" is the truer answer.
    if (await tx.revokedCredentials.isKeyRevoked(keyFingerprint)) {
      return new PairingError(
        409,
        'PAIRING_KEY_REVOKED',
        'This public key was revoked; the slave must make a new key to pair again',
      );
    }
    if (await tx.slaveServers.getByKeyFingerprint(keyFingerprint)) {
      return new PairingError(
        409,
        'PAIRING_KEY_ENROLLED',
        'This public key is already enrolled; the slave must make a new key to pair again',
      );
    }
    return undefined;
  }

  /** The join token requests must carry, when this master requires one. */
  currentJoinToken(): string | undefined {
    return this.joinToken;
  }

  /**
   * Rotation: `writeNew` stores a new token (the home's file) and from then on only it is
   * accepted. Requests already pending were let in with the old token and stay; an admin still
   * approves each one by its code.
   */
  rotateJoinToken(writeNew: () => string): string {
    if (this.joinToken === undefined) {
      throw new PairingError(
        409,
        'PAIRING_JOIN_TOKEN_OFF',
        'This master does not require a join token, so there is none to rotate (start it with --pairing-token required)',
      );
    }
    this.joinToken = writeNew();
    this.logger.info('pairing join token rotated: pair commands printed before no longer work');
    return this.joinToken;
  }

  private checkJoinToken(given: string | undefined): void {
    if (this.joinToken === undefined) return;
    if (given === undefined || given === '') {
      throw new PairingError(
        401,
        'PAIRING_JOIN_TOKEN_REQUIRED',
        'This master requires a join token: use the pair command printed by `diane info` on the master',
      );
    }
    if (!joinTokensEqual(given, this.joinToken)) {
      throw new PairingError(
        401,
        'PAIRING_JOIN_TOKEN_INVALID',
        'The join token is wrong: copy the pair command printed by `diane info` on the master again',
      );
    }
  }

  /**
   * Applies the caps to a new request from `sourceAddress`, inside the submit transaction:
   * refuses it, or displaces one pending request to make room (returned, to be reported once
   * the transaction has committed). Counting is by source prefix, computed from the stored
   * addresses, so it holds across restarts and needs no state of its own.
   */
  private async makeRoom(
    tx: MasterRepos,
    hostId: string,
    sourceAddress: string,
    now: Date,
  ): Promise<PairingRequest | undefined> {
    const { settings } = this;
    const prefix = sourcePrefix(sourceAddress);
    // Oldest first; every pending request that has not run out, whatever the sweeper did.
    const pending = await tx.pairingRequests.listPending(now);
    const prefixOf = (request: PairingRequest) => sourcePrefix(request.sourceAddress ?? 'unknown');
    const fromPrefix = pending.filter((request) => prefixOf(request) === prefix);

    const sameHost = fromPrefix.filter((request) => request.hostId === hostId);
    if (sameHost.length >= settings.maxPendingPerHostFromPrefix) {
      return this.displace(tx, sameHost[0]!);
    }
    if (fromPrefix.length >= settings.maxPendingPerPrefix) {
      throw new PairingError(
        429,
        'PAIRING_TOO_MANY_FROM_SOURCE',
        `Too many pending pairing requests from ${prefix} (at most ${settings.maxPendingPerPrefix}); ` +
          'approve or deny them, or wait for them to expire',
      );
    }
    if (pending.length >= settings.maxPendingTotal) {
      return this.displace(tx, oldestOfBusiestPrefix(pending, prefixOf));
    }
    return undefined;
  }

  /** Ends a pending request as expired, which is what its slave then reads when it polls. */
  private async displace(tx: MasterRepos, request: PairingRequest): Promise<PairingRequest | undefined> {
    return (await tx.pairingRequests.updateStatus(request.id, 'pending', 'expired')) ? request : undefined;
  }

  private reportDisplaced(displaced: PairingRequest, by: PairingRequest, at: Date): void {
    this.logger.warn(
      {
        host: displaced.hostId,
        code: displaced.pairingCode,
        source: displaced.sourceAddress,
        byHost: by.hostId,
        bySource: by.sourceAddress,
      },
      'pairing request displaced by a newer one (pending caps)',
    );
    this.emit('expired', displaced, at);
  }

  private reportExpired(request: PairingRequest, at: Date): void {
    this.logger.info({ host: request.hostId, code: request.pairingCode }, 'pairing request expired');
    this.emit('expired', request, at);
  }

  private emit(type: PairingEventType, request: PairingRequest, at: Date): void {
    const event: PairingEvent = {
      type,
      hostId: request.hostId,
      pairingCode: request.pairingCode,
      keyFingerprint: request.keyFingerprint ?? 'unknown',
      at: at.toISOString(),
    };
    this.events.emit(event);
  }
}

/**
 * The request a full list gives up: the oldest of the prefix holding the most, so that the
 * networks flooding the list pay for a newcomer's place, not the ones with a single request.
 * Ties go to the prefix whose oldest request is older.
 */
function oldestOfBusiestPrefix(
  pending: PairingRequest[],
  prefixOf: (request: PairingRequest) => string,
): PairingRequest {
  const byPrefix = new Map<string, PairingRequest[]>();
  for (const request of pending) {
    const prefix = prefixOf(request);
    const list = byPrefix.get(prefix);
    if (list) list.push(request);
    else byPrefix.set(prefix, [request]);
  }
  // Prefixes come in the order of their oldest request, so a strict > keeps the older on a tie.
  let busiest: PairingRequest[] | undefined;
  for (const list of byPrefix.values()) if (!busiest || list.length > busiest.length) busiest = list;
  return busiest![0]!;
}

function noPendingRequest(hostId: string, code: string): PairingError {
  return new PairingError(
    404,
    'PAIRING_NO_PENDING_REQUEST',
    `No pending pairing request for ${hostId} with code ${code}`,
  );
}

/** At least one TTL, and never less than ten minutes, however short the TTL is set. */
function keepFinishedMs(settings: PairingSettings): number {
  return Math.max(settings.ttlMs, MIN_KEEP_FINISHED_MS);
}

const MIN_KEEP_FINISHED_MS = 10 * 60 * 1000;

function expiredError(): PairingError {
  // Exactly this text: the seed design note's scenario 5 and the CLI show it as is.
  return new PairingError(410, 'PAIRING_EXPIRED', 'Pairing request expired');
}
