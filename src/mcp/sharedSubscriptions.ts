import type { JsonObject } from './upstream.js';

export type SubscriptionMethod = 'resources/subscribe' | 'resources/unsubscribe';

/** The subscriber that is this master's own router (master ids are never empty). */
export const THIS_MASTER = '';

/** Sends one subscribe or unsubscribe on the upstream's current connection. */
export type SubscriptionSender = (method: SubscriptionMethod, uri: string) => Promise<JsonObject>;

interface Entry {
  readonly subscribers: Set<string>;
  /** Whether the current connection has the subscription (as far as its last answer said). */
  onLink: boolean;
  /** Subscribe and unsubscribe of one URI go out one at a time, in the order they were decided. */
  tail: Promise<unknown>;
  pending: number;
}

/**
 * The subscriptions of one upstream shared by several subscribers: this master's router and
 * other masters whose agents reach the upstream over the bus. The upstream gets one
 * `resources/subscribe` per URI while anyone wants it and one `resources/unsubscribe` when the
 * last subscriber lets go, so no subscriber can end another's subscription.
 *
 * It describes the current connection only: when the connection drops everything is forgotten,
 * and every subscriber subscribes again when it sees the upstream come back (the router on its
 * `state` event, another master when the host's presence entry changes). That way a
 * subscription let go of while the upstream was away (the router does not forward those) can
 * never be renewed by mistake.
 */
export class SharedSubscriptions {
  private readonly entries = new Map<string, Entry>();
  private up = false;
  /** Bumped by every connection change: an answer from an older connection changes nothing. */
  private generation = 0;

  constructor(
    private readonly send: SubscriptionSender,
    private readonly onError: (uri: string, err: Error) => void = () => {},
  ) {}

  /** The router's own `resources/subscribe` or `resources/unsubscribe`, through the ledger. */
  own(method: SubscriptionMethod, params: JsonObject): Promise<JsonObject> {
    const uri = String(params.uri);
    return method === 'resources/subscribe'
      ? this.subscribe(THIS_MASTER, uri)
      : this.unsubscribe(THIS_MASTER, uri);
  }

  /**
   * `subscriber` wants updates of `uri`. The upstream is asked only if nobody had it yet; its
   * refusal fails this subscriber, who is then not counted.
   */
  async subscribe(subscriber: string, uri: string): Promise<JsonObject> {
    // Nothing to keep while there is no connection: every subscriber renews on the next one.
    if (!this.up) return {};
    let entry = this.entries.get(uri);
    if (!entry) {
      entry = { subscribers: new Set(), onLink: false, tail: Promise.resolve(), pending: 0 };
      this.entries.set(uri, entry);
    }
    const had = entry.subscribers.has(subscriber);
    entry.subscribers.add(subscriber);
    try {
      return await this.sync(uri, entry);
    } catch (err) {
      if (!had && !entry.onLink) {
        entry.subscribers.delete(subscriber);
        this.forget(uri, entry);
      }
      throw err;
    }
  }

  /** `subscriber` lets go of `uri`; the upstream is told only when nobody else wants it. */
  async unsubscribe(subscriber: string, uri: string): Promise<JsonObject> {
    const entry = this.entries.get(uri);
    if (!entry?.subscribers.delete(subscriber)) return {};
    if (!this.up) {
      this.forget(uri, entry);
      return {};
    }
    return this.sync(uri, entry);
  }

  /** Makes `subscriber`'s subscriptions exactly `uris` (another master's lease). */
  replace(subscriber: string, uris: Iterable<string>): void {
    const wanted = new Set(uris);
    for (const [uri, entry] of [...this.entries]) {
      if (entry.subscribers.has(subscriber) && !wanted.has(uri)) {
        this.unsubscribe(subscriber, uri).catch((err: Error) => this.onError(uri, err));
      }
    }
    for (const uri of wanted) {
      if (this.entries.get(uri)?.subscribers.has(subscriber)) continue;
      this.subscribe(subscriber, uri).catch((err: Error) => this.onError(uri, err));
    }
  }

  /** Everything `subscriber` had ends (a master that left the bus). */
  drop(subscriber: string): void {
    this.replace(subscriber, []);
  }

  /** The URIs `subscriber` holds. */
  urisOf(subscriber: string): string[] {
    return [...this.entries].filter(([, e]) => e.subscribers.has(subscriber)).map(([uri]) => uri);
  }

  /** Who holds a subscription to `uri`. */
  subscribersOf(uri: string): string[] {
    return [...(this.entries.get(uri)?.subscribers ?? [])];
  }

  /**
   * A new connection. Right after a drop nobody is subscribed (the subscribers come back by
   * themselves); a connection that replaced a live one without a drop (a certificate renewal's
   * handover, which the router does not see as a reconnect) gets every subscription again.
   */
  linkUp(): void {
    this.generation++;
    this.up = true;
    for (const [uri, entry] of [...this.entries]) {
      entry.onLink = false;
      if (entry.subscribers.size > 0) this.sync(uri, entry).catch((err: Error) => this.onError(uri, err));
    }
  }

  /** The connection ended, and every subscription with it. */
  linkDown(): void {
    this.generation++;
    this.up = false;
    for (const [uri, entry] of [...this.entries]) {
      entry.onLink = false;
      entry.subscribers.clear();
      this.forget(uri, entry);
    }
  }

  /** Brings the upstream's side of one URI to what its subscribers want, after what is queued. */
  private sync(uri: string, entry: Entry): Promise<JsonObject> {
    entry.pending++;
    const run = entry.tail.then(async () => {
      const wanted = entry.subscribers.size > 0;
      if (!this.up || wanted === entry.onLink) return {};
      const generation = this.generation;
      const result = await this.send(wanted ? 'resources/subscribe' : 'resources/unsubscribe', uri);
      if (generation === this.generation) entry.onLink = wanted;
      return result;
    });
    entry.tail = run
      .catch(() => undefined)
      .finally(() => {
        entry.pending--;
        this.forget(uri, entry);
      });
    return run;
  }

  private forget(uri: string, entry: Entry): void {
    if (
      entry.pending === 0 &&
      entry.subscribers.size === 0 &&
      !entry.onLink &&
      this.entries.get(uri) === entry
    )
      this.entries.delete(uri);
  }
}
