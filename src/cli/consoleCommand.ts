import { type Command, Option } from 'commander';
import { isLoopbackName } from '../console/auth.js';
import { openWith, systemOpener, writeLoginRedirect } from '../console/browserOpener.js';
import { ConsoleServer } from '../console/consoleServer.js';
import { formatHostPort, parseListenAddress } from '../daemon/listenAddress.js';
import { DianeError, ExitCode } from '../errors.js';
import { createLogger } from '../log.js';
import { adminClientFor, type GlobalOptions, homeFrom, jsonOption, printJsonLine } from './common.js';

interface ConsoleOptions {
  listen: string;
  open?: boolean;
  json?: boolean;
}

/** `diane console`: the web console, its own loopback-only process talking to the daemon's admin socket. */
export function registerConsoleCommand(program: Command): void {
  program
    .command('console')
    .description('a web console on loopback: prints a one-time login URL')
    .addOption(
      new Option('--listen <host:port>', 'loopback address of the console (port 0: any free port)')
        .default('127.0.0.1:0')
        .env('DIANE_CONSOLE_LISTEN'),
    )
    .addOption(new Option('--open', 'open the login URL in the default browser').env('DIANE_CONSOLE_OPEN'))
    .addOption(jsonOption())
    .action(async (opts: ConsoleOptions, cmd: Command) => {
      const listen = parseListenAddress(opts.listen, '--listen');
      if (!isLoopbackName(listen.host)) {
        throw new DianeError(
          `--listen ${opts.listen}: the console serves loopback addresses only (127.0.0.1, ::1, localhost); ` +
            'reach it from elsewhere through an SSH tunnel',
          ExitCode.usage,
        );
      }
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const admin = adminClientFor(globals);
      await admin.info(); // no daemon: say so now, not on the first page
      const logger = createLogger(process.env.DIANE_LOG_LEVEL ?? 'warn');
      const server = new ConsoleServer({ admin, host: listen.host, port: listen.port, logger });
      const { port, url } = await server.start();
      if (opts.json) printJsonLine({ url, listen: formatHostPort(listen.host, port), pid: process.pid });
      else {
        process.stderr.write(
          `Diane console on ${formatHostPort(listen.host, port)}. Open this link to log in (it works once):\n\n  ${url}\n\n` +
            'Run `diane console` again for a new link. Ctrl-C stops the console.\n',
        );
      }
      const redirect = opts.open ? writeLoginRedirect(homeFrom(globals), url) : undefined;
      if (redirect)
        openWith(process.env.BROWSER || systemOpener(), redirect.path, (message) =>
          process.stderr.write(`${message}\n`),
        );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      redirect?.remove();
      await server.close();
    });
}
