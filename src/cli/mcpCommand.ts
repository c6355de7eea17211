import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { DEFAULT_ROUTER_SETTINGS } from '../mcp/router.js';
import { runStdioBridge } from '../mcp/stdioBridge.js';
import { DEFAULT_SUPERVISOR_SETTINGS } from '../mcp/supervisedUpstream.js';
import { VERSION } from '../version.js';
import { adminClientFor, type GlobalOptions } from './common.js';

export function registerMcpCommand(program: Command): void {
  program
    .command('mcp')
    .description(
      "serve the daemon's tools as an MCP server on stdin/stdout (for agents that spawn a command)",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      // stdout is the MCP channel: everything human goes to stderr.
      const logger = createLogger(process.env.DIANE_LOG_LEVEL ?? 'warn');
      const info = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).info();
      await runStdioBridge({
        mcpUrl: info.mcp.url,
        token: info.mcp.token,
        info: { name: 'diane', version: VERSION },
        supervisor: {
          ...DEFAULT_SUPERVISOR_SETTINGS,
          clientName: 'diane-mcp',
          clientVersion: VERSION,
          connectTimeoutMs: 10_000,
        },
        callTimeoutCapMs: DEFAULT_ROUTER_SETTINGS.callTimeoutCapMs + 30_000,
        logger,
      });
    });
}
