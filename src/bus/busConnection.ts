import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';

/** The longest a shutdown waits for the connection to drain. */
const DRAIN_TIMEOUT_MS = 2_000;

export interface BusConnectionOptions {
  servers: string[];
  /** Shown by the NATS server for this client (`nats server report connections`). */
  name: string;
  /** Pause between two attempts while NATS cannot be reached at start. */
  retryMs: number;
  logger: Logger;
}

/**
 * One NATS connection of a master, kept forever: a NATS restart must not end a master, so the
 * first connection is retried until it succeeds (loudly), and once connected the client
 * reconnects by itself without a limit. Status changes go to the log (stderr).
 */
export class BusConnection {
  private nc?: NatsConnection;
  private closing = false;
  private up = false;
  private readonly reconnectListeners = new Set<() => void>();
  private readonly opened: Promise<NatsConnection>;
  private wake?: () => void;

  constructor(private readonly opts: BusConnectionOptions) {
    this.opened = this.connectUntilUp();
    // Nobody may be waiting yet; a failure is already logged.
    this.opened.catch(() => {});
  }

  /** Resolves once connected the first time; rejects only if closed before that. */
  ready(): Promise<NatsConnection> {
    return this.opened;
  }

  get connection(): NatsConnection | undefined {
    return this.nc;
  }

  /** Connected now (not between a disconnect and the reconnect). */
  get isUp(): boolean {
    return this.up && this.nc !== undefined && !this.nc.isClosed();
  }

  /** Called after every reconnect: state kept only in NATS's memory may need to be told again. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  private async connectUntilUp(): Promise<NatsConnection> {
    let attempt = 0;
    for (;;) {
      if (this.closing) throw new Error('the bus connection was closed before it came up');
      try {
        const nc = await connect({
          servers: this.opts.servers,
          name: this.opts.name,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1_000,
          pingInterval: 10_000,
        });
        this.nc = nc;
        this.up = true;
        this.opts.logger.info({ bus: nc.getServer() }, 'connected to the bus');
        void this.watchStatus(nc);
        return nc;
      } catch (err) {
        attempt++;
        // Loud at first and then every ten attempts: an operator should see it, not drown in it.
        if (attempt === 1 || attempt % 10 === 0) {
          this.opts.logger.error(
            { bus: this.opts.servers, attempt, err: (err as Error).message },
            'cannot reach the bus (NATS); hosts linked to other masters are not served until it is up, retrying',
          );
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, this.opts.retryMs).unref();
        });
      }
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.up = false;
          this.opts.logger.warn({ bus: s.server }, 'lost the bus connection; reconnecting');
          break;
        case 'reconnect':
          this.up = true;
          this.opts.logger.info({ bus: s.server }, 'reconnected to the bus');
          for (const l of this.reconnectListeners) l();
          break;
        case 'error':
          this.opts.logger.warn({ err: s.error.message }, 'bus error');
          break;
        case 'slowConsumer':
          this.opts.logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'bus: slow consumer');
          break;
        default:
          break;
      }
    }
  }

  /** Drains: subscriptions deliver what they already received, then the connection closes. */
  async close(): Promise<void> {
    this.closing = true;
    this.wake?.();
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    // A drain needs the server: while NATS is away it would wait for the reconnect.
    const drained = nc.drain().then(
      () => true,
      () => false,
    );
    const timeout = new Promise<boolean>((resolve) =>
      setTimeout(() => resolve(false), DRAIN_TIMEOUT_MS).unref(),
    );
    if (!(await Promise.race([drained, timeout]))) await nc.close().catch(() => {});
  }
}
