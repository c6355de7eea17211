import { Command, CommanderError, Option } from 'commander';
import { DianeError, ExitCode } from '../errors.js';
import { VERSION } from '../version.js';
import { registerAgentsCommand } from './agentsCommand.js';
import { registerAuditCommand } from './auditCommand.js';
import { registerCaCommand } from './caCommand.js';
import { registerCatalogCommands } from './catalogCommands.js';
import { registerConsoleCommand } from './consoleCommand.js';
import { registerInfoCommand } from './infoCommand.js';
import { registerMcpCommand } from './mcpCommand.js';
import { registerServeCommand } from './serveCommand.js';
import { registerServersCommand } from './serversCommand.js';
import { registerSlaveAdminCommands, registerSlaveManagementCommands } from './slaveAdminCommands.js';
import { registerSlaveAgentCommands } from './slaveAgentCommands.js';
import { registerSlaveAuditCommand } from './slaveAuditCommand.js';
import { registerSlavePairCommand } from './slavePairCommand.js';
import { guardTerminalOutput } from './terminalText.js';
import { registerToolsCommand } from './toolsCommand.js';

export function buildProgram(): Command {
  const program = new Command('diane')
    .description('Diane: one MCP endpoint for your agents, fed by local MCP servers and paired machines')
    .version(VERSION)
    .addOption(new Option('--home <dir>', 'Diane home directory (default ~/.diane)').env('DIANE_HOME'))
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .hook('preAction', (_program, action) => {
      // stdout of `diane mcp` is the MCP channel and must stay byte-exact.
      if (action.name() === 'mcp') return;
      guardTerminalOutput(process.stdout);
      guardTerminalOutput(process.stderr);
    });
  registerServeCommand(program);
  registerMcpCommand(program);
  registerInfoCommand(program);
  registerServersCommand(program);
  registerToolsCommand(program);
  registerCatalogCommands(program);
  registerAuditCommand(program);
  const slave = program
    .command('slave')
    .description('pairing and slaves: enroll this machine, or manage the slaves of this master');
  registerSlavePairCommand(slave);
  registerSlaveAdminCommands(slave);
  registerSlaveManagementCommands(slave);
  registerSlaveAgentCommands(slave);
  registerSlaveAuditCommand(slave);
  registerCaCommand(program);
  registerAgentsCommand(program);
  registerConsoleCommand(program);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `diane tools list | head`: a reader that goes away is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = exitCodeFor(err);
  }
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    // Help and version are not failures; commander already printed the usage error.
    if (
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    ) {
      return 0;
    }
    return err.exitCode === 0 ? 0 : ExitCode.usage;
  }
  if (err instanceof DianeError) {
    process.stderr.write(`diane: ${err.message}\n`);
    return err.exitCode;
  }
  process.stderr.write(
    `diane: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return ExitCode.failure;
}
