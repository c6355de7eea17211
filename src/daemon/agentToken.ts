import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/files.js';
import { DianeError, ExitCode } from '../errors.js';
import { isLoopbackHost } from '../mcp/httpFront.js';

/**
 * How agents authenticate on the MCP endpoint. `token` (the default, on every address): the
 * bearer token of `$DIANE_HOME/agent-token`. `none`: nothing, for loopback only, because then
 * every local user and process can call every tool as the daemon's user.
 */
export type AgentAuth = 'token' | 'none';
export const AGENT_AUTH_MODES: readonly AgentAuth[] = ['token', 'none'];

/** Refuses `none` off loopback: that would hand every tool to the network. */
export function checkAgentAuth(mode: AgentAuth, listenHost: string): void {
  if (mode === 'none' && !isLoopbackHost(listenHost)) {
    throw new DianeError(
      `--agent-auth none is allowed only when --mcp-listen is a loopback address ` +
        `(127.0.0.1, ::1, localhost), not ${listenHost}: anyone who reaches it could call every tool. ` +
        'Drop --agent-auth (agents then send the bearer token shown by `diane info`).',
      ExitCode.usage,
    );
  }
}

/**
 * The bearer token agents present on the MCP endpoint. Generated once into
 * `$DIANE_HOME/agent-token` (0600) and printed by `diane info`. A token file that others can
 * read, or that someone else wrote, is refused rather than used: its holder would be an agent.
 */
export function loadOrCreateAgentToken(path: string): string {
  const existing = readPrivateFile(path);
  if (existing !== undefined) {
    const token = existing.trim();
    if (!/^[A-Za-z0-9_-]{32,}$/.test(token)) {
      throw new DianeError(
        `${path} does not hold a valid token; delete it to generate a new one`,
        ExitCode.config,
      );
    }
    return token;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileAtomic(path, `${token}\n`, 0o600);
  return token;
}

/** The file's text, checked on the descriptor that is read (no window to swap the file). */
function readPrivateFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const euid = process.geteuid?.();
    if (euid !== undefined && st.uid !== euid) {
      throw new DianeError(
        `${path} belongs to uid ${st.uid}, not to uid ${euid} who runs Diane; it is not used. ` +
          `Remove it (rm ${path}) and Diane generates a new token.`,
        ExitCode.config,
      );
    }
    if (euid !== undefined && st.mode & 0o077) {
      throw new DianeError(
        `${path} is readable or writable by others (mode 0${(st.mode & 0o777).toString(8)}); it is not ` +
          `used. If only you could have read it: chmod 600 ${path}; otherwise remove it and Diane ` +
          'generates a new token.',
        ExitCode.config,
      );
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
