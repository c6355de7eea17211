import { randomUUID } from 'node:crypto';
import { DianeError, ExitCode } from '../errors.js';
import type { SqlExecutor, SqlParams } from './sql.js';
import { fromStoredTime, fromStoredTimeOrNull, toStoredTime } from './time.js';

/** `full`: the agent sees and calls what its scope allows; `discovery`: reserved for a later issue. */
export const AGENT_MODES = ['full', 'discovery'] as const;
export type AgentMode = (typeof AGENT_MODES)[number];

/** 1 to 64 characters, lower-case letters, digits, `_` and `-`, not starting with `_` or `-`. */
export const AGENT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface Agent {
  id: string;
  name: string;
  /** SHA-256 (hex) of the agent's bearer token; the token itself is never stored. */
  tokenHash: string;
  /** Name patterns the agent may use; what `deny` matches is refused even if allowed. */
  allow: string[];
  deny: string[];
  mode: AgentMode;
  /** Whether this agent's call arguments are recorded (redacted) in the audit trail. */
  recordArguments: boolean;
  createdAt: Date;
  updatedAt: Date;
  tokenRotatedAt: Date;
  lastUsedAt: Date | null;
}

export interface NewAgent {
  name: string;
  tokenHash: string;
  allow?: readonly string[];
  deny?: readonly string[];
  mode?: AgentMode;
  recordArguments?: boolean;
}

/** The fields `update` may change; those left out keep their value. */
export interface AgentUpdate {
  allow?: readonly string[];
  deny?: readonly string[];
  mode?: AgentMode;
  recordArguments?: boolean;
}

interface AgentRow {
  id: string;
  name: string;
  token_hash: string;
  allow: string;
  deny: string;
  mode: string;
  record_arguments: number;
  created_at: string;
  updated_at: string;
  token_rotated_at: string;
  last_used_at: string | null;
}

/** Refuses a name the CLI could not type back or that would not fit a table (DianeError, usage). */
export function assertAgentName(name: string): void {
  if (AGENT_NAME_PATTERN.test(name)) return;
  throw new DianeError(
    `invalid agent name ${JSON.stringify(name)}: use 1 to 64 lower-case letters, digits, "_" and "-", ` +
      'starting with a letter or a digit',
    ExitCode.usage,
    'invalid-agent-name',
  );
}

/** Agents: one row per named identity, found on every request by the hash of its token. */
export class AgentsRepo {
  constructor(
    private readonly sql: SqlExecutor,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Creates an agent (no patterns: allowed nothing, until its scope is set). Throws a DianeError
   * (usage) for an invalid or taken name.
   */
  async create(input: NewAgent): Promise<Agent> {
    assertAgentName(input.name);
    try {
      await this.sql.run(
        `INSERT INTO agents
           (id, name, token_hash, allow, deny, mode, record_arguments, created_at, updated_at, token_rotated_at)
         VALUES (@id, @name, @tokenHash, @allow, @deny, @mode, @recordArguments, @now, @now, @now)`,
        {
          id: randomUUID(),
          name: input.name,
          tokenHash: input.tokenHash,
          allow: patternsToText(input.allow ?? []),
          deny: patternsToText(input.deny ?? []),
          mode: checkedMode(input.mode ?? 'full'),
          recordArguments: input.recordArguments ? 1 : 0,
          now: toStoredTime(this.now()),
        },
      );
    } catch (err) {
      if (this.sql.dialect.isUniqueViolation(err, 'agents', 'name')) {
        throw new DianeError(`an agent named "${input.name}" already exists`, ExitCode.usage, 'agent-exists');
      }
      throw err;
    }
    return (await this.getByName(input.name))!;
  }

  getByName(name: string): Promise<Agent | undefined> {
    return this.one('SELECT * FROM agents WHERE name = @name', { name });
  }

  /**
   * The agent holding a token, by the token's hash (`hashAgentToken`). The lookup is an index
   * equality on the hash, so the raw token is never compared, and the timing of a miss says
   * nothing useful about any token.
   */
  findByTokenHash(tokenHash: string): Promise<Agent | undefined> {
    return this.one('SELECT * FROM agents WHERE token_hash = @tokenHash', { tokenHash });
  }

  async list(): Promise<Agent[]> {
    return (await this.sql.all<AgentRow>('SELECT * FROM agents ORDER BY name')).map(toAgent);
  }

  /** False when no agent has that name. */
  async remove(name: string): Promise<boolean> {
    return (await this.sql.run('DELETE FROM agents WHERE name = @name', { name })) === 1;
  }

  /** Replaces the token (its hash): the old one stops working at once. False when no such agent. */
  async rotateTokenHash(name: string, tokenHash: string): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE agents SET token_hash = @tokenHash, token_rotated_at = @now, updated_at = @now
        WHERE name = @name`,
      { name, tokenHash, now: toStoredTime(this.now()) },
    );
    return changed === 1;
  }

  /** Changes scope, mode or argument recording; undefined when no agent has that name. */
  async update(name: string, change: AgentUpdate): Promise<Agent | undefined> {
    // COALESCE: a field passed as NULL keeps its value, so one statement serves every update.
    const changed = await this.sql.run(
      `UPDATE agents
          SET allow = COALESCE(@allow, allow), deny = COALESCE(@deny, deny), mode = COALESCE(@mode, mode),
              record_arguments = COALESCE(@recordArguments, record_arguments), updated_at = @now
        WHERE name = @name`,
      {
        name,
        allow: change.allow === undefined ? null : patternsToText(change.allow),
        deny: change.deny === undefined ? null : patternsToText(change.deny),
        mode: change.mode === undefined ? null : checkedMode(change.mode),
        recordArguments: change.recordArguments === undefined ? null : change.recordArguments ? 1 : 0,
        now: toStoredTime(this.now()),
      },
    );
    return changed === 1 ? this.getByName(name) : undefined;
  }

  /**
   * Records that the agent was used at `at`, unless that was already recorded less than
   * `granularityMs` earlier (then nothing is written). Best effort: run it through
   * `tryWrite` on the request path. Returns whether a row was written.
   */
  async touchLastUsed(id: string, at: Date, granularityMs = 60_000): Promise<boolean> {
    // Use, not a change of the record: updated_at stays. Writes at most once per `granularity`
    // so that a busy agent does not turn every request into a write.
    const changed = await this.sql.run(
      `UPDATE agents SET last_used_at = @at
        WHERE id = @id AND (last_used_at IS NULL OR last_used_at <= @before)`,
      { id, at: toStoredTime(at), before: toStoredTime(new Date(at.getTime() - granularityMs)) },
    );
    return changed === 1;
  }

  private async one(query: string, params: SqlParams): Promise<Agent | undefined> {
    const row = await this.sql.get<AgentRow>(query, params);
    return row === undefined ? undefined : toAgent(row);
  }
}

export function isAgentMode(value: unknown): value is AgentMode {
  return (AGENT_MODES as readonly unknown[]).includes(value);
}

function checkedMode(mode: AgentMode): AgentMode {
  if (!isAgentMode(mode)) throw new TypeError(`unknown agent mode ${JSON.stringify(mode)}`);
  return mode;
}

function patternsToText(patterns: readonly string[]): string {
  if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) {
    throw new TypeError('agent patterns must be an array of strings');
  }
  return JSON.stringify(patterns);
}

function patternsFromText(text: string, column: string, name: string): string[] {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string')) {
    throw new Error(`agents.${column} of "${name}" is not a JSON array of strings`);
  }
  return value;
}

function toAgent(row: AgentRow): Agent {
  return {
    id: row.id,
    name: row.name,
    tokenHash: row.token_hash,
    allow: patternsFromText(row.allow, 'allow', row.name),
    deny: patternsFromText(row.deny, 'deny', row.name),
    // A mode this build does not know (written by a newer one) fails toward seeing less.
    mode: isAgentMode(row.mode) ? row.mode : 'discovery',
    recordArguments: row.record_arguments !== 0,
    createdAt: fromStoredTime(row.created_at),
    updatedAt: fromStoredTime(row.updated_at),
    tokenRotatedAt: fromStoredTime(row.token_rotated_at),
    lastUsedAt: fromStoredTimeOrNull(row.last_used_at),
  };
}
