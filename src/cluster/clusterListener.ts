import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { DianeError } from '../errors.js';
import { ConnectionGuard, serverTimeouts } from '../http/connectionGuard.js';
import { readJsonBody, sendJson } from '../http/json.js';
import { listenOn } from '../http/listen.js';
import { DEFAULT_CLUSTER_LISTENER_LIMITS, type ListenerLimits } from '../http/listenerLimits.js';
import { ThrottledLog } from '../http/throttledLog.js';
import { TlsAdmission } from '../http/tlsAdmission.js';
import type { Logger } from '../log.js';
import type { PairingService } from '../pairing/index.js';
import { PairingError } from '../pairing/index.js';
import {
  MAX_PAIR_BODY_BYTES,
  PAIR_PATH,
  PAIR_TRUST_PATH,
  PairBody,
  type PairTrustReply,
  REQUEST_ID,
} from './pairingWire.js';

/** The listener's TLS material, replaced whole when a CA rollover starts or finishes. */
export interface ClusterTls {
  /** The master's server certificate and key. */
  certPem: string;
  keyPem: string;
  /** The CA the server certificate chains to, sent in the chain so a pairing slave can pin it. */
  chainCaPem: string;
  /** The CAs a client certificate may chain to: the current one, and the next during a rollover. */
  trustedCaPems: string[];
}

export interface ClusterListenerOptions {
  host: string;
  port: number;
  tls: ClusterTls;
  /** What `GET /api/slave/trust` answers (see pairingWire.ts). */
  pairingTrust: () => PairTrustReply;
  pairing: PairingService;
  logger: Logger;
  limits?: ListenerLimits;
}

export type UpgradeHandler = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

/**
 * The listener slaves talk to: HTTPS with the master's server certificate, TLS 1.3 only.
 * Client certificates are requested but not required here, because pairing happens before a
 * slave has one; `/slave/connect` (the hub) insists on one itself.
 */
export class ClusterListener {
  readonly server: HttpsServer;
  readonly guard: ConnectionGuard;
  private readonly admission: TlsAdmission;
  private upgradeHandler?: UpgradeHandler;

  constructor(private readonly opts: ClusterListenerOptions) {
    const limits = opts.limits ?? DEFAULT_CLUSTER_LISTENER_LIMITS;
    this.server = createServer(
      {
        ...serverTimeouts(limits),
        ...secureContextOptions(opts.tls),
        minVersion: 'TLSv1.3',
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        this.route(req, res).catch((err) => {
          opts.logger.error({ err: (err as Error).stack }, 'cluster request failed');
          if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
          else res.end();
        });
      },
    );
    this.admission = new TlsAdmission(
      this.server,
      limits.maxConcurrentTlsHandshakes ?? Number.POSITIVE_INFINITY,
      limits.handshakeTimeoutMs,
      (socket) => this.guard.restartDeadline(socket),
    );
    this.guard = new ConnectionGuard(
      this.server,
      limits,
      opts.logger,
      'cluster listener',
      undefined,
      this.admission.acceptor,
    );
    this.admission.start();
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/slave/connect' && this.upgradeHandler) return this.upgradeHandler(req, socket, head);
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    // Every silent connection ends here (handshake timeout): a flood must not flood the log.
    const handshakeFailures = new ThrottledLog(opts.logger, 'debug', 'TLS handshake failed');
    this.server.on('tlsClientError', (err) => handshakeFailures.note({ err: err.message }));
  }

  /** New connections use the new material; established links keep theirs. */
  updateTls(tls: ClusterTls): void {
    this.server.setSecureContext({ ...secureContextOptions(tls), minVersion: 'TLSv1.3' });
  }

  onUpgrade(handler: UpgradeHandler): void {
    this.upgradeHandler = handler;
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.admission.acceptor, this.opts.host, this.opts.port, '--listen');
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === PAIR_TRUST_PATH) {
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
      return sendJson(res, 200, this.opts.pairingTrust());
    }
    if (path === PAIR_PATH) {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
      return this.pair(req, res);
    }
    const statusMatch = path.startsWith(`${PAIR_PATH}/`)
      ? /^[^/]+$/.exec(path.slice(PAIR_PATH.length + 1))
      : null;
    if (statusMatch) {
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
      return this.pairStatus(req, res, statusMatch[0]);
    }
    if (path === '/slave/connect') {
      return sendJson(res, 426, { error: 'upgrade required: /slave/connect is a WebSocket endpoint' });
    }
    sendJson(res, 404, { error: 'not found' });
  }

  private async pair(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, MAX_PAIR_BODY_BYTES);
    if (!body.ok) return sendJson(res, body.status, { error: body.message });
    const parsed = PairBody.safeParse(body.value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return sendJson(res, 400, {
        error: `invalid pairing request: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
      });
    }
    try {
      const result = await this.opts.pairing.submit({
        hostId: parsed.data.host_id,
        csrPem: parsed.data.csr,
        sourceAddress: req.socket.remoteAddress ?? 'unknown',
        ...(parsed.data.join_token === undefined ? {} : { joinToken: parsed.data.join_token }),
      });
      this.opts.logger.info(
        { host: parsed.data.host_id, source: req.socket.remoteAddress, code: result.pairingCode },
        'pairing request received',
      );
      sendJson(res, 201, {
        status: 'pending',
        request_id: result.requestId,
        pairing_code: result.pairingCode,
        expires_at: result.expiresAt.toISOString(),
        key_fingerprint: result.keyFingerprint,
      });
    } catch (err) {
      sendError(res, err);
    }
  }

  private async pairStatus(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    if (!REQUEST_ID.test(requestId)) return sendJson(res, 404, { error: 'unknown pairing request' });
    try {
      const status = await this.opts.pairing.status(requestId);
      switch (status.status) {
        case 'pending':
          return sendJson(res, 200, {
            status: 'pending',
            host_id: status.hostId,
            expires_at: status.expiresAt.toISOString(),
          });
        case 'approved':
          return sendJson(res, 200, {
            status: 'approved',
            host_id: status.hostId,
            client_cert: status.clientCert,
            ca_cert: status.caCert,
            expires_at: status.certExpiresAt.toISOString(),
            ws_url: `wss://${req.headers.host ?? 'localhost'}/slave/connect`,
          });
        default:
          return sendJson(res, 200, { status: status.status, host_id: status.hostId });
      }
    } catch (err) {
      sendError(res, err);
    }
  }

  close(): Promise<void> {
    this.admission.destroyWaiting();
    return new Promise((resolve) => {
      this.admission.acceptor.close(() => resolve());
      this.server.close();
      this.server.closeAllConnections();
    });
  }
}

function secureContextOptions(tls: ClusterTls): { cert: string; key: string; ca: string[] } {
  return {
    // The chain includes the CA so a pairing slave can read and pin its fingerprint.
    cert: `${tls.certPem.trim()}\n${tls.chainCaPem.trim()}\n`,
    key: tls.keyPem,
    ca: tls.trustedCaPems,
  };
}

function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof PairingError) return sendJson(res, err.status, { error: err.message, code: err.code });
  if (err instanceof DianeError) return sendJson(res, 400, { error: err.message, code: err.code });
  throw err;
}
