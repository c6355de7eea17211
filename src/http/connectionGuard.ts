import type { Server as HttpServer, IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { isIPv4, type Server, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { ListenerLimits } from './listenerLimits.js';
import { openFileLimit } from './openFileLimit.js';
import { ThrottledLog } from './throttledLog.js';

/** Below this a listener would be useless; a process with so few files has other problems. */
const MIN_CONNECTIONS = 16;

interface Tracked {
  socket: Socket;
  /** The first-request deadline; cleared by the first request. */
  timer: NodeJS.Timeout | undefined;
  /** Requests received and not answered yet. */
  inFlight: number;
}

/** Options that only take effect when the server is created. */
export function serverTimeouts(limits: ListenerLimits): ServerOptions & { handshakeTimeout: number } {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node checks the two timeouts above only this often (30 s by default).
    connectionsCheckingInterval: 1000,
    handshakeTimeout: limits.handshakeTimeoutMs,
  };
}

/** `::ffff:192.0.2.1` is the IPv4 peer 192.0.2.1 on a dual-stack socket and must count as it. */
function sourceOf(address: string): string {
  const unmapped = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  return isIPv4(unmapped) ? unmapped : address;
}

/**
 * Keeps a listener alive under a flood of connections: a cap on open connections (displacing
 * the oldest one that has not sent a request yet), a cap per remote address, a deadline for the
 * first request, and accept errors (EMFILE) logged instead of crashing the process.
 *
 * Connections are keyed by remote address and port, because a TLS server's requests arrive on
 * a TLS socket wrapping the TCP socket counted at accept, and both report the same peer.
 */
export class ConnectionGuard {
  readonly maxConnections: number;
  private readonly perSource = new Map<string, number>();
  /** Connections that never sent a request, oldest first: the first to go at the cap. */
  private readonly waiting = new Map<string, Tracked>();
  /** Keep-alive connections between requests, longest idle first: the next to go. */
  private readonly idle = new Map<string, Tracked>();
  /** Connections with a request in flight; upgraded ones leave the guard's hands. */
  private readonly busy = new Map<string, Tracked>();
  private open = 0;
  private readonly logs: Record<'displaced' | 'full' | 'perSource' | 'timeout' | 'accept', ThrottledLog>;

  constructor(
    server: HttpServer | HttpsServer,
    private readonly limits: ListenerLimits,
    logger: Logger,
    name: string,
    fileLimit: number | undefined = openFileLimit(),
    /** The server that accepts the connections, when it is not `server` (`TlsAdmission`). */
    acceptor: Server = server,
  ) {
    const share = fileLimit === undefined ? Number.POSITIVE_INFINITY : fileLimit * limits.maxShareOfFileLimit;
    this.maxConnections = Math.max(MIN_CONNECTIONS, Math.floor(Math.min(limits.maxConnections, share)));
    this.logs = {
      displaced: new ThrottledLog(
        logger,
        'warn',
        `${name}: at its connection limit; closing the oldest connections without a request in flight`,
      ),
      full: new ThrottledLog(logger, 'warn', `${name}: at its connection limit, all busy; refusing new ones`),
      perSource: new ThrottledLog(logger, 'warn', `${name}: too many connections from one address; refusing`),
      timeout: new ThrottledLog(logger, 'debug', `${name}: closed a connection that sent no request in time`),
      accept: new ThrottledLog(logger, 'error', `${name}: cannot accept connections`),
    };
    acceptor.on('connection', (socket: Socket) => this.accepted(socket));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.requested(req.socket, res));
    server.on('upgrade', (req: IncomingMessage) => this.upgraded(req.socket));
    logAcceptErrors(acceptor, this.logs.accept, () => this.open);
  }

  get openConnections(): number {
    return this.open;
  }

  private accepted(socket: Socket): void {
    const { remoteAddress, remotePort } = socket;
    if (remoteAddress === undefined || remotePort === undefined) {
      socket.destroy();
      return;
    }
    const source = sourceOf(remoteAddress);
    const fromSource = this.perSource.get(source) ?? 0;
    if (this.limits.maxConnectionsPerSource > 0 && fromSource >= this.limits.maxConnectionsPerSource) {
      this.logs.perSource.note({ source, max: this.limits.maxConnectionsPerSource });
      socket.destroy();
      return;
    }
    if (this.open >= this.maxConnections && !this.displaceOne()) {
      this.logs.full.note({ max: this.maxConnections });
      socket.destroy();
      return;
    }
    this.open++;
    this.perSource.set(source, fromSource + 1);
    const key = keyOf(remoteAddress, remotePort);
    const timer = setTimeout(() => {
      this.logs.timeout.note({ source });
      socket.destroy();
    }, this.limits.firstRequestTimeoutMs);
    timer.unref();
    const tracked: Tracked = { socket, timer, inFlight: 0 };
    this.waiting.set(key, tracked);
    socket.once('close', () => {
      this.open--;
      const left = (this.perSource.get(source) ?? 1) - 1;
      if (left > 0) this.perSource.set(source, left);
      else this.perSource.delete(source);
      clearTimeout(tracked.timer);
      for (const map of [this.waiting, this.idle, this.busy]) {
        if (map.get(key) === tracked) map.delete(key);
      }
    });
  }

  /**
   * Gives a connection that has not made its first request the whole deadline again, from now:
   * its wait in `TlsAdmission`'s queue was the listener's doing, not the peer's.
   */
  restartDeadline(socket: Socket): void {
    const key = keyOfSocket(socket);
    const tracked = key === undefined ? undefined : this.waiting.get(key);
    if (!tracked?.timer) return;
    tracked.timer.refresh();
  }

  /** Closes the connection cheapest to lose: never one with a request in flight. */
  private displaceOne(): boolean {
    for (const map of [this.waiting, this.idle]) {
      const oldest = map.entries().next();
      if (oldest.done) continue;
      const [key, tracked] = oldest.value;
      map.delete(key);
      clearTimeout(tracked.timer);
      this.logs.displaced.note({ max: this.maxConnections });
      // Destroying releases the descriptor at once; its 'close' handler uncounts it shortly.
      tracked.socket.destroy();
      return true;
    }
    return false;
  }

  private requested(socket: Socket | undefined, res: ServerResponse): void {
    const key = socket && keyOfSocket(socket);
    if (key === undefined) return;
    const tracked = this.waiting.get(key) ?? this.idle.get(key) ?? this.busy.get(key);
    if (!tracked) return;
    clearTimeout(tracked.timer);
    tracked.timer = undefined;
    this.waiting.delete(key);
    this.idle.delete(key);
    this.busy.set(key, tracked);
    tracked.inFlight++;
    res.once('close', () => {
      tracked.inFlight--;
      if (tracked.inFlight > 0 || this.busy.get(key) !== tracked || tracked.socket.destroyed) return;
      this.busy.delete(key);
      this.idle.set(key, tracked);
    });
  }

  /** A WebSocket now owns the connection, with its own heartbeats: it is never displaced. */
  private upgraded(socket: Socket | undefined): void {
    const key = socket && keyOfSocket(socket);
    if (key === undefined) return;
    const tracked = this.waiting.get(key) ?? this.idle.get(key);
    if (tracked) clearTimeout(tracked.timer);
    this.waiting.delete(key);
    this.idle.delete(key);
  }
}

function keyOfSocket(socket: Socket): string | undefined {
  return socket.remoteAddress === undefined || socket.remotePort === undefined
    ? undefined
    : keyOf(socket.remoteAddress, socket.remotePort);
}

function keyOf(address: string, port: number): string {
  return `${address}|${port}`;
}

/**
 * Without an 'error' listener, a failed accept (EMFILE when the process is out of descriptors)
 * is an uncaught exception that ends the daemon. Node keeps listening after it, so logging is
 * all there is to do. Errors before listening belong to whoever is calling `listen`.
 */
export function logAcceptErrors(server: Server, log: ThrottledLog, open?: () => number): void {
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (!server.listening) return;
    log.note({ code: err.code, err: err.message, ...(open ? { open: open() } : {}) });
  });
}
