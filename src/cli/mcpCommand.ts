import { type Command, Option } from 'commander';
import type { AdminClient } from '../admin/adminClient.js';
import { DianeError, ExitCode } from '../errors.js';
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
    .addOption(
      new Option(
        '--agent <name>',
        'act as this agent; its token comes from DIANE_AGENT_TOKEN (default: the owner, from agent-token)',
      ).env('DIANE_AGENT'),
    )
    .addOption(
      new Option(
        '--discovery',
        'discovery mode: meta-tools to search and call tools, not the whole list',
      ).env('DIANE_DISCOVERY'),
    )
    .action(async (opts: { agent?: string; discovery?: boolean }, cmd: Command) => {
      // stdout is the MCP channel: everything human goes to stderr.
      const logger = createLogger(process.env.DIANE_LOG_LEVEL ?? 'warn');
      const client = adminClientFor(cmd.optsWithGlobals<GlobalOptions>());
      const info = await client.info();
      const token = await agentToken(client, info.mcp.token, opts.agent);
      await runStdioBridge({
        mcpUrl: opts.discovery ? `${info.mcp.url}/discovery` : info.mcp.url,
        token,
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

/**
 * The token the bridge presents: `DIANE_AGENT_TOKEN` when set (an agent's token never touches a
 * command line), else the owner's. With `--agent`, the token must be that agent's, checked with
 * the daemon before anything is served.
 */
async function agentToken(
  client: AdminClient,
  ownerToken: string | undefined,
  agent: string | undefined,
): Promise<string | undefined> {
  const fromEnv = process.env.DIANE_AGENT_TOKEN?.trim();
  if (agent === undefined) return fromEnv || ownerToken;
  if (!fromEnv) {
    if (agent === 'owner') return ownerToken;
    throw new DianeError(
      `--agent ${agent}: set DIANE_AGENT_TOKEN to the token of ${agent} (shown by \`diane agents add\` or \`rotate\`)`,
      ExitCode.usage,
    );
  }
  const { name } = await client.agentWhoami(fromEnv);
  if (name !== agent) {
    throw new DianeError(`DIANE_AGENT_TOKEN is the token of ${name}, not ${agent}`, ExitCode.usage);
  }
  return fromEnv;
}
