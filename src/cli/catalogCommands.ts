import type { Command } from 'commander';
import {
  adminClientFor,
  allOption,
  firstLine,
  type GlobalOptions,
  jsonOption,
  printJson,
  printRejected,
  printTable,
} from './common.js';

type ListOptions = { all?: boolean; json?: boolean };

/** `diane prompts list` and `diane resources list`, beside `diane tools list`. */
export function registerCatalogCommands(program: Command): void {
  program
    .command('prompts')
    .description('the prompts agents see')
    .command('list')
    .description('exposed prompts; --all also lists the ones refused (collisions, names too long)')
    .addOption(allOption('prompts'))
    .addOption(jsonOption())
    .action(async (opts: ListOptions, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).prompts(Boolean(opts.all));
      if (opts.json) return printJson(res);
      printTable(
        ['PROMPT', 'UPSTREAM', 'ARGUMENTS', 'DESCRIPTION'],
        res.prompts.map((p) => [
          p.name,
          p.upstream,
          (p.definition.arguments ?? []).map((a) => (a.required ? a.name : `[${a.name}]`)).join(' '),
          firstLine(p.description ?? ''),
        ]),
      );
      if (opts.all) printRejected('PROMPT', res.rejected);
    });
  program
    .command('resources')
    .description('the resources and resource templates agents see')
    .command('list')
    .description('exposed resources (URIs in Diane form); --all also lists the ones refused')
    .addOption(allOption('resources'))
    .addOption(jsonOption())
    .action(async (opts: ListOptions, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).resources(Boolean(opts.all));
      if (opts.json) return printJson(res);
      printTable(
        ['URI', 'UPSTREAM', 'KIND', 'NAME'],
        res.resources.map((r) => [
          r.uri,
          r.upstream,
          r.template ? 'template' : 'resource',
          firstLine(r.name),
        ]),
      );
      if (opts.all) printRejected('URI', res.rejected);
    });
}
