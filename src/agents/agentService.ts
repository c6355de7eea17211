import { generateAgentToken, hashAgentToken } from '../config/agentTokens.js';
import { writeFileAtomic } from '../config/files.js';
import { type Logger, silentLogger } from '../log.js';
import type { AgentDirectory, AgentIdentity } from '../mcp/agentIdentity.js';
import { Scope, ScopePatternError } from '../mcp/scope.js';
import type { Agent, AgentMode, MasterStore } from '../store/index.js';

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
  store: MasterStore;
  /** Where the owner's token is kept for `diane info` and `diane mcp` (0600). */
  ownerTokenPath: string;
  /** Cuts an agent's open sessions: its token was rotated or it was removed. */
  closeSessions: (agent: string) => void;
  /** Applies a changed scope to the agent's live sessions. */
  applyScope: (agent: string, scope: Scope) => void;
  logger?: Logger;
  now?: () => Date;
  settings?: Partial<AgentServiceSettings>;
}

export interface AgentServiceSettings {
  /**
   * How often the directory is read again from the store, so that a change made through another
   * master sharing it (PostgreSQL) applies here too: a rotated or removed token stops working
   * and its sessions are cut within this time. Changes made through this master apply at once.
   */
  refreshIntervalMs: number;
}

export const AGENT_SERVICE_DEFAULTS: AgentServiceSettings = { refreshIntervalMs: 5_000 };

interface DirectoryEntry {
  identity: AgentIdentity;
  id: string;
  tokenHash: string;
  /** allow/deny as stored, to tell a scope change from none. */
  scopeKey: string;
}

/**
 * Agent identities: each with its own bearer token (stored only as a hash) and scope. The HTTP
 * front authenticates every request through `authenticate`, synchronously, from an in-memory
 * copy of the agents table keyed by the token's hash (agents are few; the store is asynchronous
 * and may be across the network). Every change made here reloads it before returning, and a
 * timer reloads it for changes made by another master; a reload cuts the sessions of agents whose
 * token changed or who are gone, and re-scopes those whose scope changed.
 */
export class AgentService implements AgentDirectory {
  private byTokenHash = new Map<string, DirectoryEntry>();
  private byName = new Map<string, DirectoryEntry>();
  private readonly lastTouched = new Map<string, number>();
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly settings: AgentServiceSettings;
  private timer: NodeJS.Timeout | undefined;
  /** Reloads run one at a time, so that an older read never overwrites a newer one. */
  private reloading: Promise<void> = Promise.resolve();

  constructor(private readonly deps: AgentServiceDeps) {
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? (() => new Date());
    this.settings = { ...AGENT_SERVICE_DEFAULTS, ...deps.settings };
  }

  /**
   * The upgrade path: a home with the single token of earlier releases and no agents gets the
   * agent `owner` with that token and full scope, so every existing setup keeps working. Loads
   * the directory.
   */
  async ensureOwner(ownerToken: string): Promise<void> {
    const created = await this.deps.store.transaction(async (tx) => {
      if (await tx.agents.getByName(OWNER_AGENT)) return false;
      await tx.agents.create({ name: OWNER_AGENT, tokenHash: hashAgentToken(ownerToken), allow: ['*'] });
      return true;
    });
    if (created) this.logger.info('created the agent "owner" with the token of agent-token and full scope');
    await this.reload();
    const owner = this.byName.get(OWNER_AGENT);
    if (owner?.tokenHash !== hashAgentToken(ownerToken)) {
      this.logger.warn(
        'agent-token does not hold the token of the agent "owner" (edited by hand?); ' +
          '`diane agents rotate owner` writes a new one to both',
      );
    }
  }

  /** Starts the periodic reload (see AgentServiceSettings.refreshIntervalMs). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.reload().catch((err: unknown) => {
        this.logger.warn({ err: (err as Error).message }, 'could not reload the agents');
      });
    }, this.settings.refreshIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  authenticate(token: string): AgentIdentity | undefined {
    const known = this.byTokenHash.get(hashAgentToken(token));
    if (!known) return undefined;
    this.touch(known.id);
    return known.identity;
  }

  async list(): Promise<AgentView[]> {
    return (await this.deps.store.agents.list()).map(view);
  }

  async get(name: string): Promise<AgentView> {
    return view(await this.find(name));
  }

  /** The scope of an agent, for `agents show`. */
  async scopeOf(name: string): Promise<Scope> {
    return identityOf(await this.find(name)).scope;
  }

  async add(input: {
    name: string;
    allow: string[];
    deny: string[];
    recordArguments: boolean;
    mode: AgentMode;
  }): Promise<{ agent: AgentView; token: string }> {
    checkScope(input.allow, input.deny);
    const { token, hash } = generateAgentToken();
    const agent = await this.deps.store.transaction(async (tx) => {
      if (await tx.agents.getByName(input.name)) {
        throw new AgentError(`an agent named ${input.name} already exists`, 409);
      }
      return tx.agents.create({
        name: input.name,
        tokenHash: hash,
        allow: input.allow,
        deny: input.deny,
        recordArguments: input.recordArguments,
        mode: input.mode,
      });
    });
    await this.reload();
    this.logger.info({ agent: agent.name, allow: agent.allow, deny: agent.deny }, 'agent added');
    return { agent: view(agent), token };
  }

  /** A new token; the old one is dead at once, open sessions included. */
  async rotate(name: string): Promise<{ agent: AgentView; token: string }> {
    await this.find(name);
    const { token, hash } = generateAgentToken();
    // The owner's token file is written first: a crash in between leaves the file ahead of the
    // database, which `ensureOwner` reports, rather than a database nobody has the token of.
    if (name === OWNER_AGENT) writeFileAtomic(this.deps.ownerTokenPath, `${token}\n`, 0o600);
    await this.deps.store.transaction((tx) => tx.agents.rotateTokenHash(name, hash));
    await this.reload(name);
    this.deps.closeSessions(name);
    this.logger.info({ agent: name }, 'agent token rotated; its sessions were closed');
    return { agent: await this.get(name), token };
  }

  async remove(name: string): Promise<void> {
    if (name === OWNER_AGENT) {
      throw new AgentError(
        'the agent "owner" cannot be removed (diane mcp and diane info use it); rotate its token instead',
        409,
      );
    }
    await this.find(name);
    await this.deps.store.transaction((tx) => tx.agents.remove(name));
    await this.reload(name);
    this.deps.closeSessions(name);
    this.logger.info({ agent: name }, 'agent removed; its sessions were closed');
  }

  /** Replaces what is given; applies to the agent's live sessions at once. */
  async update(
    name: string,
    change: { allow?: string[]; deny?: string[]; recordArguments?: boolean },
  ): Promise<AgentView> {
    const current = await this.find(name);
    checkScope(change.allow ?? current.allow, change.deny ?? current.deny);
    const updated = await this.deps.store.transaction((tx) => tx.agents.update(name, change));
    if (!updated) throw new AgentError(`no agent named ${name}`, 404);
    await this.reload(name);
    this.deps.applyScope(name, identityOf(updated).scope);
    this.logger.info({ agent: name, allow: updated.allow, deny: updated.deny }, 'agent updated');
    return view(updated);
  }

  /**
   * Reads the agents table again and applies what changed since the last read: sessions of an
   * agent whose token changed or who is gone are cut, and a changed scope is applied to the
   * agent's live sessions. `changedHere` names an agent whose change the caller applies itself.
   */
  reload(changedHere?: string): Promise<void> {
    const next = this.reloading.then(() => this.reloadNow(changedHere));
    this.reloading = next.catch(() => {});
    return next;
  }

  private async reloadNow(changedHere: string | undefined): Promise<void> {
    const agents = await this.deps.store.agents.list();
    const byName = new Map<string, DirectoryEntry>();
    const byTokenHash = new Map<string, DirectoryEntry>();
    for (const agent of agents) {
      const entry: DirectoryEntry = {
        identity: identityOf(agent),
        id: agent.id,
        tokenHash: agent.tokenHash,
        scopeKey: JSON.stringify([agent.allow, agent.deny]),
      };
      byName.set(agent.name, entry);
      byTokenHash.set(agent.tokenHash, entry);
    }
    const before = this.byName;
    this.byName = byName;
    this.byTokenHash = byTokenHash;
    for (const [name, old] of before) {
      if (name === changedHere) continue;
      const now = byName.get(name);
      if (!now || now.tokenHash !== old.tokenHash || now.id !== old.id) this.deps.closeSessions(name);
      else if (now.scopeKey !== old.scopeKey) this.deps.applyScope(name, now.identity.scope);
    }
  }

  private async find(name: string): Promise<Agent> {
    const agent = await this.deps.store.agents.getByName(name);
    if (!agent) throw new AgentError(`no agent named ${name} (see \`diane agents list\`)`, 404);
    return agent;
  }

  /** Best effort, at most once a minute per agent: a busy agent is not a write per request. */
  private touch(id: string): void {
    const at = this.now().getTime();
    if (at - (this.lastTouched.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.lastTouched.set(id, at);
    this.deps.store
      .tryWrite((tx) => tx.agents.touchLastUsed(id, this.now()))
      .catch((err: unknown) => {
        this.logger.debug({ err: (err as Error).message }, 'could not record an agent use');
      });
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
