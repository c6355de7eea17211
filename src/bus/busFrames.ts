import { headers, type Msg, type NatsConnection, nuid } from '@nats-io/transport-node';
import { BusProtocolError } from './busErrors.js';
import { MAX_ASSEMBLED_BYTES } from './busWire.js';

/**
 * JSON messages of any size over NATS, whose server refuses payloads past `max_payload` (1 MiB
 * by default): a catalogue or a tool result may be larger. A small message (almost all of them)
 * goes as it is, with no header; a large one goes in parts under headers `Diane-Msg` (its id) and
 * `Diane-Part` (`i/n`). NATS keeps one publisher's messages in order, so parts arrive in order.
 */
const PART = 'Diane-Part';
const MSG = 'Diane-Msg';
/** Room left for headers and protocol overhead under the server's limit. */
const HEADROOM = 4096;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** Partial messages kept at once, and how long one may take: a sender that died mid-way is forgotten. */
const MAX_PARTIAL = 64;
const PARTIAL_TTL_MS = 60_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function publishJson(nc: NatsConnection, subject: string, value: unknown, reply?: string): void {
  const bytes = encoder.encode(JSON.stringify(value));
  const limit = (nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - HEADROOM;
  if (bytes.length <= limit) {
    nc.publish(subject, bytes, reply === undefined ? undefined : { reply });
    return;
  }
  if (bytes.length > MAX_ASSEMBLED_BYTES) {
    throw new BusProtocolError(`a message of ${bytes.length} bytes is larger than the bus carries`);
  }
  const id = nuid.next();
  const parts = Math.ceil(bytes.length / limit);
  for (let i = 0; i < parts; i++) {
    const h = headers();
    h.set(MSG, id);
    h.set(PART, `${i + 1}/${parts}`);
    nc.publish(subject, bytes.subarray(i * limit, (i + 1) * limit), {
      headers: h,
      ...(reply === undefined ? {} : { reply }),
    });
  }
}

interface Partial {
  chunks: Uint8Array[];
  bytes: number;
  expected: number;
  startedAt: number;
}

/** Puts parts back together; one per subscription. */
export class FrameAssembler {
  private readonly partial = new Map<string, Partial>();

  /**
   * The JSON value a message completes, or `undefined` while parts are missing. Throws
   * BusProtocolError for what is not JSON or breaks the framing.
   */
  accept(msg: Msg): unknown {
    const part = msg.headers?.get(PART);
    if (!part) return parse(msg.data);
    const id = msg.headers?.get(MSG) ?? '';
    const match = /^(\d{1,6})\/(\d{1,6})$/.exec(part);
    if (!match || !id) throw new BusProtocolError('a message part without a valid Diane-Part or Diane-Msg');
    const index = Number(match[1]);
    const count = Number(match[2]);
    // Parts of different senders may interleave on one subject (calls to one master).
    const key = `${msg.reply ?? ''}\0${id}`;
    this.prune();
    let entry = this.partial.get(key);
    if (index === 1) {
      entry = { chunks: [], bytes: 0, expected: count, startedAt: Date.now() };
      this.partial.set(key, entry);
    }
    if (!entry || entry.expected !== count || entry.chunks.length !== index - 1) {
      this.partial.delete(key);
      throw new BusProtocolError('message parts out of order or missing');
    }
    entry.chunks.push(msg.data);
    entry.bytes += msg.data.length;
    if (entry.bytes > MAX_ASSEMBLED_BYTES) {
      this.partial.delete(key);
      throw new BusProtocolError('a message in parts grew larger than the bus carries');
    }
    if (index < count) return undefined;
    this.partial.delete(key);
    const whole = new Uint8Array(entry.bytes);
    let at = 0;
    for (const c of entry.chunks) {
      whole.set(c, at);
      at += c.length;
    }
    return parse(whole);
  }

  private prune(): void {
    const now = Date.now();
    for (const [key, entry] of this.partial) {
      if (now - entry.startedAt > PARTIAL_TTL_MS || this.partial.size > MAX_PARTIAL) this.partial.delete(key);
    }
  }
}

function parse(data: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(data));
  } catch {
    throw new BusProtocolError('a bus message that is not JSON');
  }
}

/** NATS answers a request to a subject nobody listens on with a 503 status message. */
export function isNoResponders(msg: Msg): boolean {
  return msg.headers?.code === 503;
}
