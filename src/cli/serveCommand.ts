import { type Command, Option } from 'commander';
import { startDaemon } from '../daemon/daemon.js';
import { parseListenAddress } from '../daemon/listenAddress.js';
import { createLogger } from '../log.js';
import { DEFAULT_AGGREGATOR_SETTINGS } from '../mcp/aggregator.js';
import { durationArg, type GlobalOptions, homeFrom, positiveIntArg } from './common.js';

interface ServeOptions {
  mcpListen: string;
  maxToolNameLength: number;
  callTimeout: number;
  callTimeoutCap: number;
  logLevel: string;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the Diane daemon: the agent MCP endpoint and the admin socket')
    .addOption(
      new Option('--mcp-listen <host:port>', 'agent MCP endpoint (Streamable HTTP at /mcp)')
        .env('DIANE_MCP_LISTEN')
        .default('127.0.0.1:8764'),
    )
    .addOption(
      new Option('--max-tool-name-length <n>', 'longest exposed tool name; longer ones are not exposed')
        .env('DIANE_MAX_TOOL_NAME_LENGTH')
        .argParser(positiveIntArg('--max-tool-name-length', 3, 1024))
        .default(DEFAULT_AGGREGATOR_SETTINGS.maxToolNameLength),
    )
    .addOption(
      new Option('--call-timeout <duration>', 'default per-call timeout, restarted by progress')
        .env('DIANE_CALL_TIMEOUT')
        .argParser(durationArg('--call-timeout'))
        .default(DEFAULT_AGGREGATOR_SETTINGS.callTimeoutMs, '60s'),
    )
    .addOption(
      new Option('--call-timeout-cap <duration>', 'hard cap on any call, progress or not')
        .env('DIANE_CALL_TIMEOUT_CAP')
        .argParser(durationArg('--call-timeout-cap'))
        .default(DEFAULT_AGGREGATOR_SETTINGS.callTimeoutCapMs, '10m'),
    )
    .addOption(
      new Option('--log-level <level>', 'log level (logs go to stderr)')
        .env('DIANE_LOG_LEVEL')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
        .default('info'),
    )
    .action(async (opts: ServeOptions, cmd: Command) => {
      const home = homeFrom(cmd.optsWithGlobals<GlobalOptions>());
      const logger = createLogger(opts.logLevel);
      const daemon = await startDaemon({
        home,
        mcpListen: parseListenAddress(opts.mcpListen, '--mcp-listen'),
        aggregator: {
          ...DEFAULT_AGGREGATOR_SETTINGS,
          maxToolNameLength: opts.maxToolNameLength,
          callTimeoutMs: opts.callTimeout,
          callTimeoutCapMs: Math.max(opts.callTimeoutCap, opts.callTimeout),
        },
        logger,
      });
      const info = daemon.info();
      process.stderr.write(banner(info.mcp.url, info.home, info.mcp.tokenRequired));
      logger.info({ mcp: info.mcp.listen, home: info.home, pid: process.pid }, 'diane is serving');

      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) return;
          stopping = true;
          logger.info({ signal }, 'shutting down');
          const force = setTimeout(() => {
            logger.error('shutdown took too long; exiting anyway');
            process.exit(1);
          }, 15_000);
          force.unref();
          daemon.stop().finally(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        process.on('SIGHUP', () => {
          logger.info('SIGHUP: reloading mcp-servers.json');
          daemon.reload().catch((err) => logger.error({ err: (err as Error).message }, 'reload failed'));
        });
      });
    });
}

function banner(url: string, home: string, tokenRequired: boolean): string {
  return [
    '',
    `Diane is running. Home: ${home}`,
    '',
    '  Connect an agent:',
    `    over HTTP:   ${url}${tokenRequired ? '   (bearer token: see `diane info`)' : ''}`,
    '    over stdio:  command "diane", args ["mcp"]   (Claude Desktop, Cursor: see README)',
    '    Claude Code: claude mcp add --transport http diane ' + url,
    '',
    '  MCP servers: edit mcp-servers.json in the home, then `diane servers reload`.',
    '  Inspect:     diane servers list | diane tools list | diane info',
    '',
  ].join('\n');
}
