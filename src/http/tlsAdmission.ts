import { createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';

/**
 * Hands accepted TCP connections to a TLS server a few at a time. A burst of thousands of
 * connections (every slave redialing after a restart) otherwise starts every handshake at once:
 * each one advances a little per turn of the event loop, so all of them finish late, many after
 * the handshake timeout, and the links already up wait behind them. Admitted a bounded number at
 * a time, each handshake finishes in a few milliseconds and the rest wait in order.
 *
 * `acceptor` is the server that listens; the TLS server never listens itself. A waiting
 * connection that closes leaves the queue; the listener's `ConnectionGuard` (hooked on the
 * acceptor) bounds how many wait and for how long.
 */
export class TlsAdmission {
  readonly acceptor: Server;
  private inProgress = 0;
  private readonly waiting = new Set<Socket>();
  /** `address|port` → the release of an admitted connection still in its handshake. */
  private readonly handshaking = new Map<string, () => void>();

  constructor(
    private readonly tls: TlsServer,
    private readonly maxInProgress: number,
    /**
     * The TLS server's handshake timeout: a peer silent this long after connecting is dropped as
     * the TLS server would drop it, and no handshake holds its turn longer than this.
     */
    private readonly handshakeTimeoutMs: number,
    /** Called as a connection is handed to the TLS server (its wait is over). */
    private readonly onAdmitted: (socket: Socket) => void = () => {},
  ) {
    this.acceptor = createServer({ pauseOnConnect: true });
    tls.on('secureConnection', (socket: TLSSocket) => this.handshaking.get(keyOf(socket))?.());
    tls.on('tlsClientError', (_err: Error, socket: TLSSocket) => this.handshaking.get(keyOf(socket))?.());
  }

  /**
   * Starts admitting. Called after the `ConnectionGuard` hooked the acceptor, so that the guard
   * sees (and may refuse) each connection before it is admitted or queued.
   */
  start(): void {
    this.acceptor.on('connection', (socket: Socket) => this.accepted(socket));
  }

  /** Handshakes running, and connections waiting for one. */
  get load(): { inProgress: number; waiting: number } {
    return { inProgress: this.inProgress, waiting: this.waiting.size };
  }

  private accepted(socket: Socket): void {
    // Refused by the guard already.
    if (socket.destroyed) return;
    // Only a peer that has sent its ClientHello takes a turn: a silent connection never holds a
    // handshake slot (the guard's first-request deadline ends it). What was read is handed to the
    // TLS socket with the connection.
    const silent = setTimeout(() => socket.destroy(), this.handshakeTimeoutMs);
    silent.unref();
    socket.once('readable', () => {
      clearTimeout(silent);
      if (socket.destroyed) return;
      if (this.inProgress < this.maxInProgress) return this.admit(socket);
      this.waiting.add(socket);
    });
    socket.once('close', () => {
      clearTimeout(silent);
      this.waiting.delete(socket);
    });
  }

  private admit(socket: Socket): void {
    this.inProgress++;
    const key = keyOf(socket);
    let released = false;
    // A handshake that times out ends the TLS socket without closing the connection handed over
    // (and a peer may vanish without an error): the turn is given back by then whatever happens.
    const deadline = setTimeout(() => release(), this.handshakeTimeoutMs + 1000);
    deadline.unref();
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(deadline);
      this.handshaking.delete(key);
      this.inProgress--;
      this.next();
    };
    this.handshaking.set(key, release);
    socket.once('close', release);
    this.onAdmitted(socket);
    this.tls.emit('connection', socket);
  }

  private next(): void {
    while (this.inProgress < this.maxInProgress) {
      const first = this.waiting.values().next();
      if (first.done) return;
      this.waiting.delete(first.value);
      if (!first.value.destroyed) this.admit(first.value);
    }
  }

  /** Drops the connections still waiting (at shutdown). */
  destroyWaiting(): void {
    for (const socket of this.waiting) socket.destroy();
    this.waiting.clear();
  }
}

function keyOf(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
