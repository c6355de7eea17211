import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import type { Server } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { DianeError, ExitCode } from '../errors.js';
import type { Logger } from '../log.js';
import { createFrontServer, type FrontInfo, LiveServers } from './frontServer.js';
import { SupervisedUpstream, type SupervisorSettings } from './supervisedUpstream.js';
import type { ToolCallRequestOptions, ToolSource } from './toolSource.js';
import { toolError, type Upstream, UpstreamTimeoutError, UpstreamUnavailableError } from './upstream.js';

export interface BridgeOptions {
  mcpUrl: string;
  token?: string;
  info: FrontInfo;
  supervisor: SupervisorSettings;
  /** The daemon enforces per-call timeouts; the bridge only guards against a daemon that hangs. */
  callTimeoutCapMs: number;
  logger: Logger;
}

/** The daemon's aggregated tools, as the daemon names them (no second prefix). */
class DaemonToolSource implements ToolSource {
  constructor(
    private readonly daemon: Upstream,
    private readonly capMs: number,
  ) {}

  async listTools(): Promise<Tool[]> {
    return [...this.daemon.tools()];
  }

  async callTool(
    name: string,
    args: Record<string, unknown> | undefined,
    opts: ToolCallRequestOptions,
  ): Promise<CallToolResult> {
    try {
      return await this.daemon.callTool(name, args, {
        signal: opts.signal,
        onprogress: opts.onprogress,
        timeoutMs: this.capMs,
        maxTotalMs: this.capMs,
      });
    } catch (err) {
      if (err instanceof UpstreamUnavailableError || err instanceof UpstreamTimeoutError)
        return toolError(err.message);
      throw err;
    }
  }

  onToolsChanged(listener: () => void): () => void {
    return this.daemon.subscribe((event) => {
      if (event === 'tools') listener();
    });
  }
}

/**
 * `diane mcp`: an MCP server on stdin/stdout for agents that spawn a command, serving the
 * running daemon's tools. The link to the daemon is a supervised upstream, so a daemon restart
 * is survived: calls fail cleanly while it is away and the tool list comes back with it.
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
  const source = new DaemonToolSource(daemon, opts.callTimeoutCapMs);
  const live = new LiveServers();
  source.onToolsChanged(() => live.announceToolsChanged());
  try {
    await waitForFirstConnection(daemon, opts.supervisor.connectTimeoutMs);
  } catch (err) {
    await daemon.stop();
    throw new DianeError((err as Error).message, ExitCode.noDaemon, 'no-daemon');
  }

  await new Promise<void>((resolve) => {
    const handle = serveStdio(
      () => {
        const server: Server = createFrontServer(source, opts.info);
        live.add(server);
        server.onclose = () => {
          live.delete(server);
          resolve();
        };
        return server;
      },
      { onerror: (err) => opts.logger.debug({ err: err.message }, 'stdio error') },
    );
    process.stdin.once('end', () => {
      void handle.close().finally(resolve);
    });
  });
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
