/**
 * The patterns of agent scopes (`mcp/scope.ts`) and of a server's exposure (`expose` and `hide`
 * in `mcp-servers.json`, `mcp/exposure.ts`).
 *
 * A pattern is a glob over a whole name or URI: `*` matches any run of characters (none
 * included), every other character matches only itself. There is no `?`, no class and no
 * escape, and case matters. `read_*` matches `read_file` and `read_`, not `xread_file`;
 * `*secret*` matches anything that contains `secret`.
 *
 * A pattern may start with a kind, which limits it to that kind of entry: `tool:`, `prompt:` or
 * `resource:` (resources and resource templates alike). Without one it applies to every kind.
 *
 * Text: 1 to {@link MAX_PATTERN_LENGTH} printable ASCII characters, no spaces; a kind prefix must
 * be followed by a glob.
 */
export const MAX_PATTERN_LENGTH = 512;

/** At most this many patterns in one list (an `allow`, a `deny`, an `expose`, a `hide`). */
export const MAX_PATTERNS = 256;

export type PatternKind = 'tool' | 'prompt' | 'resource';

export const PATTERN_KINDS: readonly PatternKind[] = ['tool', 'prompt', 'resource'];

const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

/** Why `pattern` is not an acceptable pattern text; undefined when it is. */
export function patternTextProblem(pattern: unknown): string | undefined {
  if (typeof pattern !== 'string') return 'must be a string';
  if (pattern.length === 0) return 'must not be empty';
  if (pattern.length > MAX_PATTERN_LENGTH) return `must be at most ${MAX_PATTERN_LENGTH} characters`;
  if (!PRINTABLE_ASCII.test(pattern)) return 'may use only printable ASCII characters, without spaces';
  return undefined;
}

/** A pattern split into its optional kind and its glob. */
export interface KindPattern {
  kind?: PatternKind;
  glob: string;
}

/** Splits off a `tool:`, `prompt:` or `resource:` prefix. */
export function splitKind(pattern: string): KindPattern {
  for (const kind of PATTERN_KINDS) {
    if (pattern.startsWith(`${kind}:`)) return { kind, glob: pattern.slice(kind.length + 1) };
  }
  return { glob: pattern };
}

/** Why `pattern` is not an acceptable `expose` or `hide` pattern; undefined when it is. */
export function exposurePatternProblem(pattern: unknown): string | undefined {
  const problem = patternTextProblem(pattern);
  if (problem !== undefined) return problem;
  const { kind, glob } = splitKind(pattern as string);
  if (glob.length === 0) return `"${kind}:" must be followed by a name, URI or glob`;
  return undefined;
}

export type Matcher = (text: string) => boolean;

/**
 * Compiles a glob once into a whole-string matcher. Matching scans the text for the pieces
 * between the stars, each at its first place after the last (which is exact for `*`-only
 * globs): linear in the text, with none of the backtracking of a `.*` regular expression, so no
 * name an upstream chooses can make it slow.
 */
export function compileGlob(glob: string): Matcher {
  const pieces = glob.split('*');
  if (pieces.length === 1) return (text) => text === glob;
  const head = pieces[0]!;
  const tail = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1).filter((p) => p.length > 0);
  const fixed = head.length + tail.length;
  if (fixed === 0 && middle.length === 0) return () => true;
  return (text) => {
    if (text.length < fixed || !text.startsWith(head) || !text.endsWith(tail)) return false;
    let from = head.length;
    const end = text.length - tail.length;
    for (const piece of middle) {
      const at = text.indexOf(piece, from);
      if (at < 0 || at + piece.length > end) return false;
      from = at + piece.length;
    }
    return true;
  };
}
