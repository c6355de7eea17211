import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';

type Extra = Parameters<NonNullable<Transport['onmessage']>>[1];

/**
 * Hands received messages to an SDK protocol so that a response never overtakes the
 * notifications before it. The SDK runs notification handlers a microtask later but settles a
 * response at once, dropping the request's progress handler; a `notifications/progress` that
 * arrived in the same read as the result was lost (about one call in five on a stdio upstream).
 * A response that follows a notification delivered in the same turn therefore waits for the
 * next macrotask, and everything after it keeps its place in the queue.
 */
export class OrderedDelivery {
  private readonly queue: [JSONRPCMessage, Extra][] = [];
  private notifiedThisTurn = false;
  private flushScheduled = false;

  constructor(private readonly deliver: (message: JSONRPCMessage, extra: Extra) => void) {}

  push(message: JSONRPCMessage, extra?: Extra): void {
    const isResponse = 'id' in message && !('method' in message);
    if (this.queue.length > 0 || (isResponse && this.notifiedThisTurn)) {
      this.queue.push([message, extra]);
      this.scheduleFlush();
      return;
    }
    this.deliver(message, extra);
    // After delivery, so that the flag outlives the SDK's handler microtask.
    if (!('id' in message)) this.markNotified();
  }

  private markNotified(): void {
    if (this.notifiedThisTurn) return;
    this.notifiedThisTurn = true;
    queueMicrotask(() => {
      this.notifiedThisTurn = false;
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.notifiedThisTurn = false;
      for (const [message, extra] of this.queue.splice(0)) {
        // A later message may again follow a notification from this same batch.
        if (this.queue.length > 0) this.queue.push([message, extra]);
        else this.push(message, extra);
      }
    });
  }
}

/**
 * The same transport, with its received messages passed through OrderedDelivery. Only the
 * `onmessage` property is replaced (an accessor on the instance), so sending and everything else
 * stay the transport's own, at no cost per message. `intercept` sees each message first and
 * keeps those it returns true for (the raw forward's answers, relay/rawForward.ts, which it
 * handles synchronously and so in order).
 */
export function withOrderedDelivery<T extends Transport>(
  transport: T,
  intercept?: (message: JSONRPCMessage) => boolean,
): T {
  let handler: Transport['onmessage'];
  const delivery = new OrderedDelivery((message, extra) => handler?.(message, extra));
  const ordered: NonNullable<Transport['onmessage']> = intercept
    ? (message, extra) => {
        if (!intercept(message)) delivery.push(message, extra);
      }
    : (message, extra) => delivery.push(message, extra);
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: () => (handler ? ordered : undefined),
    set: (value: Transport['onmessage']) => {
      handler = value;
    },
  });
  return transport;
}
