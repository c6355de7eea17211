import { type Command, Option } from 'commander';
import { DianeError, ExitCode } from '../errors.js';
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

export function registerToolsCommand(program: Command): void {
  const tools = program.command('tools').description('the tools agents see');
  tools
    .command('list')
    .description('exposed tools; --all also lists the ones refused (collisions, names too long)')
    .addOption(allOption('tools'))
    .addOption(jsonOption())
    .action(async (opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).tools(Boolean(opts.all));
      if (opts.json) return printJson(res);
      printTable(
        ['TOOL', 'UPSTREAM', 'DESCRIPTION'],
        res.tools.map((t) => [t.name, t.upstream, firstLine(t.description ?? '')]),
      );
      if (opts.all) printRejected('TOOL', res.rejected);
    });
  tools
    .command('call <name>')
    .description('call a tool through the daemon and print its result')
    .addOption(new Option('--args <json>', 'the arguments as a JSON object').env('DIANE_ARGS').default('{}'))
    .addOption(jsonOption())
    .action(async (name: string, opts: { args: string; json?: boolean }, cmd: Command) => {
      const args = parseArgs(opts.args);
      const result = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).callTool({
        name,
        arguments: args,
      });
      if (opts.json) printJson(result);
      else {
        for (const block of result.content ?? []) {
          if (block.type === 'text') process.stdout.write(`${block.text}\n`);
          else process.stdout.write(`${JSON.stringify(block)}\n`);
        }
      }
      if (result.isError) process.exitCode = ExitCode.failure;
    });
}

function parseArgs(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DianeError(`--args is not valid JSON: ${(err as Error).message}`, ExitCode.usage);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DianeError('--args must be a JSON object, e.g. {"path": "/tmp"}', ExitCode.usage);
  }
  return value as Record<string, unknown>;
}
