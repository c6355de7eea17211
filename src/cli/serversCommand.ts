import type { Command } from 'commander';
import { adminClientFor, type GlobalOptions, jsonOption, printJson, printTable } from './common.js';

export function registerServersCommand(program: Command): void {
  const servers = program.command('servers').description('the MCP servers configured in mcp-servers.json');
  servers
    .command('list')
    .description("each upstream's state, tool count and last error")
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).servers();
      if (opts.json) return printJson(res);
      if (res.servers.length === 0 && res.disabled.length === 0) {
        process.stdout.write(`No MCP servers configured. Add them to ${res.configFile}.\n`);
      } else {
        printTable(
          ['NAME', 'KIND', 'STATE', 'TOOLS', 'RESTARTS', 'LAST ERROR'],
          [
            ...res.servers.map((s) => [
              s.name,
              s.kind,
              s.state === 'backoff' && s.nextRetryAt ? `backoff (retry ${s.nextRetryAt})` : s.state,
              String(s.toolCount),
              String(s.restarts),
              s.lastError ?? '',
            ]),
            ...res.disabled.map((name) => [name, '', 'disabled', '0', '0', '']),
          ],
        );
      }
      for (const e of res.configErrors) process.stdout.write(`config error: ${e.path}: ${e.message}\n`);
      for (const w of res.configWarnings) process.stdout.write(`config warning: ${w.path}: ${w.message}\n`);
    });
  servers
    .command('reload')
    .description('re-read mcp-servers.json; only changed servers restart (same as SIGHUP)')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).reload();
      if (opts.json) return printJson(res);
      const say = (label: string, names: string[]) => {
        if (names.length) process.stdout.write(`${label}: ${names.join(', ')}\n`);
      };
      say('added', res.added);
      say('removed', res.removed);
      say('restarted', res.restarted);
      say('unchanged', res.unchanged);
      for (const e of res.configErrors) process.stderr.write(`config error: ${e.path}: ${e.message}\n`);
      if (!res.added.length && !res.removed.length && !res.restarted.length)
        process.stdout.write('nothing changed\n');
    });
}
