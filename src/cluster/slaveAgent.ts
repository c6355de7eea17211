import type { IncomingMessage } from 'node:http';
import type { Server } from '@modelcontextprotocol/server';
import { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import { Backoff } from '../mcp/backoff.js';
import type { ServerExposure } from '../mcp/exposure.js';
import { createFront, type FrontInfo } from '../mcp/frontServer.js';
import { relayHotRequests } from '../mcp/relay/transportRelay.js';
import type { Router } from '../mcp/router.js';
import type { Refusal } from './certificateCheck.js';
import { DialPlan, type DialTarget, pinnedLookup } from './dialPlan.js';
import { startHeartbeat } from './heartbeat.js';
import { fetchMasterCa, parseMasterUrl } from './masterCa.js';
import { mastersToDial } from './masterList.js';
import { runAt, type Scheduled } from './runAt.js';
import type { SlaveCredentials } from './slaveCredentials.js';
import { RenewalRefused, type RenewalSchedule, renewalDueAt, requestRenewal } from './slaveRenewal.js';
import { applyTrust, requestTrust, trustedFingerprints } from './slaveTrust.js';
import { TRUST_CHANGED_NOTIFICATION, TrustParamsSchema } from './trustWire.js';
import { CloseCode, WebSocketTransport } from './webSocketTransport.js';

export type SlaveState =
  | 'connecting'
  | 'connected'
  | 'backoff'
  | 'revoked'
  | 'superseded'
  | 'expired'
  | 'ca-changed'
  | 'stopped';

export interface SlaveStatus {
  state: SlaveState;
  host_id: string;
  /** The link URL of the master linked to, or being dialed. */
  master: string;
  /** The address dialed, when the master's name has several. */
  master_address?: string;
  /** Every master this slave may link to (https origins), in dial order. */
  masters: string[];
  connected_at?: string;
  last_error?: string;
  next_retry_at?: string;
  attempts: number;
  cert_expires_at: string;
  /** When the certificate is renewed next (over the link, so only while connected). */
  next_renewal_at?: string;
  last_renewed_at?: string;
  /** Why the last renewal attempt failed; cleared by a successful one. */
  renewal_error?: string;
}

/** `slave-status.json` as `diane slave start` writes it and `diane slave status` reads it. */
export interface SlaveStatusFile extends SlaveStatus {
  pid: number;
  /** Per configured server: what the master may see, by the server's own names. */
  exposure?: ServerExposure[];
  updated_at: string;
}

export interface SlaveAgentOptions {
  creds: SlaveCredentials;
  router: Router;
  info: FrontInfo;
  logger: Logger;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxPayloadBytes: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** A link that lived this long resets the backoff. */
  stableAfterMs: number;
  onStatus: (status: SlaveStatus) => void;
  /** When to renew the certificate over the link; undefined: never (`--no-renewal`). */
  renewal: RenewalSchedule | undefined;
  /** Writes renewed credentials durably (atomically, 0600) before the agent uses them. */
  saveCredentials: (creds: SlaveCredentials) => void;
  /** The master missed its heartbeat and the link is dropped (metrics). */
  onHeartbeatMissed?: () => void;
  /** How each renewal attempt ended: renewed, failed (retried) or refused for good (metrics). */
  onRenewal?: (outcome: 'renewed' | 'failed' | 'refused') => void;
  /** The masters to dial in turn; default: those of the credentials (`mastersToDial`). */
  dialPlan?: DialPlan;
}

/** Why the agent stopped for good. */
export type SlaveOutcome = 'stopped' | 'revoked' | 'superseded' | 'expired' | 'ca-changed';

type LinkEnd =
  | { kind: 'closed'; code: number; reason: string; connectedMs: number }
  /** The certificate was renewed: reconnect with it at once; the master closes the old link. */
  | { kind: 'renewed' }
  | { kind: 'refused'; status: number; refusal?: Refusal }
  /** TLS: the master's certificate does not chain to a CA this slave trusts. */
  | { kind: 'untrusted-master'; message: string }
  | { kind: 'failed'; message: string };

/** OpenSSL's verdicts on a server chain that does not lead to a trusted CA. */
const UNTRUSTED_CHAIN_CODES: ReadonlySet<string> = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

/** How long the master has to answer `diane/trust`. */
const TRUST_TIMEOUT_MS = 30_000;

const FATAL_REFUSALS: Record<string, SlaveOutcome> = {
  revoked: 'revoked',
  superseded: 'superseded',
  disabled: 'revoked',
  expired: 'expired',
};

/**
 * The refusals after which redialing cannot help. A 5xx is the master's own fault (the hub
 * answers 500 when its check crashes), so it is retried whatever header came with it.
 */
export function fatalRefusal(status: number, refusal: string | undefined): SlaveOutcome | undefined {
  if (status >= 500 || refusal === undefined || !Object.hasOwn(FATAL_REFUSALS, refusal)) return undefined;
  return FATAL_REFUSALS[refusal];
}

/**
 * The slave's side of the cluster: dials a master over WebSocket with mutual TLS (the master
 * is verified against the CA pinned at pairing, which every master of the cluster shares),
 * serves this machine's aggregated tools as an MCP server over that socket, and dials the next
 * master of its `DialPlan` with full-jitter backoff whenever the link drops or a dial fails.
 * It gives up only when a master says the credentials are revoked or expired.
 */
export class SlaveAgent {
  private readonly backoff: Backoff;
  private readonly renewalBackoff: Backoff;
  private stopped = false;
  private current?: WebSocket;
  /** Links replaced by a renewal, still finishing the master's calls until the master closes them. */
  private readonly draining = new Set<WebSocket>();
  private wakeUp?: () => void;
  private status: SlaveStatus;
  /** The credentials in use: the paired ones, then each renewed set once it is on disk. */
  private creds: SlaveCredentials;
  private renewalDue: Date | undefined;
  private readonly plan: DialPlan;
  /** Masters that presented a CA this slave does not trust, since the last link. */
  private readonly untrustedMasters = new Set<string>();

  constructor(private readonly opts: SlaveAgentOptions) {
    this.backoff = new Backoff({ baseMs: opts.backoffBaseMs, capMs: opts.backoffCapMs, jitter: 'full' });
    this.renewalBackoff = new Backoff({
      baseMs: opts.renewal?.retryBaseMs,
      capMs: opts.renewal?.retryCapMs,
      jitter: 'full',
    });
    this.creds = opts.creds;
    this.plan = opts.dialPlan ?? new DialPlan(mastersToDial(opts.creds));
    this.renewalDue = opts.renewal ? renewalDueAt(this.creds, opts.renewal) : undefined;
    this.status = {
      state: 'connecting',
      host_id: opts.creds.host_id,
      master: this.plan.masters[0]!.wsUrl,
      masters: this.plan.masters.map((m) => m.master),
      attempts: 0,
      cert_expires_at: opts.creds.expires_at,
      next_renewal_at: this.renewalDue?.toISOString(),
    };
  }

  async run(): Promise<SlaveOutcome> {
    // Every failed dial and every dropped link moves on to the next master (or address of a
    // master's name); a renewal redials the same one. The close codes and refusals that say
    // "stop" stop the slave whichever master sent them: the masters share one store.
    let target = await this.plan.next();
    while (!this.stopped) {
      if (new Date(this.creds.expires_at).getTime() <= Date.now())
        return this.finish('expired', 'certificate expired');
      this.setStatus({
        state: 'connecting',
        attempts: this.status.attempts + 1,
        master: target.wsUrl,
        master_address: target.address,
      });
      const end = await this.connectOnce(target);
      if (this.stopped) break;
      if (end.kind === 'renewed') {
        this.backoff.reset();
        continue;
      }
      if (end.kind === 'untrusted-master') {
        const changed = await this.masterCaChanged(target);
        // One master with a foreign CA is a master not yet given the shared CA; only when every
        // master presents one has the CA changed under this slave.
        if (changed) this.untrustedMasters.add(target.master);
        if (changed && this.untrustedMasters.size >= this.plan.masterCount)
          return this.finish('ca-changed', changed);
        this.setStatus({ last_error: changed ?? end.message });
      } else if (end.kind === 'refused') {
        const fatal = fatalRefusal(end.status, end.refusal);
        if (fatal) return this.finish(fatal, `the master refused the connection: ${end.refusal}`);
        this.setStatus({
          last_error: `the master refused the connection (HTTP ${end.status}${end.refusal ? `, ${end.refusal}` : ''})`,
        });
      } else if (end.kind === 'closed') {
        if (end.code === CloseCode.revoked) return this.finish('revoked', 'credentials revoked');
        if (end.code === CloseCode.superseded) {
          return this.finish('superseded', 'credentials superseded: this host paired again with another key');
        }
        if (end.code === CloseCode.certificateExpired) return this.finish('expired', 'certificate expired');
        if (end.code === CloseCode.caRetired) {
          return this.finish('ca-changed', 'the master retired the CA of this certificate (CA rollover)');
        }
        if (end.connectedMs >= this.opts.stableAfterMs) this.backoff.reset();
        this.setStatus({ last_error: `link closed (${end.code}${end.reason ? ` ${end.reason}` : ''})` });
      } else {
        this.setStatus({ last_error: end.message });
      }
      const delay = this.backoff.next();
      this.setStatus({
        state: 'backoff',
        connected_at: undefined,
        next_retry_at: new Date(Date.now() + delay).toISOString(),
      });
      this.opts.logger.info(
        { retryInMs: delay, error: this.status.last_error },
        'link to the master is down; retrying',
      );
      await this.sleep(delay);
      if (!this.stopped) target = await this.plan.next();
    }
    return this.finish('stopped');
  }

  private finish(outcome: SlaveOutcome, why?: string): SlaveOutcome {
    if (outcome !== 'stopped') this.opts.logger.error({ outcome }, why ?? outcome);
    this.setStatus({
      state: outcome === 'stopped' ? 'stopped' : outcome,
      last_error: why,
      next_retry_at: undefined,
    });
    return outcome;
  }

  private connectOnce(target: DialTarget): Promise<LinkEnd> {
    const creds = this.creds;
    return new Promise<LinkEnd>((resolve) => {
      let openedAt: number | undefined;
      let server: Server | undefined;
      let renewalTimer: Scheduled | undefined;
      let settled = false;
      let cleanedUp = false;
      // The MCP server of a link outlives the loop's interest in it after a renewal: it keeps
      // serving the master's calls in flight until the master closes the old link.
      const cleanup = () => {
        if (cleanedUp) return;
        cleanedUp = true;
        renewalTimer?.cancel();
        void server?.close().catch(() => {});
      };
      const settle = (end: LinkEnd) => {
        if (settled) return;
        settled = true;
        if (end.kind !== 'renewed') cleanup();
        resolve(end);
      };
      const scheduleRenewal = (front: Server, at: number) => {
        renewalTimer?.cancel();
        renewalTimer = runAt(at, () => void this.renewOverLink(front, ws, settle, scheduleRenewal));
      };
      const lookup = pinnedLookup(target);
      // Every master's server certificate is from the shared CA, so the same pin verifies each;
      // the URL's host (a name, even when an address is pinned) is what its SANs must cover.
      const ws = new WebSocket(target.wsUrl, {
        ...(lookup ? { lookup } : {}),
        cert: creds.client_cert,
        key: creds.client_key,
        ca: creds.ca_cert,
        minVersion: 'TLSv1.3',
        maxPayload: this.opts.maxPayloadBytes,
        perMessageDeflate: false,
        handshakeTimeout: 15_000,
        // Masking protects browsers' intermediaries from forged frames; this link is mutual TLS
        // between two Dianes, and masking cost 2-4 ms per routed 1 MiB result.
        generateMask: (mask) => mask.fill(0),
      });
      this.current = ws;
      ws.on('unexpected-response', (_req, res: IncomingMessage) => {
        const refusal = res.headers['x-diane-refusal'];
        res.resume();
        settle({
          kind: 'refused',
          status: res.statusCode ?? 0,
          refusal: typeof refusal === 'string' ? (refusal as Refusal) : undefined,
        });
        ws.terminate();
      });
      ws.on('error', (err: NodeJS.ErrnoException) => {
        this.opts.logger.debug({ err: err.message }, 'link error');
        if (openedAt !== undefined) return;
        if (err.code && UNTRUSTED_CHAIN_CODES.has(err.code)) {
          settle({
            kind: 'untrusted-master',
            message: `the master's certificate is not trusted: ${err.message}`,
          });
        } else {
          settle({ kind: 'failed', message: err.message });
        }
      });
      ws.on('open', () => {
        openedAt = Date.now();
        const transport = new WebSocketTransport(ws);
        const relayed = createFront(this.opts.router, this.opts.info, { persistent: true });
        const front = relayed.server;
        server = front;
        // Hot requests from the master skip the SDK server (mcp/relay/transportRelay.ts).
        relayHotRequests(this.opts.router, relayed, transport);
        const refreshTrust = () =>
          void this.refreshTrust(front).then((renewNow) => {
            if (renewNow && this.opts.renewal && ws.readyState === WebSocket.OPEN) scheduleRenewal(front, 0);
          });
        front.setNotificationHandler(
          TRUST_CHANGED_NOTIFICATION,
          { params: TrustParamsSchema.optional() },
          () => refreshTrust(),
        );
        // Due already (for example after a time offline past two thirds): renewed at once.
        front.oninitialized = () => {
          if (this.renewalDue) scheduleRenewal(front, this.renewalDue.getTime());
          refreshTrust();
        };
        // The front's router session tells the master of list changes.
        front.connect(transport).catch((err) => {
          this.opts.logger.warn({ err: (err as Error).message }, 'could not serve MCP on the link');
          ws.close(CloseCode.invalidFrame, 'MCP setup failed');
        });
        startHeartbeat(ws, {
          intervalMs: this.opts.heartbeatIntervalMs,
          timeoutMs: this.opts.heartbeatTimeoutMs,
          onTimeout: () => {
            this.opts.logger.warn('the master missed its heartbeat; reconnecting');
            this.opts.onHeartbeatMissed?.();
            ws.terminate();
          },
        });
        // Attempts count from the last success, so `slave status` shows the current outage only.
        this.untrustedMasters.clear();
        this.setStatus({
          attempts: 0,
          state: 'connected',
          connected_at: new Date(openedAt).toISOString(),
          last_error: undefined,
          next_retry_at: undefined,
        });
        this.opts.logger.info({ master: target.wsUrl, address: target.address }, 'connected to the master');
      });
      ws.on('close', (code, reason) => {
        cleanup();
        this.draining.delete(ws);
        settle({
          kind: 'closed',
          code,
          reason: reason.toString(),
          connectedMs: openedAt === undefined ? 0 : Date.now() - openedAt,
        });
      });
    });
  }

  /**
   * One renewal attempt on a live link. The new credentials are written to disk before anything
   * uses them, and only after the master answered: a crash at any point leaves a file with a
   * certificate the master accepts (the old one stays valid until the new one is seen on a link).
   */
  private async renewOverLink(
    front: Server,
    ws: WebSocket,
    settle: (end: LinkEnd) => void,
    reschedule: (front: Server, at: number) => void,
  ): Promise<void> {
    const schedule = this.opts.renewal;
    if (!schedule || this.stopped || ws.readyState !== WebSocket.OPEN) return;
    const current = this.creds;
    let renewed: SlaveCredentials;
    try {
      this.opts.logger.info({ expiresAt: current.expires_at }, 'renewing the certificate over the link');
      const answer = await requestRenewal(front, current, schedule.requestTimeoutMs);
      // The CA bundle may have changed while the request was out (a rollover announced).
      renewed = { ...this.creds, ...pickCertificate(answer) };
      this.opts.saveCredentials(renewed);
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof RenewalRefused && err.final) {
        // The master cuts the link with a close code that says what to do; nothing to retry.
        this.opts.logger.error(
          { reason: err.reason, err: message },
          'the master refused to renew the certificate',
        );
        this.setStatus({ renewal_error: message, next_renewal_at: undefined });
        this.opts.onRenewal?.('refused');
        return;
      }
      const left = new Date(current.expires_at).getTime() - Date.now();
      const delay = Math.min(
        this.renewalBackoff.next(),
        Math.max(1000, left * schedule.retryMaxFractionOfRemaining),
      );
      this.opts.logger.warn({ err: message, retryInMs: delay }, 'certificate renewal failed; retrying');
      this.setStatus({ renewal_error: message, next_renewal_at: new Date(Date.now() + delay).toISOString() });
      this.opts.onRenewal?.('failed');
      if (ws.readyState === WebSocket.OPEN) reschedule(front, Date.now() + delay);
      return;
    }
    this.creds = renewed;
    this.renewalBackoff.reset();
    this.renewalDue = renewalDueAt(renewed, schedule);
    this.setStatus({
      cert_expires_at: renewed.expires_at,
      next_renewal_at: this.renewalDue.toISOString(),
      last_renewed_at: new Date().toISOString(),
      renewal_error: undefined,
    });
    this.opts.onRenewal?.('renewed');
    this.opts.logger.info(
      { expiresAt: renewed.expires_at, nextRenewal: this.renewalDue.toISOString() },
      'certificate renewed; reconnecting with it',
    );
    // The master closes this link once the new one is up and its calls are done; should it not,
    // the link is dropped when its certificate would have ended anyway.
    this.draining.add(ws);
    runAt(new Date(current.expires_at).getTime(), () => ws.terminate());
    settle({ kind: 'renewed' });
  }

  /**
   * Learns the CAs to trust over the link and keeps them in the credentials file. True when this
   * slave's certificate is not from the CA that issues now, so it should renew at once.
   */
  private async refreshTrust(front: Server): Promise<boolean> {
    try {
      const update = applyTrust(this.creds, await requestTrust(front, TRUST_TIMEOUT_MS));
      if (update.changed) {
        this.opts.saveCredentials(update.creds);
        this.creds = update.creds;
        this.opts.logger.info(
          { cas: [...trustedFingerprints(update.creds)] },
          'the master changed the CAs to trust (CA rollover); saved',
        );
      }
      if (update.renewNow) {
        this.opts.logger.info(
          this.opts.renewal
            ? 'this certificate is not from the CA the master issues from now; renewing onto it'
            : 'this certificate is not from the CA the master issues from now, and renewal is off: ' +
                'the host must pair again when the rollover finishes',
        );
      }
      return update.renewNow;
    } catch (err) {
      this.opts.logger.warn(
        { err: (err as Error).message },
        'could not learn the CAs to trust from the master',
      );
      return false;
    }
  }

  /**
   * The TLS check failed on the master's chain. Reads the CA the master presents now (without
   * trusting it) to tell a finished CA rollover this slave missed, which only pairing again can
   * mend, from anything else, which is retried.
   */
  private async masterCaChanged(target: DialTarget): Promise<string | undefined> {
    try {
      const { endpoint } = parseMasterUrl(target.master);
      const { fingerprint } = await fetchMasterCa({ ...endpoint, address: target.address });
      const trusted = trustedFingerprints(this.creds);
      if (trusted.has(fingerprint)) return undefined;
      return (
        `the master presents the CA ${fingerprint}, which this host does not trust (it trusts ` +
        `${[...trusted].join(', ')}). If the master finished a CA rollover while this host was away, ` +
        "pair again (`diane slave pair`); otherwise something else answers at the master's address"
      );
    } catch (err) {
      this.opts.logger.debug({ err: (err as Error).message }, 'could not read the master CA');
      return undefined;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private setStatus(patch: Partial<SlaveStatus>): void {
    this.status = { ...this.status, ...patch };
    this.opts.onStatus({ ...this.status });
  }

  stop(): void {
    this.stopped = true;
    this.wakeUp?.();
    this.current?.close(CloseCode.goingAway, 'slave shutting down');
    for (const ws of this.draining) ws.close(CloseCode.goingAway, 'slave shutting down');
  }
}

function pickCertificate(
  creds: SlaveCredentials,
): Pick<SlaveCredentials, 'client_cert' | 'client_key' | 'issued_at' | 'expires_at'> {
  const { client_cert, client_key, issued_at, expires_at } = creds;
  return { client_cert, client_key, issued_at, expires_at };
}
