import { loadOrCreateSecretToken } from '../config/secretToken.js';
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
  return loadOrCreateSecretToken(path, 'token', /^[A-Za-z0-9_-]{32,}$/);
}
