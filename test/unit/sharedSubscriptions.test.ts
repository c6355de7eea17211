import { describe, expect, it } from 'vitest';
import {
  SharedSubscriptions,
  type SubscriptionMethod,
  THIS_MASTER,
} from '../../src/mcp/sharedSubscriptions.js';

/** An upstream connection that records what it was sent and answers when the test says so. */
function fakeLink() {
  const log: string[] = [];
  const waiting: { what: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  let hold = false;
  let refuse: ((uri: string) => Error | undefined) | undefined;
  const errors: string[] = [];
  const subs = new SharedSubscriptions(
    (method: SubscriptionMethod, uri: string) => {
      const what = `${method === 'resources/subscribe' ? '+' : '-'}${uri}`;
      log.push(what);
      const refused = refuse?.(uri);
      if (refused) return Promise.reject(refused);
      if (!hold) return Promise.resolve({});
      return new Promise((resolve, reject) => waiting.push({ what, resolve: () => resolve({}), reject }));
    },
    (uri, err) => errors.push(`${uri}: ${err.message}`),
  );
  subs.linkUp();
  return {
    subs,
    log,
    errors,
    waiting,
    hold: (on: boolean) => {
      hold = on;
    },
    refuse: (f: typeof refuse) => {
      refuse = f;
    },
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('subscriptions shared by several masters on one link', () => {
  it('subscribes once per URI and unsubscribes only when the last subscriber lets go', async () => {
    const { subs, log } = fakeLink();
    await subs.subscribe('master-a', 'file:///x');
    await subs.subscribe('master-c', 'file:///x');
    await subs.own('resources/subscribe', { uri: 'file:///x' });
    expect(log).toEqual(['+file:///x']);
    expect(subs.subscribersOf('file:///x').sort()).toEqual([THIS_MASTER, 'master-a', 'master-c']);

    await subs.unsubscribe('master-a', 'file:///x');
    await subs.own('resources/unsubscribe', { uri: 'file:///x' });
    // Another master's unsubscribe, or this master's own, does not end master c's subscription.
    expect(log).toEqual(['+file:///x']);
    await subs.unsubscribe('master-c', 'file:///x');
    expect(log).toEqual(['+file:///x', '-file:///x']);
    expect(subs.subscribersOf('file:///x')).toEqual([]);
  });

  it('counts a subscriber once however often it subscribes, and ignores a stranger unsubscribing', async () => {
    const { subs, log } = fakeLink();
    await subs.subscribe('master-a', 'u');
    await subs.subscribe('master-a', 'u');
    await subs.unsubscribe('master-b', 'u');
    expect(log).toEqual(['+u']);
    await subs.unsubscribe('master-a', 'u');
    expect(log).toEqual(['+u', '-u']);
  });

  it('keeps the order of a subscribe and an unsubscribe decided while the first is on its way', async () => {
    const link = fakeLink();
    link.hold(true);
    const first = link.subs.subscribe('master-a', 'u');
    const gone = link.subs.unsubscribe('master-a', 'u');
    const again = link.subs.subscribe('master-b', 'u');
    await settle();
    // One at a time: the unsubscribe waits for the subscribe's answer.
    expect(link.log).toEqual(['+u']);
    link.waiting.shift()!.resolve();
    await first;
    await settle();
    // Master b still wants it by the time the queue gets there: nothing more is sent.
    await Promise.all([gone, again]);
    expect(link.log).toEqual(['+u']);
    expect(link.subs.subscribersOf('u')).toEqual(['master-b']);
  });

  it('sends nothing for a subscription let go of before it was sent', async () => {
    const link = fakeLink();
    link.hold(true);
    const first = link.subs.subscribe('master-a', 'u');
    await link.subs.unsubscribe('master-a', 'u');
    await first;
    expect(link.log).toEqual([]);
  });

  it('sends an unsubscribe after a subscribe that was let go of before its answer', async () => {
    const link = fakeLink();
    link.hold(true);
    const first = link.subs.subscribe('master-a', 'u');
    await settle();
    const gone = link.subs.unsubscribe('master-a', 'u');
    await settle();
    expect(link.log).toEqual(['+u']);
    link.waiting.shift()!.resolve();
    await first;
    await settle();
    expect(link.log).toEqual(['+u', '-u']);
    link.waiting.shift()!.resolve();
    await gone;
    expect(link.subs.urisOf('master-a')).toEqual([]);
  });

  it('fails a subscriber the upstream refuses, and does not count it', async () => {
    const link = fakeLink();
    link.refuse((uri) => (uri === 'nope' ? new Error('no such resource') : undefined));
    await expect(link.subs.subscribe('master-a', 'nope')).rejects.toThrow('no such resource');
    expect(link.subs.subscribersOf('nope')).toEqual([]);
    // Nothing to unsubscribe from afterwards.
    await link.subs.unsubscribe('master-a', 'nope');
    expect(link.log).toEqual(['+nope']);
  });

  it("replaces one master's subscriptions by its lease, touching nobody else's", async () => {
    const { subs, log } = fakeLink();
    await subs.subscribe(THIS_MASTER, 'shared');
    await subs.subscribe('master-a', 'shared');
    await subs.subscribe('master-a', 'old');
    subs.replace('master-a', ['shared', 'new']);
    await settle();
    // One queue per URI: the two URIs' messages may go in either order.
    expect(log.slice(0, 2)).toEqual(['+shared', '+old']);
    expect(log.slice(2).sort()).toEqual(['+new', '-old']);
    expect(subs.urisOf('master-a').sort()).toEqual(['new', 'shared']);
    subs.drop('master-a');
    await settle();
    // This master's own subscription to `shared` stays.
    expect(log.at(-1)).toBe('-new');
    expect(log).toHaveLength(5);
    expect(subs.subscribersOf('shared')).toEqual([THIS_MASTER]);
  });

  it('forgets everything when the link drops, and renews everything on a handover without a drop', async () => {
    const link = fakeLink();
    await link.subs.subscribe('master-a', 'a');
    await link.subs.subscribe(THIS_MASTER, 'b');
    // A renewal's handover: a new connection while the old one was live.
    link.subs.linkUp();
    await settle();
    expect(link.log).toEqual(['+a', '+b', '+a', '+b']);
    // A renewal by the router right after is not sent twice.
    await link.subs.own('resources/subscribe', { uri: 'b' });
    expect(link.log).toHaveLength(4);

    link.subs.linkDown();
    expect(link.subs.urisOf('master-a')).toEqual([]);
    // While down nothing is kept: the subscribers renew on the next link.
    await link.subs.subscribe('master-a', 'c');
    link.subs.linkUp();
    await settle();
    expect(link.log).toHaveLength(4);
    await link.subs.subscribe('master-a', 'a');
    expect(link.log).toEqual(['+a', '+b', '+a', '+b', '+a']);
  });

  it('does not count an answer from a connection that has since been replaced', async () => {
    const link = fakeLink();
    link.hold(true);
    const old = link.subs.subscribe('master-a', 'u');
    await settle();
    link.subs.linkDown();
    link.subs.linkUp();
    link.waiting.shift()!.resolve();
    await old;
    // The new link never got it: master a's renewal sends it again.
    link.hold(false);
    await link.subs.subscribe('master-a', 'u');
    expect(link.log).toEqual(['+u', '+u']);
  });
});
