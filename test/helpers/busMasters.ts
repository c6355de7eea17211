import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { BusConnection } from '../../src/bus/busConnection.js';
import { type BusSettings, DEFAULT_BUS_SETTINGS } from '../../src/bus/busSettings.js';
import { presenceBucket } from '../../src/bus/busWire.js';
import { MasterBus } from '../../src/bus/masterBus.js';
import type { LinkListener, RemoteHost } from '../../src/cluster/slaveRegistry.js';
import type { SlaveUpstream } from '../../src/cluster/slaveUpstream.js';
import { createLogger } from '../../src/log.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import { SharedSubscriptions } from '../../src/mcp/sharedSubscriptions.js';
import type { CallOptions, ForwardedMethod, JsonObject } from '../../src/mcp/upstream.js';
import { FakeUpstream } from './fakeUpstream.js';

const logger = createLogger(process.env.DIANE_TEST_LOG ?? 'fatal');

/** A slave link held by a test master: a fake upstream with the link details the bus reads. */
export class FakeLinkedSlave extends FakeUpstream {
  connected = true;
  readonly since = new Date();
  detachedWith?: number;
  rootsChanges = 0;
  /** As on a SlaveUpstream: the router's and other masters' subscriptions, one per URI on the link. */
  readonly subscriptions = new SharedSubscriptions((method, uri) =>
    super.request(
      method,
      { uri },
      { signal: new AbortController().signal, timeoutMs: 5_000, maxTotalMs: 5_000 },
    ),
  );

  constructor(name: string) {
    super(name, name);
    this.subscriptions.linkUp();
  }

  override request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    if (method === 'resources/subscribe' || method === 'resources/unsubscribe')
      return this.subscriptions.own(method, params);
    return super.request(method, params, opts);
  }

  notifyRootsChanged(): void {
    this.rootsChanges++;
  }

  /** What the slave was sent about subscriptions, in order (`+uri`, `-uri`). */
  subscriptionLog(): string[] {
    return this.sent
      .filter((r) => r.method === 'resources/subscribe' || r.method === 'resources/unsubscribe')
      .map((r) => `${r.method === 'resources/subscribe' ? '+' : '-'}${String(r.params.uri)}`);
  }

  linkInfo() {
    return this.connected
      ? {
          connectedAt: this.since,
          certSerial: 'serial-1',
          remoteAddress: '127.0.0.1',
          certExpiresAt: new Date(),
        }
      : undefined;
  }

  async detach(code: number): Promise<void> {
    this.detachedWith = code;
    this.connected = false;
    this.subscriptions.linkDown();
    this.setState('offline');
  }
}

/**
 * The slave registry as the bus sees it, over a real Router: links are added by hand; a host
 * whose remote went away stays routed offline, like a paired host of the real registry.
 */
export class FakeRegistry {
  readonly slaves = new Map<string, FakeLinkedSlave>();
  readonly remotes = new Map<string, RemoteHost>();
  readonly removed: { hostId: string; code: number }[] = [];
  syncs = 0;
  private readonly listeners = new Set<LinkListener>();

  constructor(readonly router: Router) {}

  get(hostId: string): SlaveUpstream | undefined {
    return this.slaves.get(hostId) as unknown as SlaveUpstream | undefined;
  }
  linked(): SlaveUpstream[] {
    return [...this.slaves.values()].filter((s) => s.connected) as unknown as SlaveUpstream[];
  }
  setRemote(hostId: string, remote: RemoteHost | undefined): void {
    if (!remote) {
      this.remotes.delete(hostId);
      return;
    }
    this.remotes.set(hostId, remote);
    const current = this.router.get(hostId);
    if (current === remote || this.slaves.get(hostId)?.connected) return;
    if (current) this.router.remove(hostId);
    this.router.add(remote);
  }
  onLinkChange(listener: LinkListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  syncFromStore(): void {
    this.syncs++;
  }
  async removeHost(hostId: string, code: number): Promise<void> {
    this.removed.push({ hostId, code });
    await this.slaves.get(hostId)?.detach(code);
  }

  link(slave: FakeLinkedSlave): void {
    this.slaves.set(slave.name, slave);
    // A live local link is routed rather than the remote one, as in the real registry.
    if (this.router.get(slave.name)) this.router.remove(slave.name);
    this.router.add(slave);
    slave.subscribe((event) => {
      if (event.type !== 'state' && event.type !== 'catalog') return;
      for (const l of this.listeners) l(slave.name, slave as unknown as SlaveUpstream, event.type);
    });
    for (const l of this.listeners) l(slave.name, slave as unknown as SlaveUpstream, 'state');
  }
}

export interface TestMaster {
  id: string;
  router: Router;
  registry: FakeRegistry;
  bus: MasterBus;
  /** Kills the master's NATS connection without any goodbye (a crash, as the bus sees it). */
  crash(): Promise<void>;
}

/** Short timers, so that expiry and keepalive tests take about a second. */
export const FAST_BUS: Omit<BusSettings, 'servers' | 'prefix'> = {
  ...DEFAULT_BUS_SETTINGS,
  presenceTtlMs: 1_500,
  presenceHeartbeatMs: 400,
  keepaliveMs: 200,
  keepaliveTimeoutMs: 1_000,
  catalogTimeoutMs: 2_000,
};

export async function startTestMaster(
  id: string,
  url: string,
  prefix: string,
  settings: Partial<BusSettings> = {},
): Promise<TestMaster> {
  const router = new Router(DEFAULT_ROUTER_SETTINGS, logger);
  const registry = new FakeRegistry(router);
  const bus = new MasterBus({
    masterId: id,
    settings: { ...FAST_BUS, servers: [url], prefix, ...settings },
    router,
    registry,
    logger,
  });
  await bus.ready();
  return {
    id,
    router,
    registry,
    bus,
    crash: async () => {
      const connection = (bus as unknown as { connection: BusConnection }).connection.connection;
      await connection?.close();
    },
  };
}

/** Removes a test's presence bucket from the shared NATS server. */
export async function dropTestBucket(url: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: [url] });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${presenceBucket(prefix)}`).catch(() => {});
  } finally {
    await nc.close();
  }
}
