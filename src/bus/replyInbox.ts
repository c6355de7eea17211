import { type Msg, type NatsConnection, nuid, type Subscription } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import { BusProtocolError } from './busErrors.js';
import { FrameAssembler, isNoResponders } from './busFrames.js';

/** What arrives on one reply subject: a whole JSON value, or NATS saying nobody listened. */
export type InboxDelivery =
  | { kind: 'message'; value: unknown }
  /** One part of a large message: the sender is alive, the message is not complete yet. */
  | { kind: 'part' }
  | { kind: 'no-responders' };

/**
 * One wildcard subscription for all of a master's reply subjects (`<base>.<token>`), so that a
 * call or a fetch costs no SUB/UNSUB round of its own: each gets a token, and what arrives on
 * its subject goes to its handler.
 */
export class ReplyInbox {
  private readonly handlers = new Map<string, (delivery: InboxDelivery) => void>();
  private readonly assembler = new FrameAssembler();
  private readonly sub: Subscription;

  constructor(
    nc: NatsConnection,
    private readonly base: string,
    private readonly logger: Logger,
  ) {
    this.sub = nc.subscribe(`${base}.*`, {
      callback: (err, msg) => {
        if (!err) this.deliver(msg);
      },
    });
  }

  /** A fresh reply subject; `close` forgets it (late messages on it are dropped). */
  open(handler: (delivery: InboxDelivery) => void): { subject: string; close: () => void } {
    const subject = `${this.base}.${nuid.next()}`;
    this.handlers.set(subject, handler);
    return { subject, close: () => this.handlers.delete(subject) };
  }

  private deliver(msg: Msg): void {
    const handler = this.handlers.get(msg.subject);
    if (!handler) return;
    if (isNoResponders(msg)) return handler({ kind: 'no-responders' });
    let value: unknown;
    try {
      value = this.assembler.accept(msg);
    } catch (err) {
      if (!(err instanceof BusProtocolError)) throw err;
      this.logger.warn({ err: err.message }, 'bus: dropped a malformed reply');
      return;
    }
    handler(value === undefined ? { kind: 'part' } : { kind: 'message', value });
  }

  close(): void {
    this.sub.unsubscribe();
    this.handlers.clear();
  }
}
