import { z } from 'zod';
import {
  compileGlob,
  MAX_PATTERNS,
  type Matcher,
  type PatternKind,
  patternTextProblem,
  splitKind,
} from '../config/glob.js';

/**
 * The host of the entries of MCP servers configured on this machine (the master's own
 * `mcp-servers.json`). A slave's entries belong to its host id, which can never be `local`:
 * `pairing/hostId.ts` reserves the word.
 */
export const LOCAL_HOST = 'local';

/** What a scope pattern can be limited to: resources and resource templates are both `resource`. */
export type EntryKind = PatternKind;

/**
 * A scope that cannot be used: `pattern` is the bad pattern (undefined when a whole list is
 * wrong, e.g. too long), `reason` says why. The message is meant for a person.
 */
export class ScopePatternError extends Error {
  constructor(
    readonly pattern: string | undefined,
    readonly reason: string,
  ) {
    super(
      pattern === undefined
        ? `invalid scope: ${reason}`
        : `invalid scope pattern ${JSON.stringify(pattern.slice(0, 80))}: ${reason}`,
    );
    this.name = 'ScopePatternError';
  }
}

const HOST_GLOB = /^[a-z0-9*-]+$/;
/** A leading `word:` that is not a kind: a typo (`tools:`), or a URI that is not a Diane URI. */
const OTHER_PREFIX = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/** Why `pattern` is not a usable scope pattern; undefined when it is. */
export function scopePatternProblem(pattern: unknown): string | undefined {
  const textProblem = patternTextProblem(pattern);
  if (textProblem !== undefined) return textProblem;
  const text = pattern as string;
  if (text.startsWith('host:')) {
    const glob = text.slice('host:'.length);
    if (glob.length === 0) return '"host:" must be followed by a host name or glob';
    if (!HOST_GLOB.test(glob)) return 'a host glob may use only a-z, 0-9, "-" and "*"';
    return undefined;
  }
  const { kind, glob } = splitKind(text);
  if (glob.length === 0) return `"${kind}:" must be followed by a name or glob`;
  const other = OTHER_PREFIX.exec(glob)?.[1];
  if (other !== undefined && other !== 'diane') {
    return `unknown prefix "${other}:": use tool:, prompt:, resource: or host:; resources are matched by their diane:// URI`;
  }
  return undefined;
}

/** One scope pattern, for zod schemas (the admin API, the CLI). */
export const scopePatternSchema = z.string().superRefine((pattern, ctx) => {
  const problem = scopePatternProblem(pattern);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** `{ allow, deny }` as stored or sent: at most {@link MAX_PATTERNS} patterns per list. */
export const scopeSpecSchema = z
  .object({
    allow: z.array(scopePatternSchema).max(MAX_PATTERNS),
    deny: z.array(scopePatternSchema).max(MAX_PATTERNS).default([]),
  })
  .strict();

export interface ScopeSpec {
  allow: readonly string[];
  deny?: readonly string[];
}

interface Rule {
  /** Only entries of this kind; undefined: every kind. */
  kind?: EntryKind;
  /** Matched against the entry's host rather than its exposed name or URI. */
  onHost: boolean;
  match: Matcher;
}

function compileRule(pattern: string): Rule {
  if (pattern.startsWith('host:')) return { onHost: true, match: compileGlob(pattern.slice('host:'.length)) };
  const { kind, glob } = splitKind(pattern);
  return { kind, onHost: false, match: compileGlob(glob) };
}

function anyMatches(rules: readonly Rule[], kind: EntryKind, exposed: string, host: string): boolean {
  for (const rule of rules) {
    if (rule.kind !== undefined && rule.kind !== kind) continue;
    if (rule.match(rule.onHost ? host : exposed)) return true;
  }
  return false;
}

/**
 * What one agent may see and use: entries are matched in the form the agent sees them.
 *
 * - Tools and prompts by their exposed name: `workstation_filesystem_read_file`.
 * - Resources and resource templates by their Diane URI:
 *   `diane://workstation/filesystem/file:///home/me/notes.md`. A template is listed when its
 *   URI template matches; a read, a subscription or a completion is allowed when the URI it
 *   names matches (so `diane://workstation/filesystem/file:///home/me/*` allows reads under that
 *   folder, whatever template produced them).
 * - `host:GLOB` matches every entry of the hosts the glob matches: a slave's host id, or
 *   {@link LOCAL_HOST} for the servers configured on the master itself.
 * - `tool:`, `prompt:` or `resource:` before a glob limits it to that kind.
 *
 * Globs: `*` matches any run of characters, nothing else is special (`config/glob.ts`).
 * An entry is in scope when some `allow` pattern matches it and no `deny` pattern does: deny
 * wins. An empty `allow` allows nothing. `Scope.full()` (or `allow: ['*']` with no deny) is the
 * owner's scope: everything, without matching.
 *
 * Examples:
 * - `{ allow: ['host:workstation'] }`: everything of the workstation, nothing else.
 * - `{ allow: ['*'], deny: ['tool:*_delete_*', 'host:laptop'] }`: all but deleting tools and the laptop.
 * - `{ allow: ['tool:local_github_*', 'resource:diane://local/docs/*'] }`: one local server's
 *   tools and another's resources.
 */
export class Scope {
  private static fullScope?: Scope;
  readonly isFull: boolean;
  private readonly allowRules: readonly Rule[];
  private readonly denyRules: readonly Rule[];

  private constructor(
    readonly allow: readonly string[],
    readonly deny: readonly string[],
  ) {
    this.isFull = deny.length === 0 && allow.includes('*');
    this.allowRules = allow.map(compileRule);
    this.denyRules = deny.map(compileRule);
  }

  /** Everything, now and whatever appears later. */
  static full(): Scope {
    Scope.fullScope ??= new Scope(['*'], []);
    return Scope.fullScope;
  }

  /** Checks and compiles the patterns; throws a {@link ScopePatternError} for the first bad one. */
  static parse(spec: ScopeSpec): Scope {
    const deny = spec.deny ?? [];
    for (const [name, list] of [
      ['allow', spec.allow],
      ['deny', deny],
    ] as const) {
      if (list.length > MAX_PATTERNS) {
        throw new ScopePatternError(
          undefined,
          `${name} has ${list.length} patterns; at most ${MAX_PATTERNS}`,
        );
      }
      for (const pattern of list) {
        const problem = scopePatternProblem(pattern);
        if (problem !== undefined) throw new ScopePatternError(String(pattern), problem);
      }
    }
    return new Scope([...spec.allow], [...deny]);
  }

  /** Whether the entry an agent sees as `exposed` (name or URI), of `host`, is in scope. */
  allows(kind: EntryKind, exposed: string, host: string): boolean {
    if (this.isFull) return true;
    return (
      anyMatches(this.allowRules, kind, exposed, host) && !anyMatches(this.denyRules, kind, exposed, host)
    );
  }

  toJSON(): { allow: string[]; deny: string[] } {
    return { allow: [...this.allow], deny: [...this.deny] };
  }
}
