import type { Server } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { DianeError, ExitCode } from '../errors.js';
import type { Logger } from '../log.js';
import { createFrontServer, type FrontInfo, onServerClose } from './frontServer.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from './router.js';
import { SupervisedUpstream, type SupervisorSettings } from './supervisedUpstream.js';

export interface BridgeOptions {
  mcpUrl: string;
  token?: string;
  info: FrontInfo;
  supervisor: SupervisorSettings;
  /** The longest a call may take; the daemon applies the real per-call timeouts. */
  callTimeoutCapMs: number;
  logger: Logger;
}

/**
 * `diane mcp`: an MCP server on stdin/stdout for agents that spawn a command, serving the
 * running daemon. The daemon is the one upstream of a transparent router (names and URIs pass
 * unchanged), so everything the daemon serves passes through, requests to the agent included.
 * The link to the daemon is a supervised upstream, so a daemon restart is survived: calls fail
 * cleanly while it is away and the lists come back with it.
 */
export async function runStdioBridge(opts: BridgeOptions): Promise<void> {
  const daemon = new SupervisedUpstream(
    {
      kind: 'http',
      name: 'daemon',
      url: opts.mcpUrl,
      headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      enabled: true,
    },
    opts.supervisor,
    opts.logger,
  );
  // The daemon enforces per-call timeouts; the bridge only guards against a daemon that hangs.
  const router = new Router(
    {
      ...DEFAULT_ROUTER_SETTINGS,
      naming: 'transparent',
      callTimeoutMs: opts.callTimeoutCapMs,
      callTimeoutCapMs: opts.callTimeoutCapMs,
    },
    opts.logger,
  );
  router.add(daemon);
  try {
    await waitForFirstConnection(daemon, opts.supervisor.connectTimeoutMs);
  } catch (err) {
    await daemon.stop();
    throw new DianeError((err as Error).message, ExitCode.noDaemon, 'no-daemon');
  }

  await new Promise<void>((resolve) => {
    const handle = serveStdio(
      () => {
        const server: Server = createFrontServer(router, opts.info, {
          persistent: true,
          progressSettleMs: 20,
        });
        // Its router session tells it of list changes.
        onServerClose(server, () => resolve());
        return server;
      },
      { onerror: (err) => opts.logger.debug({ err: err.message }, 'stdio error') },
    );
    process.stdin.once('end', () => {
      void handle.close().finally(resolve);
    });
  });
  router.close();
  await daemon.stop();
}

function waitForFirstConnection(daemon: SupervisedUpstream, timeoutMs: number): Promise<void> {
  daemon.start();
  return new Promise((resolve, reject) => {
    const check = () => {
      const status = daemon.status();
      if (status.state === 'connected') {
        done();
        resolve();
      } else if (status.state === 'backoff') {
        done();
        reject(
          new Error(`cannot reach the Diane daemon's MCP endpoint: ${status.lastError ?? 'unknown error'}`),
        );
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error('timed out connecting to the Diane daemon'));
    }, timeoutMs);
    const unsubscribe = daemon.subscribe(check);
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
    };
    check();
  });
}
