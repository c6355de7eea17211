import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import { publishJson } from './busFrames.js';
import {
  BUS_WIRE_VERSION,
  busSubjects,
  type LinkEvent,
  type LinkEventKind,
  LinkEventSchema,
} from './busWire.js';

/**
 * Revocations, re-pairs and disabled hosts, told to every master (core NATS, no persistence):
 * the master that decided acts on its own links and announces; the others cut the links they
 * hold and read the store again. A master that was cut off from the bus missed the event, and
 * reads the store again when it reconnects (masterBus.ts).
 */
export class LinkEvents {
  private readonly sub: Subscription;
  private readonly subject: string;

  constructor(
    private readonly nc: NatsConnection,
    prefix: string,
    private readonly masterId: string,
    listener: (event: LinkEvent) => void,
    private readonly logger: Logger,
  ) {
    this.subject = busSubjects(prefix).linkEvents;
    this.sub = nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        const parsed = LinkEventSchema.safeParse(safeJson(msg.string()));
        if (!parsed.success) {
          this.logger.warn('bus: dropped a malformed link event');
          return;
        }
        if (parsed.data.from !== this.masterId) listener(parsed.data);
      },
    });
  }

  announce(kind: LinkEventKind, hostId: string, serial?: string): void {
    const event: LinkEvent = {
      v: BUS_WIRE_VERSION,
      kind,
      hostId,
      from: this.masterId,
      ...(serial === undefined ? {} : { serial }),
    };
    try {
      publishJson(this.nc, this.subject, event);
    } catch (err) {
      this.logger.warn(
        { host: hostId, kind, err: (err as Error).message },
        'bus: could not announce a link event',
      );
    }
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
