import { hostname } from 'node:os';
import { AdminServer } from '../admin/adminServer.js';
import { registerAgentRoutes } from '../admin/agentRoutes.js';
import { registerAuditRoutes } from '../admin/auditRoutes.js';
import { registerCaRoutes } from '../admin/caRoutes.js';
import { registerCoreRoutes } from '../admin/coreRoutes.js';
import { registerPairingRoutes } from '../admin/pairingRoutes.js';
import { registerSlaveRoutes } from '../admin/slaveRoutes.js';
import type { InfoResponse } from '../admin/types.js';
import { AgentService } from '../agents/agentService.js';
import {
  type AuditLiveSource,
  AuditLog,
  type AuditSettings,
  AuditTail,
  DEFAULT_AUDIT_TAIL_SETTINGS,
} from '../audit/index.js';
import { DEFAULT_BUS_SETTINGS } from '../bus/busSettings.js';
import { MasterBus } from '../bus/masterBus.js';
import { loadOrCreateMasterId } from '../bus/masterId.js';
import { CaRolloverService } from '../cluster/caRollover.js';
import { ClusterListener } from '../cluster/clusterListener.js';
import { DEFAULT_HUB_LIMITS, SlaveHub } from '../cluster/hub.js';
import { RevocationService } from '../cluster/revocation.js';
import { SlaveRegistry } from '../cluster/slaveRegistry.js';
import { ensureHome, type HomePaths, homePaths } from '../config/paths.js';
import { DEFAULT_CLUSTER_LISTENER_LIMITS } from '../http/listenerLimits.js';
import type { Logger } from '../log.js';
import { DiscoveryCatalog } from '../mcp/discovery/discoveryCatalog.js';
import { HttpFront, type SessionLimits } from '../mcp/httpFront.js';
import { Router, type RouterSettings } from '../mcp/router.js';
import { DEFAULT_SUPERVISOR_SETTINGS } from '../mcp/supervisedUpstream.js';
import { UpstreamManager } from '../mcp/upstreamManager.js';
import { MasterMetrics } from '../metrics/masterMetrics.js';
import { MetricsServer } from '../metrics/metricsServer.js';
import {
  loadOrCreateJoinToken,
  PairingService,
  type PairingSettings,
  rotateJoinTokenFile,
} from '../pairing/index.js';
import {
  type CaExpirySettings,
  type CaSetFiles,
  type CertificateAuthority,
  caExpiryWarning,
  ensureServerCertificate,
  isCaShared,
  loadCaSet,
  SlaveCas,
} from '../pki/index.js';
import { type MasterStore, openMasterStore, parseStoreTarget } from '../store/index.js';
import { VERSION } from '../version.js';
import { type AgentAuth, checkAgentAuth, loadOrCreateAgentToken } from './agentToken.js';
import { feedAudit } from './auditFeed.js';
import { formatHostPort, type ListenAddress } from './listenAddress.js';
import { ObservedRenewalService } from './observedRenewal.js';
import { startTracing } from './tracingSetup.js';

export interface DaemonOptions {
  home: string;
  mcpListen: ListenAddress;
  /** `token` unless the operator chose `none` (loopback only). */
  agentAuth: AgentAuth;
  /** Browser origins allowed on /mcp besides loopback ones. */
  allowedOrigins: string[];
  agentSessions: SessionLimits;
  clusterListen: ListenAddress;
  /** Extra names or IPs slaves use to reach this master (server certificate SANs). */
  publicHosts: string[];
  pairing: PairingSettings;
  caExpiry: CaExpirySettings;
  link: LinkSettings;
  router: RouterSettings;
  /** Batching, queue bound and retention of the audit trail (`--audit-retention`, `--audit-max-rows`). */
  audit: AuditSettings;
  /** `--metrics-listen`: Prometheus metrics at /metrics; off when undefined. */
  metricsListen?: ListenAddress;
  /** `--bus`: the NATS servers that connect several masters; one master alone when undefined. */
  bus?: BusOptions;
  /**
   * `--store` (env DIANE_STORE): `sqlite:<path>` or a `postgres://` URL; the SQLite file in the
   * home when undefined or empty.
   */
  store?: string;
  logger: Logger;
}

export interface BusOptions {
  servers: string[];
  /** `--bus-prefix`: masters of one cluster share it; another prefix is another cluster. */
  prefix: string;
  /** `--master-id`; otherwise chosen once and kept in `$DIANE_HOME/master-id`. */
  masterId?: string;
}

export interface LinkSettings {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxPayloadBytes: number;
  maxInFlightPerSlave: number;
  maxQueuedPerSlave: number;
  /** Connections the cluster listener holds at once (`--max-cluster-connections`): one per linked slave. */
  maxClusterConnections: number;
}

export interface RunningDaemon {
  info(): InfoResponse;
  reload(): Promise<unknown>;
  stop(): Promise<void>;
}

/**
 * The composition root of `diane serve`: builds the services and starts the listeners.
 * Order matters: the admin socket goes first, because it is how a second daemon on the same
 * home is detected before it touches anything else.
 */
export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { logger } = opts;
  checkAgentAuth(opts.agentAuth, opts.mcpListen.host);
  const paths = homePaths(opts.home);
  const storeTarget = parseStoreTarget(opts.store, paths.db);
  ensureHome(paths.home);
  const startedAt = new Date().toISOString();
  const admin = new AdminServer(paths.socket, logger);
  await admin.listen();
  const tracing = startTracing('diane-master', logger);

  let store: MasterStore | undefined;
  let agents: AgentService | undefined;
  let audit: AuditLog | undefined;
  let auditTail: AuditTail | undefined;
  let front: HttpFront | undefined;
  let cluster: ClusterListener | undefined;
  let pairing: PairingService | undefined;
  let hub: SlaveHub | undefined;
  let registry: SlaveRegistry | undefined;
  let manager: UpstreamManager | undefined;
  let metrics: MasterMetrics | undefined;
  let metricsServer: MetricsServer | undefined;
  let bus: MasterBus | undefined;
  const router = new Router(opts.router, logger);
  try {
    store = await openMasterStore(storeTarget);
    if (store.backend === 'postgres') logger.info({ store: store.location }, 'the store is in PostgreSQL');
    // The audit trail of agents' calls (src/audit): written in batches off the callers' path,
    // trimmed by retention; the admin API reads and follows it.
    audit = new AuditLog(store, opts.audit, logger);
    audit.start();
    feedAudit(router, audit);
    // Followers see every master's rows: with a shared PostgreSQL store the others write to the
    // same table, which only a read of the table shows (auditTail.ts). SQLite has one writer,
    // this master, whose AuditLog already hands each row over as it is written.
    const writtenHere = audit;
    let auditLive: AuditLiveSource = audit;
    if (store.backend === 'postgres') {
      auditTail = new AuditTail(store.auditEvents, DEFAULT_AUDIT_TAIL_SETTINGS, logger, (read) =>
        writtenHere.subscribe(read),
      );
      auditLive = auditTail;
    }
    const tokenRequired = opts.agentAuth === 'token';
    // Created even without auth, so that `diane info` can print it the day auth is turned on.
    // It is the token of the agent `owner`; other agents' tokens are stored only as hashes.
    const token = loadOrCreateAgentToken(paths.token);
    const agentService = new AgentService({
      store,
      ownerTokenPath: paths.token,
      closeSessions: (agent) => front?.closeSessionsOf(agent),
      applyScope: (agent, scope) => router.setAgentScope(agent, scope),
      logger,
    });
    agents = agentService;
    await agentService.ensureOwner(token);
    // Picks up agents changed through another master sharing the store.
    agentService.start();
    if (!tokenRequired) {
      logger.warn(
        { mcp: formatHostPort(opts.mcpListen.host, opts.mcpListen.port) },
        '--agent-auth none: any local user or process can call every tool as this user',
      );
    }
    const caFiles = caSetFiles(paths);
    const cas = new SlaveCas(await loadCaSet(caFiles));
    const caWarning = caExpiryWarning(cas.get().current.notAfter, new Date(), opts.caExpiry);
    if (caWarning) logger.warn({ caExpiresAt: cas.get().current.notAfter.toISOString() }, caWarning);
    if (cas.get().next) logger.info('a CA rollover is under way (`diane ca status`)');
    const openedAudit = audit;
    // Off by default. Built before the services it counts the events of; it reads their state
    // only when scraped, which starts once everything listens.
    if (opts.metricsListen) {
      metrics = new MasterMetrics({
        router,
        audit: () => openedAudit.stats(),
        slaves: async () => (await registry?.health()) ?? [],
        pendingPairings: async () => (await pairing?.listPending())?.length ?? 0,
        caExpiry: () => ({ current: cas.get().current.notAfter, next: cas.get().next?.notAfter }),
        agentSessions: () => front?.sessionCount ?? 0,
        disabledServers: () => manager?.disabled() ?? [],
      });
    }
    const serverCertificate = async (ca: CertificateAuthority) => {
      const cert = await ensureServerCertificate(ca, {
        certPath: paths.serverCert,
        keyPath: paths.serverKey,
        hosts: opts.publicHosts,
      });
      if (cert.reissued) logger.info({ hosts: opts.publicHosts }, 'issued the TLS server certificate');
      return cert;
    };
    manager = new UpstreamManager(
      paths.mcpServers,
      router,
      { ...DEFAULT_SUPERVISOR_SETTINGS, clientVersion: VERSION },
      logger,
      (name) =>
        registry?.isPaired(name)
          ? `"${name}" is the host id of a paired slave; rename the server`
          : undefined,
    );
    const upstreams = manager;
    const joinToken = opts.pairing.requireJoinToken ? loadOrCreateJoinToken(paths.joinToken) : undefined;
    pairing = new PairingService({
      ...(joinToken === undefined ? {} : { joinToken }),
      store,
      ca: cas,
      settings: opts.pairing,
      logger,
      isNameTaken: (hostId) =>
        upstreams.names().includes(hostId) || upstreams.disabled().includes(hostId)
          ? `"${hostId}" is the name of an MCP server configured on the master`
          : undefined,
    });
    pairing.subscribe((event) => metrics?.pairingEvent(event.type));
    pairing.start();
    const renewal = new ObservedRenewalService(
      {
        store,
        ca: cas,
        settings: { certValidityMs: opts.pairing.certValidityMs },
        logger,
      },
      {
        issued: (hostId) => metrics?.renewalIssued(hostId),
        failed: (hostId, reason) => metrics?.renewalFailed(hostId, reason),
      },
    );
    const masterId = opts.bus ? loadOrCreateMasterId(paths.home, opts.bus.masterId) : undefined;
    const slaves = new SlaveRegistry(
      store,
      router,
      {
        maxInFlight: opts.link.maxInFlightPerSlave,
        maxQueued: opts.link.maxQueuedPerSlave,
        connectTimeoutMs: 15_000,
      },
      VERSION,
      logger,
      { renewal, trust: () => rollover.trust(), ...(masterId === undefined ? {} : { masterId }) },
    );
    registry = slaves;
    const rollover: CaRolloverService = new CaRolloverService({
      cas,
      files: caFiles,
      store,
      links: {
        announceTrustChanged: () => slaves.announceTrustChanged(),
        cutLinksOutside: (fingerprints) => slaves.cutLinksOutside(fingerprints),
        isConnected: (hostId) => slaves.get(hostId)?.connected === true,
      },
      serverCertificate,
      applyTls: (tls) => cluster?.updateTls(tls),
      isShared: () => isCaShared(paths),
      logger,
    });
    pairing.subscribe((event) => {
      if (event.type !== 'approved') return;
      slaves.syncFromStore().catch((err: unknown) => {
        logger.error({ err: (err as Error).message }, 'could not read the paired hosts after an approval');
      });
      // A re-pair supersedes the old link wherever it lives: the others re-read the store.
      bus?.announce('superseded', event.hostId);
    });
    const revocation = new RevocationService(
      store,
      {
        removeHost: (hostId, code, reason) => {
          bus?.announce('revoked', hostId);
          return slaves.removeHost(hostId, code, reason);
        },
      },
      logger,
    );
    hub = new SlaveHub({
      store,
      registry: slaves,
      logger,
      maxPayloadBytes: opts.link.maxPayloadBytes,
      heartbeatIntervalMs: opts.link.heartbeatIntervalMs,
      heartbeatTimeoutMs: opts.link.heartbeatTimeoutMs,
      limits: { ...DEFAULT_HUB_LIMITS, maxQueuedHandshakes: opts.link.maxClusterConnections },
      onLinkUp: (hostId) => metrics?.linkConnected(hostId),
      onHeartbeatMissed: (hostId) => metrics?.heartbeatMissed(hostId),
    });
    cluster = new ClusterListener({
      host: opts.clusterListen.host,
      port: opts.clusterListen.port,
      tls: await rollover.tls(),
      pairingTrust: () => rollover.pairingTrust(),
      pairing,
      logger,
      limits: { ...DEFAULT_CLUSTER_LISTENER_LIMITS, maxConnections: opts.link.maxClusterConnections },
    });
    if (cluster.guard.maxConnections < opts.link.maxClusterConnections) {
      logger.warn(
        { maxClusterConnections: opts.link.maxClusterConnections, effective: cluster.guard.maxConnections },
        'the open-file limit (ulimit -n) caps the cluster listener below --max-cluster-connections',
      );
    }
    const slaveHub = hub;
    cluster.onUpgrade((req, socket, head) => slaveHub.handleUpgrade(req, socket, head));
    const clusterBound = await cluster.listen();
    const clusterAddress = formatHostPort(clusterBound.address, clusterBound.port);
    const clusterHost = opts.publicHosts[0] ?? hostname();
    const clusterUrl = `https://${formatHostPort(clusterHost, clusterBound.port)}`;
    let mcpAddress = formatHostPort(opts.mcpListen.host, opts.mcpListen.port);
    front = new HttpFront({
      router,
      info: { name: 'diane', version: VERSION },
      host: opts.mcpListen.host,
      port: opts.mcpListen.port,
      ...(tokenRequired ? { agents: agentService } : {}),
      discovery: new DiscoveryCatalog(router),
      allowedOrigins: opts.allowedOrigins,
      logger,
      maxRequestBytes: 16 * 1024 * 1024,
      sessions: opts.agentSessions,
      health: () => ({ version: VERSION, upstreams: router.upstreams().length }),
    });
    const bound = await front.listen();
    mcpAddress = formatHostPort(bound.address, bound.port);
    if (metrics && opts.metricsListen) {
      metricsServer = new MetricsServer({ registry: metrics.registry, ...opts.metricsListen, logger });
      await metricsServer.listen();
    }
    const urlHost = bound.address === '0.0.0.0' || bound.address === '::' ? '127.0.0.1' : bound.address;

    const pairCommand = () => {
      const token = pairing?.currentJoinToken();
      return `diane slave pair --master=${clusterUrl} --host-id=<NAME> --ca-fingerprint=${cas.get().current.fingerprint}${token === undefined ? '' : ` --join-token=${token}`}`;
    };
    const info = (): InfoResponse => ({
      version: VERSION,
      pid: process.pid,
      home: paths.home,
      startedAt,
      mcp: {
        listen: mcpAddress,
        url: `http://${formatHostPort(urlHost, bound.port)}/mcp`,
        tokenRequired,
        // The owner's token, read again: `agents rotate owner` replaces it.
        token: tokenRequired ? loadOrCreateAgentToken(paths.token) : undefined,
      },
      socket: paths.socket,
      cluster: { listen: clusterAddress, url: clusterUrl },
      ca_fingerprint: cas.get().current.fingerprint,
      ca_next_fingerprint: cas.get().next?.fingerprint,
      ca_expires_at: cas.get().current.notAfter.toISOString(),
      ca_expiry_warning: caExpiryWarning(cas.get().current.notAfter, new Date(), opts.caExpiry),
      pair_command: pairCommand(),
      upstreams: router.upstreams().length,
      tools: router.toolTable().exposed.length,
      ...(opts.bus && masterId !== undefined
        ? {
            bus: {
              master: masterId,
              servers: opts.bus.servers,
              prefix: opts.bus.prefix,
              connected: bus?.connected ?? false,
            },
          }
        : {}),
    });
    registerCoreRoutes(admin, { info, router, manager, configPath: paths.mcpServers });
    registerPairingRoutes(admin, pairing, {
      writeNew: () => rotateJoinTokenFile(paths.joinToken),
      pairCommand,
    });
    registerSlaveRoutes(admin, { store, registry: slaves, revocation });
    registerAuditRoutes(admin, { audit: auditLive, events: store.auditEvents });
    registerCaRoutes(admin, rollover);
    registerAgentRoutes(admin, { agents: agentService, router });
    admin.ready();
    // Paired host ids first: a configured server may not take one (UpstreamManager's check).
    await slaves.loadPairedHosts();
    await manager.reload();
    await slaves.syncFromStore();
    if (opts.bus && masterId !== undefined) {
      // Not awaited: NATS may be down now and come up later (busConnection.ts keeps trying);
      // meanwhile this master serves its own links and configured servers.
      bus = new MasterBus({
        masterId,
        settings: {
          ...DEFAULT_BUS_SETTINGS,
          servers: opts.bus.servers,
          prefix: opts.bus.prefix,
          maxCallMs: opts.router.callTimeoutCapMs,
        },
        router,
        registry: slaves,
        logger,
      });
    }

    const running: RunningDaemon = {
      info,
      reload: () => manager!.reload(),
      stop: async () => {
        // First: other masters stop routing here (presence withdrawn) before the links go.
        await bus?.close();
        await metricsServer?.close();
        pairing?.stop();
        hub?.close();
        await registry?.closeAll();
        await cluster?.close();
        await front?.close();
        await admin.close();
        await manager?.stopAll();
        metrics?.close();
        router.close();
        agents?.stop();
        auditTail?.close();
        // After everything that records calls has stopped: close writes what is still queued.
        await audit?.close();
        await store?.close();
        await tracing?.shutdown();
      },
    };
    return running;
  } catch (err) {
    await bus?.close().catch(() => {});
    await metricsServer?.close().catch(() => {});
    metrics?.close();
    pairing?.stop();
    hub?.close();
    await registry?.closeAll().catch(() => {});
    await cluster?.close().catch(() => {});
    await front?.close().catch(() => {});
    await manager?.stopAll().catch(() => {});
    await admin.close().catch(() => {});
    agents?.stop();
    auditTail?.close();
    await audit?.close().catch(() => {});
    await store?.close().catch(() => {});
    await tracing?.shutdown();
    throw err;
  }
}

function caSetFiles(paths: HomePaths): CaSetFiles {
  return {
    certPath: paths.caCert,
    keyPath: paths.caKey,
    nextCertPath: paths.caNextCert,
    nextKeyPath: paths.caNextKey,
    crossPath: paths.caCross,
    retiredCertPath: paths.caRetiredCert,
  };
}
