import { compileGlob, type Matcher, type PatternKind, splitKind } from '../config/glob.js';
import type { UpstreamCatalog } from './upstream.js';

/**
 * The machine owner's consent: what of one configured MCP server Diane offers at all. Set per
 * server in `mcp-servers.json`, on a slave (what the master may see and call) and on the master
 * alike (what agents may see and call of a local server):
 *
 * ```json
 * "filesystem": {
 *   "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"],
 *   "expose": ["read_*", "list_*", "resource:file:///home/me/public/*"],
 *   "hide": ["*secret*"]
 * }
 * ```
 *
 * - Patterns match the server's own names: tool names, prompt names, resource URIs and resource
 *   template URI templates (never the prefixed names or `diane://` URIs agents see).
 * - No `expose`: everything is exposed. With `expose`, only what one of its patterns matches.
 *   `"expose": []` offers nothing of the server (it still runs).
 * - `hide` wins over `expose`.
 * - Globs: `*` matches any run of characters, nothing else is special. A pattern may start with
 *   `tool:`, `prompt:` or `resource:` to apply to that kind only; without one it applies to all
 *   (`config/glob.ts`). A URI whose scheme is one of those words is written with the prefix:
 *   `resource:tool:x`.
 * - A template is listed when its URI template matches; a read, a subscription or a completion
 *   is served only when the URI it names matches, so `file:///home/me/public/*` lets a template
 *   `file:///{path}` read that folder and nothing else.
 *
 * Hidden entries are left out of every list before anything else (limits, names), and a request
 * for one (`tools/call`, `prompts/get`, `resources/read`, `resources/subscribe`,
 * `completion/complete`) is answered exactly like one for a name that does not exist, whoever
 * sends it: on a slave this holds even against a master that sends requests of its own making.
 * The refusal is logged where it happens (and reported to the router's `onRefused` listeners).
 * A reload (SIGHUP, `diane reload`) applies new lists without restarting the server.
 */
export interface ExposureSpec {
  expose?: readonly string[];
  hide?: readonly string[];
}

interface Rule {
  kind?: PatternKind;
  match: Matcher;
}

function compile(patterns: readonly string[]): Rule[] {
  return patterns.map((pattern) => {
    const { kind, glob } = splitKind(pattern);
    return { kind, match: compileGlob(glob) };
  });
}

function anyMatches(rules: readonly Rule[], kind: PatternKind, name: string): boolean {
  for (const rule of rules) {
    if ((rule.kind === undefined || rule.kind === kind) && rule.match(name)) return true;
  }
  return false;
}

/** One server's exposure, compiled; see {@link ExposureSpec}. */
export class Exposure {
  private static everything?: Exposure;
  /** Nothing hidden: the fast path of every server without `expose` or `hide`. */
  readonly isAll: boolean;
  private readonly exposeRules?: readonly Rule[];
  private readonly hideRules: readonly Rule[];
  private readonly filtered = new WeakMap<UpstreamCatalog, UpstreamCatalog>();

  private constructor(
    readonly expose: readonly string[] | undefined,
    readonly hide: readonly string[],
  ) {
    this.isAll = expose === undefined && hide.length === 0;
    this.exposeRules = expose === undefined ? undefined : compile(expose);
    this.hideRules = compile(hide);
  }

  static all(): Exposure {
    Exposure.everything ??= new Exposure(undefined, []);
    return Exposure.everything;
  }

  /** From validated patterns (`config/mcpServers.ts` checks them). */
  static from(spec: ExposureSpec | undefined): Exposure {
    if (spec?.expose === undefined && (spec?.hide ?? []).length === 0) return Exposure.all();
    return new Exposure(spec?.expose ? [...spec.expose] : undefined, [...(spec?.hide ?? [])]);
  }

  /** Whether an entry the server names `name` (a name, a URI, a URI template) is offered. */
  allows(kind: PatternKind, name: string): boolean {
    if (this.isAll) return true;
    if (this.exposeRules && !anyMatches(this.exposeRules, kind, name)) return false;
    return !anyMatches(this.hideRules, kind, name);
  }

  /** Same patterns, so a reload that did not touch them changes nothing. */
  sameAs(other: Exposure): boolean {
    return JSON.stringify([this.expose, this.hide]) === JSON.stringify([other.expose, other.hide]);
  }

  /** The catalog without what is hidden; computed once per catalog. */
  filter(catalog: UpstreamCatalog): UpstreamCatalog {
    if (this.isAll) return catalog;
    let result = this.filtered.get(catalog);
    if (!result) {
      result = {
        tools: catalog.tools.filter((t) => this.allows('tool', t.name)),
        prompts: catalog.prompts.filter((p) => this.allows('prompt', p.name)),
        resources: catalog.resources.filter((r) => this.allows('resource', r.uri)),
        resourceTemplates: catalog.resourceTemplates.filter((t) => this.allows('resource', t.uriTemplate)),
      };
      this.filtered.set(catalog, result);
    }
    return result;
  }

  /** What the server offers now, split into exposed and hidden, for `diane slave status`. */
  summarize(server: string, catalog: UpstreamCatalog): ServerExposure {
    const split = <T>(
      items: readonly T[],
      kind: PatternKind,
      nameOf: (item: T) => string,
    ): ExposedAndHidden => {
      const result: ExposedAndHidden = { exposed: [], hidden: [] };
      for (const item of items) {
        const name = nameOf(item);
        (this.allows(kind, name) ? result.exposed : result.hidden).push(name);
      }
      return result;
    };
    return {
      server,
      tools: split(catalog.tools, 'tool', (t) => t.name),
      prompts: split(catalog.prompts, 'prompt', (p) => p.name),
      resources: split(catalog.resources, 'resource', (r) => r.uri),
      resourceTemplates: split(catalog.resourceTemplates, 'resource', (t) => t.uriTemplate),
    };
  }
}

export interface ExposedAndHidden {
  exposed: string[];
  hidden: string[];
}

/**
 * One server's entries as its own names, split by the owner's consent. `exposed` passed the
 * `expose`/`hide` lists; the router may still refuse some of them (limits, name collisions), and
 * says so in its log.
 */
export interface ServerExposure {
  server: string;
  tools: ExposedAndHidden;
  prompts: ExposedAndHidden;
  resources: ExposedAndHidden;
  resourceTemplates: ExposedAndHidden;
}
