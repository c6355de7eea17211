import type { Logger } from '../log.js';

export type PairingEventType = 'new' | 'approved' | 'denied' | 'expired';

/**
 * What admins see of a request's lifecycle. It deliberately has no request id (nor its hash):
 * events go to admin streams and logs, and the id is the slave's handle on its certificate.
 */
export interface PairingEvent {
  readonly type: PairingEventType;
  readonly hostId: string;
  readonly pairingCode: string;
  readonly keyFingerprint: string;
  /** ISO-8601 time of the transition. */
  readonly at: string;
  readonly requestId?: never;
}

export type PairingListener = (event: PairingEvent) => void;

/** Synchronous fan-out; a listener that throws is logged and cannot stop the others. */
export class PairingEvents {
  private readonly listeners = new Set<PairingListener>();

  constructor(private readonly logger: Logger) {}

  subscribe(listener: PairingListener): () => void {
    // A wrapper per subscription, so the same function subscribed twice is two subscriptions.
    const entry: PairingListener = (event) => listener(event);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  emit(event: PairingEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn({ err, event: event.type, host: event.hostId }, 'pairing event listener failed');
      }
    }
  }
}
