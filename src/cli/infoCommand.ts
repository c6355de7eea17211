import type { Command } from 'commander';
import { adminClientFor, type GlobalOptions, jsonOption, printJson } from './common.js';

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('show the running daemon: version, home, listen addresses, how to connect')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const info = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).info();
      if (opts.json) return printJson(info);
      const lines = [
        `Diane ${info.version} (pid ${info.pid}), running since ${info.startedAt}`,
        `Home:          ${info.home}`,
        `Admin socket:  ${info.socket}`,
        `MCP endpoint:  ${info.mcp.url}  (listening on ${info.mcp.listen})`,
        info.mcp.tokenRequired
          ? `Bearer token:  ${info.mcp.token}`
          : 'Agent auth:    NONE (--agent-auth none): any local user or process can call every tool',
        `Upstreams:     ${info.upstreams}, tools exposed: ${info.tools}`,
        `Cluster:       ${info.cluster.url}  (listening on ${info.cluster.listen})`,
        ...(info.bus
          ? [
              `Bus:           master ${info.bus.master} on ${info.bus.servers.join(', ')} (prefix ${info.bus.prefix}, ${info.bus.connected ? 'connected' : 'NOT connected'})`,
            ]
          : []),
        `CA fingerprint: ${info.ca_fingerprint}`,
        `CA expires:    ${info.ca_expires_at}`,
        ...(info.ca_next_fingerprint
          ? [`Next CA:       ${info.ca_next_fingerprint} (rollover under way: \`diane ca status\`)`]
          : []),
        ...(info.ca_expiry_warning ? [`WARNING: ${info.ca_expiry_warning}`] : []),
        '',
        ...agentConfigs(info.mcp.url, info.mcp.tokenRequired ? info.mcp.token : undefined),
        '',
        'Pair a machine with this master by running on it:',
        `  ${info.pair_command}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

/** Ready-to-paste agent configurations; they carry the token, so they are secrets too. */
export function agentConfigs(url: string, token: string | undefined): string[] {
  const header = token ? `Bearer ${token}` : undefined;
  const claude = `claude mcp add --transport http diane ${url}${header ? ` --header "Authorization: ${header}"` : ''}`;
  const cursor = JSON.stringify({
    mcpServers: { diane: { url, ...(header ? { headers: { Authorization: header } } : {}) } },
  });
  return [
    'Connect an agent:',
    '  Claude Code:',
    `    ${claude}`,
    '  Cursor (~/.cursor/mcp.json) and other agents that take an MCP URL with headers:',
    `    ${cursor}`,
    '  Agents that spawn a command (it reads the token itself):',
    '    command "diane", args ["mcp"]',
  ];
}
