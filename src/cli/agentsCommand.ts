import { type Command, Option } from 'commander';
import type { AgentView } from '../agents/agentService.js';
import { DianeError, ExitCode } from '../errors.js';
import { adminClientFor, type GlobalOptions, jsonOption, printJson, printTable } from './common.js';
import { confirm, isInteractive } from './prompt.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function allowOption(): Option {
  return new Option(
    '--allow <pattern>',
    'what the agent may use (repeatable): an exposed name glob (`workstation_*`), `host:NAME`, ' +
      'a Diane URI glob, optionally prefixed `tool:`, `prompt:` or `resource:`',
  ).argParser(collect);
}

function modeOption(): Option {
  return new Option(
    '--mode <mode>',
    '`full`: the whole tool list; `discovery`: meta-tools to search and call tools instead',
  ).choices(['full', 'discovery']);
}

function denyOption(): Option {
  return new Option('--deny <pattern>', 'what the agent may not use, even if allowed (repeatable)').argParser(
    collect,
  );
}

/** `diane agents`: identities agents use on the MCP endpoint, each with its token and scope. */
export function registerAgentsCommand(program: Command): void {
  const agents = program.command('agents').description('agent identities: tokens and scopes');
  agents
    .command('add <name>')
    .description('create an agent with its own bearer token (shown once)')
    .addOption(allowOption())
    .addOption(denyOption())
    .addOption(new Option('--record-arguments', "record this agent's call arguments (redacted) in the audit"))
    .addOption(modeOption().default('full'))
    .addOption(jsonOption())
    .action(
      async (
        name: string,
        opts: {
          allow?: string[];
          deny?: string[];
          recordArguments?: boolean;
          mode: 'full' | 'discovery';
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).agentAdd({
          name,
          allow: opts.allow ?? [],
          deny: opts.deny ?? [],
          record_arguments: opts.recordArguments === true,
          mode: opts.mode,
        });
        if (opts.json) return printJson(res);
        process.stdout.write(
          `Agent ${res.agent.name} created. Its token (shown only now; Diane keeps only a hash):\n\n` +
            `  ${res.token}\n\nAgents send it as "Authorization: Bearer <token>".\n`,
        );
        if (res.agent.allow.length === 0) {
          process.stderr.write(
            'Note: with no --allow this agent sees nothing yet; give it a scope with `diane agents set`.\n',
          );
        }
      },
    );
  agents
    .command('list')
    .description('the agents and their scopes')
    .addOption(jsonOption())
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).agents();
      if (opts.json) return printJson(res);
      printTable(
        ['NAME', 'MODE', 'ALLOW', 'DENY', 'ARGS', 'LAST USED'],
        res.agents.map((a) => [
          a.name,
          a.mode,
          a.allow.join(' ') || '-',
          a.deny.join(' ') || '-',
          a.record_arguments ? 'recorded' : '-',
          a.last_used_at ?? 'never',
        ]),
      );
    });
  agents
    .command('show <name>')
    .description('an agent and everything its scope lets it see now')
    .addOption(jsonOption())
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const detail = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).agentShow(name);
      if (opts.json) return printJson(detail);
      printAgent(detail);
      for (const [label, items] of [
        ['tools', detail.sees.tools],
        ['prompts', detail.sees.prompts],
        ['resources', detail.sees.resources],
        ['resource templates', detail.sees.resource_templates],
      ] as const) {
        process.stdout.write(`\n${label} (${items.length}):\n`);
        for (const item of items) process.stdout.write(`  ${item}\n`);
      }
    });
  agents
    .command('set <name>')
    .description("replace an agent's scope or argument recording; applies to its live sessions at once")
    .addOption(allowOption())
    .addOption(denyOption())
    .addOption(new Option('--no-deny', 'clear the deny list'))
    .addOption(new Option('--record-arguments', 'record its call arguments (redacted)'))
    .addOption(new Option('--no-record-arguments', 'stop recording its call arguments'))
    .addOption(modeOption())
    .addOption(jsonOption())
    .action(
      async (
        name: string,
        opts: {
          allow?: string[];
          deny?: string[] | false;
          recordArguments?: boolean;
          mode?: 'full' | 'discovery';
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const body = {
          name,
          ...(opts.allow === undefined ? {} : { allow: opts.allow }),
          ...(opts.deny === undefined ? {} : { deny: opts.deny === false ? [] : opts.deny }),
          ...(opts.recordArguments === undefined ? {} : { record_arguments: opts.recordArguments }),
          ...(opts.mode === undefined ? {} : { mode: opts.mode }),
        };
        if (Object.keys(body).length === 1) {
          throw new DianeError(
            'nothing to change: give --allow, --deny, --no-deny, --mode or --[no-]record-arguments',
            ExitCode.usage,
          );
        }
        const agent = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).agentUpdate(body);
        if (opts.json) return printJson(agent);
        printAgent(agent);
      },
    );
  agents
    .command('rotate <name>')
    .description('a new token for the agent; the old one stops working at once, open sessions included')
    .addOption(jsonOption())
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).agentRotate(name);
      if (opts.json) return printJson(res);
      process.stdout.write(
        `New token for ${name} (shown only now); the old one no longer works:\n\n  ${res.token}\n`,
      );
    });
  agents
    .command('remove <name>')
    .description('remove an agent: its token stops working and its sessions are closed')
    .addOption(
      new Option('--yes', 'do not ask for confirmation (required when not on a terminal)').env('DIANE_YES'),
    )
    .addOption(jsonOption())
    .action(async (name: string, opts: { yes?: boolean; json?: boolean }, cmd: Command) => {
      if (!opts.yes) {
        if (!isInteractive()) {
          throw new DianeError(
            `refusing to remove agent ${name} without --yes when not on a terminal`,
            ExitCode.usage,
          );
        }
        if (!(await confirm(`Remove agent ${name}? Its token stops working at once.`))) {
          throw new DianeError('not removed', ExitCode.failure);
        }
      }
      const res = await adminClientFor(cmd.optsWithGlobals<GlobalOptions>()).agentRemove(name);
      if (opts.json) return printJson(res);
      process.stdout.write(`Removed agent ${name}.\n`);
    });
}

function printAgent(agent: AgentView): void {
  process.stdout.write(
    `agent:     ${agent.name}\n` +
      `mode:      ${agent.mode}\n` +
      `allow:     ${agent.allow.join(' ') || '(nothing)'}\n` +
      `deny:      ${agent.deny.join(' ') || '-'}\n` +
      `arguments: ${agent.record_arguments ? 'recorded (redacted)' : 'not recorded'}\n` +
      `last used: ${agent.last_used_at ?? 'never'}\n`,
  );
}
