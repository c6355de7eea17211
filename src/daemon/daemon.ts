import { AdminServer } from '../admin/adminServer.js';
import { registerCoreRoutes } from '../admin/coreRoutes.js';
import type { InfoResponse } from '../admin/types.js';
import { ensureHome, homePaths } from '../config/paths.js';
import type { Logger } from '../log.js';
import { Aggregator, type AggregatorSettings } from '../mcp/aggregator.js';
import { HttpFront, isLoopbackHost } from '../mcp/httpFront.js';
import { DEFAULT_SUPERVISOR_SETTINGS } from '../mcp/supervisedUpstream.js';
import { UpstreamManager } from '../mcp/upstreamManager.js';
import { openStore, type Store } from '../store/index.js';
import { VERSION } from '../version.js';
import { loadOrCreateAgentToken } from './agentToken.js';
import { formatHostPort, type ListenAddress } from './listenAddress.js';

export interface DaemonOptions {
  home: string;
  mcpListen: ListenAddress;
  aggregator: AggregatorSettings;
  logger: Logger;
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
  const paths = homePaths(opts.home);
  ensureHome(paths.home);
  const startedAt = new Date().toISOString();
  const admin = new AdminServer(paths.socket, logger);
  await admin.listen();

  let store: Store | undefined;
  let front: HttpFront | undefined;
  let manager: UpstreamManager | undefined;
  const aggregator = new Aggregator(opts.aggregator, logger);
  try {
    store = openStore(paths.db);
    const tokenRequired = !isLoopbackHost(opts.mcpListen.host);
    const token = loadOrCreateAgentToken(paths.token);
    manager = new UpstreamManager(
      paths.mcpServers,
      aggregator,
      { ...DEFAULT_SUPERVISOR_SETTINGS, clientVersion: VERSION },
      logger,
    );
    let mcpAddress = formatHostPort(opts.mcpListen.host, opts.mcpListen.port);
    front = new HttpFront({
      source: aggregator,
      info: { name: 'diane', version: VERSION },
      host: opts.mcpListen.host,
      port: opts.mcpListen.port,
      token: tokenRequired ? token : undefined,
      logger,
      maxRequestBytes: 16 * 1024 * 1024,
      maxSessions: 1000,
      health: () => ({ version: VERSION, upstreams: aggregator.upstreams().length }),
    });
    const bound = await front.listen();
    mcpAddress = formatHostPort(bound.address, bound.port);
    const urlHost = bound.address === '0.0.0.0' || bound.address === '::' ? '127.0.0.1' : bound.address;

    const info = (): InfoResponse => ({
      version: VERSION,
      pid: process.pid,
      home: paths.home,
      startedAt,
      mcp: {
        listen: mcpAddress,
        url: `http://${formatHostPort(urlHost, bound.port)}/mcp`,
        tokenRequired,
        token: tokenRequired ? token : undefined,
      },
      socket: paths.socket,
      upstreams: aggregator.upstreams().length,
      tools: aggregator.nameTable().exposed.length,
    });
    registerCoreRoutes(admin, { info, aggregator, manager, configPath: paths.mcpServers });
    await manager.reload();

    const running: RunningDaemon = {
      info,
      reload: () => manager!.reload(),
      stop: async () => {
        await front?.close();
        await admin.close();
        await manager?.stopAll();
        aggregator.close();
        store?.close();
      },
    };
    return running;
  } catch (err) {
    await front?.close().catch(() => {});
    await manager?.stopAll().catch(() => {});
    await admin.close().catch(() => {});
    store?.close();
    throw err;
  }
}
