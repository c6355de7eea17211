import { Scope } from './scope.js';

/**
 * Who is calling, as the fronts and the router need it: a name for the audit trail and the
 * session caps, what the agent may see and use, and whether its call arguments are recorded.
 * Where identities come from (tokens, the store) is not this folder's business.
 */
export interface AgentIdentity {
  readonly name: string;
  readonly scope: Scope;
  readonly recordArguments: boolean;
  /** Discovery mode: meta-tools to search and call instead of the whole tool list. */
  readonly discovery?: boolean;
}

/** Looks an agent up by the bearer token it presented; undefined for an unknown token. */
export interface AgentDirectory {
  authenticate(token: string): AgentIdentity | undefined;
}

/**
 * The identity of a caller no token names: `--agent-auth none` on loopback, the admin CLI, and
 * a slave serving its master (whose agent is the master's business). It sees everything.
 */
export const UNNAMED_AGENT: AgentIdentity = Object.freeze({
  name: 'anonymous',
  scope: Scope.full(),
  recordArguments: false,
});

/** What a request sees if its identity is lost on the way: nothing. */
export const NOBODY: AgentIdentity = Object.freeze({
  name: 'nobody',
  scope: Scope.parse({ allow: [] }),
  recordArguments: false,
});
