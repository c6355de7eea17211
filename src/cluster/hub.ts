import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import type { Logger } from '../log.js';
import {
  type CertificateCheckStore,
  type CertificateVerdict,
  checkSlaveCertificate,
  REFUSAL_STATUS,
  REFUSAL_TEXT,
  type Refusal,
} from './certificateCheck.js';
import { ConcurrencyLimit, QueueAbortedError } from './concurrencyLimit.js';
import { startHeartbeat } from './heartbeat.js';
import type { SlaveRegistry } from './slaveRegistry.js';
import { CloseCode } from './webSocketTransport.js';

/** How many links the hub brings up at once. */
export interface HubLimits {
  /**
   * MCP handshakes (initialize and the first read of every list) in flight at once; the rest wait
   * in order. A reconnect storm of thousands of slaves then costs the event loop a steady share
   * instead of starving the links already up (their heartbeats and calls).
   */
  maxConcurrentHandshakes: number;
  /** Links waiting for their handshake; more are closed (1013, try again later). */
  maxQueuedHandshakes: number;
}

export const DEFAULT_HUB_LIMITS: HubLimits = Object.freeze({
  maxConcurrentHandshakes: 32,
  maxQueuedHandshakes: 8192,
});

export interface HubOptions {
  store: CertificateCheckStore;
  registry: SlaveRegistry;
  logger: Logger;
  maxPayloadBytes: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  limits?: HubLimits;
  now?: () => Date;
  /** A host's link finished its MCP handshake (metrics: connects and reconnects). */
  onLinkUp?: (hostId: string) => void;
  /** A host's link was dropped for a missed heartbeat (metrics). */
  onHeartbeatMissed?: (hostId: string) => void;
}

/**
 * `GET /slave/connect`: checks the client certificate against the store before upgrading, then
 * hands the socket to the registry as the host the certificate names. Refusals are plain HTTP
 * answers with a distinct status and reason, so nothing is upgraded for a refused slave.
 */
export class SlaveHub {
  private readonly wss: WebSocketServer;
  private readonly handshakes: ConcurrencyLimit;

  constructor(private readonly opts: HubOptions) {
    const limits = opts.limits ?? DEFAULT_HUB_LIMITS;
    this.handshakes = new ConcurrencyLimit(limits.maxConcurrentHandshakes, limits.maxQueuedHandshakes);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxPayloadBytes,
      perMessageDeflate: false,
    });
  }

  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    void this.upgrade(req, socket, head);
  }

  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const tls = req.socket as TLSSocket;
    let verdict: CertificateVerdict;
    try {
      verdict = await checkSlaveCertificate(
        this.opts.store,
        tls.getPeerCertificate?.(),
        tls.authorized,
        tls.authorizationError ? String(tls.authorizationError) : undefined,
        (this.opts.now ?? (() => new Date()))(),
      );
    } catch (err) {
      // A crash is not a verdict: answered as one, a locked database or a bug would tell a good
      // slave "unknown certificate" and hide the fault from the admin. 500 makes the slave retry.
      this.opts.logger.error(
        { remote: req.socket.remoteAddress, err },
        'could not check a slave certificate; answered 500',
      );
      return fail(socket);
    }
    if (!verdict.ok) {
      this.opts.logger.warn(
        { remote: req.socket.remoteAddress, refusal: verdict.refusal, detail: verdict.detail },
        'refused a slave connection',
      );
      return refuse(socket, verdict.refusal);
    }
    // The store answered asynchronously: the peer may have given up meanwhile.
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const { hostId, serial, pending } = verdict;
      const remoteAddress = req.socket.remoteAddress ?? 'unknown';
      startHeartbeat(ws, {
        intervalMs: this.opts.heartbeatIntervalMs,
        timeoutMs: this.opts.heartbeatTimeoutMs,
        onPong: (at) => this.opts.registry.recordHeartbeat(hostId, at),
        onTimeout: () => {
          this.opts.logger.warn({ host: hostId }, 'slave missed its heartbeat; dropping the link');
          this.opts.onHeartbeatMissed?.(hostId);
          ws.terminate();
        },
      });
      // A link that closes while it waits for its turn leaves the queue without a handshake.
      const gone = new AbortController();
      ws.once('close', () => gone.abort());
      this.handshakes
        .run(
          () => this.opts.registry.attach(hostId, ws, { remoteAddress, certSerial: serial }, pending),
          () => new HandshakeQueueFullError(),
          { signal: gone.signal },
        )
        .then(
          () => this.opts.onLinkUp?.(hostId),
          (err) => {
            if (err instanceof QueueAbortedError) return;
            if (err instanceof HandshakeQueueFullError) {
              this.opts.logger.warn({ host: hostId }, 'too many slave handshakes waiting; closing the link');
              return ws.close(CloseCode.tryAgainLater, 'the master is busy; try again later');
            }
            this.opts.logger.warn({ host: hostId, err: (err as Error).message }, 'slave handshake failed');
            ws.close(CloseCode.invalidFrame, 'MCP handshake failed');
          },
        );
    });
  }

  /** Links whose MCP handshake is running, and links waiting for their turn. */
  handshakeLoad(): { inFlight: number; queued: number } {
    return { inFlight: this.handshakes.inFlight, queued: this.handshakes.queued };
  }

  close(): void {
    for (const ws of this.wss.clients) ws.close(CloseCode.goingAway, 'master shutting down');
    this.wss.close();
  }
}

class HandshakeQueueFullError extends Error {
  constructor() {
    super('too many slave handshakes waiting');
    this.name = 'HandshakeQueueFullError';
  }
}

function refuse(socket: Socket, refusal: Refusal): void {
  const body = JSON.stringify({ error: REFUSAL_TEXT[refusal], reason: refusal });
  answer(socket, `${REFUSAL_STATUS[refusal]} ${REFUSAL_TEXT[refusal]}`, body, refusal);
}

/** No X-Diane-Refusal: the slave must not take a fault of the master for a verdict on itself. */
function fail(socket: Socket): void {
  const body = JSON.stringify({ error: 'the master could not check the certificate; try again later' });
  answer(socket, '500 Internal Server Error', body);
}

function answer(socket: Socket, statusLine: string, body: string, refusal?: Refusal): void {
  socket.end(
    `HTTP/1.1 ${statusLine}\r\n` +
      'Content-Type: application/json\r\n' +
      (refusal ? `X-Diane-Refusal: ${refusal}\r\n` : '') +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
