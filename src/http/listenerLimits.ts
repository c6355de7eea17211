/** What one listener may hold open: the defence against connections that never make a request. */
export interface ListenerLimits {
  /**
   * Connections open at once. At the cap, a new connection displaces the oldest one that never
   * made a request, else the longest idle keep-alive one, so a flood of silent connections
   * cannot lock out a real client. Connections with a request in flight (streams included) and
   * upgraded ones (slave links) are never displaced.
   */
  maxConnections: number;
  /**
   * Never more than this share of the process's open-file limit, whatever `maxConnections`
   * says: the rest is for the database, the admin socket, the other listener and upstreams.
   */
  maxShareOfFileLimit: number;
  /** Connections open at once from one remote address; 0 for no cap (loopback-only listeners). */
  maxConnectionsPerSource: number;
  /**
   * From accept to a complete first request head (TLS handshake included). Node's
   * `headersTimeout` only starts once bytes arrive, so without this a silent peer stays forever.
   */
  firstRequestTimeoutMs: number;
  /** TLS listeners only: a handshake not finished by then is aborted. */
  handshakeTimeoutMs: number;
  /**
   * TLS listeners only: handshakes run at once; further connections wait, unread, until one
   * finishes (`TlsAdmission`). Their wait counts against `firstRequestTimeoutMs`.
   */
  maxConcurrentTlsHandshakes?: number;
  /** A request head not complete by then (after the first byte) is answered 408. */
  headersTimeoutMs: number;
  /** A whole request not received by then is answered 408. */
  requestTimeoutMs: number;
}

/**
 * The cluster listener binds 0.0.0.0 without authentication: anyone on the network reaches it.
 * Each linked slave holds one connection (and one descriptor) for as long as it is up: room for
 * 5,000 slaves with a reconnect storm's worth of spare, given `ulimit -n` of at least twice this.
 */
export const DEFAULT_CLUSTER_LISTENER_LIMITS: ListenerLimits = Object.freeze({
  maxConnections: 8192,
  maxShareOfFileLimit: 0.5,
  maxConnectionsPerSource: 32,
  firstRequestTimeoutMs: 10_000,
  handshakeTimeoutMs: 5_000,
  maxConcurrentTlsHandshakes: 32,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
});

/**
 * The agent endpoint: loopback by default, where every peer has the same address. Each open
 * 2025 session's GET stream holds a connection, hence room for about as many as sessions.
 */
export const DEFAULT_AGENT_LISTENER_LIMITS: ListenerLimits = Object.freeze({
  maxConnections: 1024,
  maxShareOfFileLimit: 0.25,
  maxConnectionsPerSource: 0,
  firstRequestTimeoutMs: 10_000,
  handshakeTimeoutMs: 5_000,
  // Node's default: bodies of up to 16 MB from slow agents. Streams (GET, SSE) are not limited.
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
});
