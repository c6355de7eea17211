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
          : 'Bearer token:  not required (loopback only)',
        `Upstreams:     ${info.upstreams}, tools exposed: ${info.tools}`,
        `Cluster:       ${info.cluster.url}  (listening on ${info.cluster.listen})`,
        `CA fingerprint: ${info.ca_fingerprint}`,
        '',
        'Pair a machine with this master by running on it:',
        `  ${info.pair_command}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
