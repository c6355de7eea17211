import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * Logs go to stderr (fd 2), never stdout: stdout of `diane mcp` is the MCP channel.
 * Synchronous writes so that a crash or exit does not lose the last lines.
 */
export function createLogger(level: string = process.env.DIANE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: undefined }, pino.destination({ fd: 2, sync: true }));
}

/** A logger for tests and library use that drops everything. */
export const silentLogger: Logger = pino({ level: 'silent' });
