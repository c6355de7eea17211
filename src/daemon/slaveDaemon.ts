import { AuditLog, type AuditSettings, DEFAULT_AUDIT_SETTINGS } from '../audit/index.js';
import { DialPlan } from '../cluster/dialPlan.js';
import { mastersToDial } from '../cluster/masterList.js';
import {
  SlaveAgent,
  type SlaveOutcome,
  type SlaveStatus,
  type SlaveStatusFile,
} from '../cluster/slaveAgent.js';
import { loadSlaveCredentials, saveSlaveCredentials } from '../cluster/slaveCredentials.js';
import { DEFAULT_RENEWAL_SCHEDULE } from '../cluster/slaveRenewal.js';
import { writeFileAtomic } from '../config/files.js';
import { ensureHome, homePaths } from '../config/paths.js';
import type { Logger } from '../log.js';
import { Router, type RouterSettings } from '../mcp/router.js';
import { DEFAULT_SUPERVISOR_SETTINGS } from '../mcp/supervisedUpstream.js';
import { UpstreamManager } from '../mcp/upstreamManager.js';
import { MetricsServer } from '../metrics/metricsServer.js';
import { SlaveMetrics } from '../metrics/slaveMetrics.js';
import { type AuditStore, openSlaveAuditStore } from '../store/index.js';
import { VERSION } from '../version.js';
import { feedAudit } from './auditFeed.js';
import type { ListenAddress } from './listenAddress.js';
import { claimPidFile } from './pidFile.js';
import { startTracing } from './tracingSetup.js';

export interface SlaveDaemonOptions {
  home: string;
  logger: Logger;
  router: RouterSettings;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxPayloadBytes: number;
  /** False: the certificate is never renewed (the slave exits at its expiry). */
  renewal: boolean;
  /** The slave's own audit trail (`slave-audit.db`); default DEFAULT_AUDIT_SETTINGS. */
  audit?: AuditSettings;
  /** `--metrics-listen`: Prometheus metrics at /metrics; off when undefined. */
  metricsListen?: ListenAddress;
  /** `--master`: the masters to dial (https origins) instead of those of the credentials. */
  masters?: string[];
}

/**
 * The composition root of `diane slave start`: this machine's own MCP servers (the same
 * router as the master) and the link that offers them to the master.
 */
export async function runSlaveDaemon(opts: SlaveDaemonOptions): Promise<SlaveOutcome> {
  const { logger } = opts;
  const paths = homePaths(opts.home);
  ensureHome(paths.home);
  const creds = loadSlaveCredentials(paths.slaveCredentials);
  const releasePid = claimPidFile(paths.slavePid, 'a Diane slave for this DIANE_HOME');
  let auditStore: AuditStore;
  try {
    auditStore = openSlaveAuditStore(paths.slaveAudit);
  } catch (err) {
    releasePid();
    throw err;
  }
  // What the master has this machine run, recorded here so that the owner can check it without
  // the master (`diane slave audit`). The agent names in it are the master's word.
  const audit = new AuditLog(auditStore, opts.audit ?? DEFAULT_AUDIT_SETTINGS, logger);
  audit.start();
  const router = new Router(opts.router, logger);
  feedAudit(router, audit);
  const tracing = startTracing('diane-slave', logger);
  const manager = new UpstreamManager(
    paths.mcpServers,
    router,
    { ...DEFAULT_SUPERVISOR_SETTINGS, clientVersion: VERSION },
    logger,
  );
  // The status file also says what this host exposes to the master (`diane slave status`):
  // rewritten with the link's state, and whenever a catalog or an exposure changes.
  let lastStatus: SlaveStatus | undefined;
  const metrics = opts.metricsListen
    ? new SlaveMetrics({
        router,
        status: () => lastStatus,
        audit: () => audit.stats(),
        disabledServers: () => manager.disabled(),
      })
    : undefined;
  const writeStatus = (status?: SlaveStatus) => {
    if (status) {
      lastStatus = status;
      metrics?.linkStatus(status);
    }
    if (!lastStatus) return;
    const file: SlaveStatusFile = {
      pid: process.pid,
      ...lastStatus,
      exposure: router.exposureSummary(),
      updated_at: new Date().toISOString(),
    };
    try {
      writeFileAtomic(paths.slaveStatus, `${JSON.stringify(file)}\n`, 0o600);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'could not write the slave status file');
    }
  };
  const stopWatchingCatalog = router.onCatalogChanged(() => writeStatus());
  const dialPlan = new DialPlan(mastersToDial(creds, opts.masters));
  const agent = new SlaveAgent({
    dialPlan,
    creds,
    router,
    info: { name: `diane-slave-${creds.host_id}`, version: VERSION },
    logger,
    heartbeatIntervalMs: opts.heartbeatIntervalMs,
    heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
    maxPayloadBytes: opts.maxPayloadBytes,
    backoffBaseMs: 1000,
    backoffCapMs: 60_000,
    stableAfterMs: 60_000,
    onStatus: writeStatus,
    renewal: opts.renewal ? DEFAULT_RENEWAL_SCHEDULE : undefined,
    saveCredentials: (renewed) => saveSlaveCredentials(paths.slaveCredentials, renewed),
    onHeartbeatMissed: () => metrics?.heartbeatMissed(),
    onRenewal: (outcome) => metrics?.renewal(outcome),
  });
  const metricsServer =
    metrics && opts.metricsListen
      ? new MetricsServer({ registry: metrics.registry, ...opts.metricsListen, logger })
      : undefined;
  const stop = () => agent.stop();
  const reload = () => {
    logger.info('SIGHUP: reloading mcp-servers.json');
    manager.reload().catch((err) => logger.error({ err: (err as Error).message }, 'reload failed'));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', reload);
  try {
    await metricsServer?.listen();
    await manager.reload();
    logger.info({ host: creds.host_id, masters: dialPlan.masters.map((m) => m.master) }, 'slave starting');
    return await agent.run();
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.off('SIGHUP', reload);
    stopWatchingCatalog();
    await metricsServer?.close();
    metrics?.close();
    await manager.stopAll();
    router.close();
    await audit.close();
    await auditStore.close();
    await tracing?.shutdown();
    releasePid();
  }
}
