import { generateAgentToken, hashAgentToken } from '../config/agentTokens.js';
import { writeFileAtomic } from '../config/files.js';
import { type Logger, silentLogger } from '../log.js';
import type { AgentDirectory, AgentIdentity } from '../mcp/agentIdentity.js';
import { Scope, ScopePatternError } from '../mcp/scope.js';
import type { Agent, AgentMode, Store } from '../store/index.js';

/** The agent the single token of earlier releases became: full scope, token in `agent-token`. */
export const OWNER_AGENT = 'owner';

const TOUCH_INTERVAL_MS = 60_000;

export class AgentError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 | 409,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** An agent as the admin API shows it: never its token or its hash. */
export interface AgentView {
  name: string;
  /** `full`: the tool list; `discovery`: meta-tools to search and call instead. */
  mode: AgentMode;
  allow: string[];
  deny: string[];
  record_arguments: boolean;
  created_at: string;
  updated_at: string;
  token_rotated_at: string;
  last_used_at?: string;
}

export interface AgentServiceDeps {
  store: Store;
  /** Where the owner's token is kept for `diane info` and `diane mcp` (0600). */
  ownerTokenPath: string;
  /** Cuts an agent's open sessions: its token was rotated or it was removed. */
  closeSessions: (agent: string) => void;
  /** Applies a changed scope to the agent's live sessions. */
  applyScope: (agent: string, scope: Scope) => void;
  logger?: Logger;
  now?: () => Date;
}

/**
 * Agent identities: each with its own bearer token (stored only as a hash) and scope. The HTTP
 * front authenticates every request through `authenticate`, which answers from a cache keyed by
 * the token's hash; every change here clears it, so a rotated or removed token stops working on
 * the next request, and the agent's open sessions are cut at once.
 */
export class AgentService implements AgentDirectory {
  private readonly cache = new Map<string, { identity: AgentIdentity; id: string } | null>();
  private readonly lastTouched = new Map<string, number>();
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(private readonly deps: AgentServiceDeps) {
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? (() => new Date());
  }

  /**
   * The upgrade path: a home with the single token of earlier releases and no agents gets the
   * agent `owner` with that token and full scope, so every existing setup keeps working.
   */
  ensureOwner(ownerToken: string): void {
    const { agents } = this.deps.store;
    this.deps.store.transaction(() => {
      if (agents.getByName(OWNER_AGENT)) return;
      agents.create({ name: OWNER_AGENT, tokenHash: hashAgentToken(ownerToken), allow: ['*'] });
      this.logger.info('created the agent "owner" with the token of agent-token and full scope');
    });
    const owner = agents.getByName(OWNER_AGENT)!;
    if (owner.tokenHash !== hashAgentToken(ownerToken)) {
      this.logger.warn(
        'agent-token does not hold the token of the agent "owner" (edited by hand?); ' +
          '`diane agents rotate owner` writes a new one to both',
      );
    }
  }

  authenticate(token: string): AgentIdentity | undefined {
    const hash = hashAgentToken(token);
    let known = this.cache.get(hash);
    if (known === undefined) {
      const agent = this.deps.store.agents.findByTokenHash(hash);
      known = agent ? { identity: identityOf(agent), id: agent.id } : null;
      // Unknown tokens are not cached: a flood of guesses must not grow the map.
      if (known) this.cache.set(hash, known);
    }
    if (!known) return undefined;
    this.touch(known.id);
    return known.identity;
  }

  list(): AgentView[] {
    return this.deps.store.agents.list().map(view);
  }

  get(name: string): AgentView {
    return view(this.find(name));
  }

  /** The scope of an agent, for `agents show`. */
  scopeOf(name: string): Scope {
    return identityOf(this.find(name)).scope;
  }

  add(input: { name: string; allow: string[]; deny: string[]; recordArguments: boolean; mode: AgentMode }): {
    agent: AgentView;
    token: string;
  } {
    checkScope(input.allow, input.deny);
    const { token, hash } = generateAgentToken();
    const agent = this.deps.store.transaction(() => {
      if (this.deps.store.agents.getByName(input.name)) {
        throw new AgentError(`an agent named ${input.name} already exists`, 409);
      }
      return this.deps.store.agents.create({
        name: input.name,
        tokenHash: hash,
        allow: input.allow,
        deny: input.deny,
        recordArguments: input.recordArguments,
        mode: input.mode,
      });
    });
    this.logger.info({ agent: agent.name, allow: agent.allow, deny: agent.deny }, 'agent added');
    return { agent: view(agent), token };
  }

  /** A new token; the old one is dead at once, open sessions included. */
  rotate(name: string): { agent: AgentView; token: string } {
    this.find(name);
    const { token, hash } = generateAgentToken();
    // The owner's token file is written first: a crash in between leaves the file ahead of the
    // database, which `ensureOwner` reports, rather than a database nobody has the token of.
    if (name === OWNER_AGENT) writeFileAtomic(this.deps.ownerTokenPath, `${token}\n`, 0o600);
    this.deps.store.transaction(() => this.deps.store.agents.rotateTokenHash(name, hash));
    this.changed(name);
    this.deps.closeSessions(name);
    this.logger.info({ agent: name }, 'agent token rotated; its sessions were closed');
    return { agent: this.get(name), token };
  }

  remove(name: string): void {
    if (name === OWNER_AGENT) {
      throw new AgentError(
        'the agent "owner" cannot be removed (diane mcp and diane info use it); rotate its token instead',
        409,
      );
    }
    this.find(name);
    this.deps.store.transaction(() => this.deps.store.agents.remove(name));
    this.changed(name);
    this.deps.closeSessions(name);
    this.logger.info({ agent: name }, 'agent removed; its sessions were closed');
  }

  /** Replaces what is given; applies to the agent's live sessions at once. */
  update(name: string, change: { allow?: string[]; deny?: string[]; recordArguments?: boolean }): AgentView {
    const current = this.find(name);
    checkScope(change.allow ?? current.allow, change.deny ?? current.deny);
    const updated = this.deps.store.transaction(() => this.deps.store.agents.update(name, change));
    if (!updated) throw new AgentError(`no agent named ${name}`, 404);
    this.changed(name);
    this.deps.applyScope(name, identityOf(updated).scope);
    this.logger.info({ agent: name, allow: updated.allow, deny: updated.deny }, 'agent updated');
    return view(updated);
  }

  private find(name: string): Agent {
    const agent = this.deps.store.agents.getByName(name);
    if (!agent) throw new AgentError(`no agent named ${name} (see \`diane agents list\`)`, 404);
    return agent;
  }

  private changed(name: string): void {
    for (const [hash, entry] of this.cache) if (entry?.identity.name === name) this.cache.delete(hash);
  }

  /** Best effort, at most once a minute per agent: a busy agent is not a write per request. */
  private touch(id: string): void {
    const at = this.now().getTime();
    if (at - (this.lastTouched.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.lastTouched.set(id, at);
    try {
      this.deps.store.tryWrite(() => this.deps.store.agents.touchLastUsed(id, this.now()));
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'could not record an agent use');
    }
  }
}

function identityOf(agent: Agent): AgentIdentity {
  return {
    name: agent.name,
    scope: Scope.parse({ allow: agent.allow, deny: agent.deny }),
    recordArguments: agent.recordArguments,
    discovery: agent.mode === 'discovery',
  };
}

function checkScope(allow: string[], deny: string[]): void {
  try {
    Scope.parse({ allow, deny });
  } catch (err) {
    if (err instanceof ScopePatternError) throw new AgentError(err.message, 400);
    throw err;
  }
}

function view(agent: Agent): AgentView {
  return {
    name: agent.name,
    mode: agent.mode,
    allow: agent.allow,
    deny: agent.deny,
    record_arguments: agent.recordArguments,
    created_at: agent.createdAt.toISOString(),
    updated_at: agent.updatedAt.toISOString(),
    token_rotated_at: agent.tokenRotatedAt.toISOString(),
    ...(agent.lastUsedAt ? { last_used_at: agent.lastUsedAt.toISOString() } : {}),
  };
}
