import type { JsonObject } from '../upstream.js';
import { stem, synonymsOf, terms } from './text.js';

/** One tool as the index receives it: what an agent could call, and where it lives. */
export interface ToolEntry {
  /** The exposed name agents call: `<server>_<tool>` locally, `<host>_<server>_<tool>` on a slave. */
  name: string;
  /** The slave host id, or `local` for the master's own servers. */
  host: string;
  server: string;
  /** The tool's name on its server. */
  originalName: string;
  title?: string;
  description?: string;
  inputSchema: JsonObject;
}

export interface SearchOptions {
  query: string;
  /** Only tools of this host (exact host id). */
  host?: string;
  /** Only tools of this server (exact server name). */
  server?: string;
  /** Most results returned; below 1 returns nothing, capped at `MAX_SEARCH_LIMIT`. */
  limit: number;
  /**
   * The caller's view of the catalogue (an agent's scope). Anything it refuses is invisible:
   * never returned, never counted, and not part of the statistics the scores are computed from,
   * so results are exactly those of an index that holds only the visible tools. Called at most
   * once per indexed tool and search; it must not change or search the index.
   */
  filter?: (exposedName: string, host: string) => boolean;
  /**
   * Fold identical tools (same server, tool name and definition) on several hosts into one result,
   * the best-scoring copy, listing the others in `alsoOn`. Default true: a tool that runs on 200
   * hosts would otherwise fill every result page with copies of itself.
   */
  groupCopies?: boolean;
}

export interface SearchResult {
  name: string;
  host: string;
  server: string;
  title?: string;
  /** The description on one line, cut to about 200 characters. */
  description: string;
  /** The tool's input schema as its server gave it (shared with the index: do not mutate). */
  inputSchema: JsonObject;
  online: boolean;
  /** Relevance, higher is better; only meaningful against the other results of one search. */
  score: number;
  /** The same tool on other hosts that matched too, best first, at most `MAX_ALSO_ON` names. */
  alsoOn?: string[];
  /** How many other copies matched (may be more than `alsoOn` lists). */
  alsoOnCount?: number;
}

/** One line of `summary()`: a server on a host. */
export interface ServerSummary {
  host: string;
  server: string;
  online: boolean;
  toolCount: number;
}

export const MAX_SEARCH_LIMIT = 1000;
/** Names listed in `alsoOn`. */
export const MAX_ALSO_ON = 5;
/** Characters of the one-line description in a result. */
export const DESCRIPTION_CHARS = 200;

// ---------------------------------------------------------------------------------------------
// Ranking parameters. See the class comment for how they combine.

/** The fields of a tool document, in the order of FIELD_WEIGHT and FIELD_B. */
const Field = { Name: 0, Title: 1, Description: 2, ArgName: 3, ArgText: 4, Scope: 5 } as const;
const FIELD_COUNT = 6;
/** Term frequency per field is packed into one 30-bit integer: 5 bits per field. */
const TF_BITS = 5;
const TF_MAX = (1 << TF_BITS) - 1;

/** BM25F weight of each field (Name, Title, Description, ArgName, ArgText, Scope). */
const FIELD_WEIGHT = [3, 1.5, 1, 1.5, 0.5, 1] as const;
/** BM25F length normalisation of each field: 0 ignores the length, 1 normalises fully. */
const FIELD_B = [0.3, 0.4, 0.75, 0.3, 0.75, 0] as const;
const K1 = 1.2;
/** A synonym counts this much of the word the query used. */
const SYNONYM_WEIGHT = 0.7;
/** Multipliers on a tool's score when a query word is its exact name or the query a prefix of it. */
const EXACT_EXPOSED_BOOST = 3;
const EXACT_ORIGINAL_BOOST = 2;
const PREFIX_BOOST = 1.25;
/** The host of the master's own servers. */
const LOCAL_HOST = 'local';
/** When the query names a host ("on the build box"), tools of other hosts count this much. */
const OTHER_HOST_FACTOR = 0.5;
/** Offline tools stay findable but lose ties to an online copy. */
const OFFLINE_FACTOR = 0.9;
/** Query words considered; the rest of a longer query is ignored. */
const MAX_QUERY_WORDS = 32;

/** Bounds on what one definition can put in the index (a slave is not trusted to be small). */
const MAX_TEXT_CHARS = 4096;
const MAX_SCHEMA_PROPERTIES = 128;
const MAX_ENUM_VALUES = 16;

interface UpstreamRecord {
  key: string;
  online: boolean;
  docs: number[];
}

interface Doc {
  entry: ToolEntry;
  upstream: UpstreamRecord;
  /** Distinct terms, to take the doc out of the postings again. */
  terms: string[];
  lowerName: string;
  lowerOriginal: string;
  summary: string;
  /** Identical definitions share a group (see `groupCopies`). */
  group: number;
}

interface QueryWord {
  variants: { term: string; weight: number }[];
}

/**
 * An in-memory search index over the tool definitions of many upstreams, updated one upstream at
 * a time.
 *
 * **Ranking** (BM25F). Each tool is a document with six fields: its original name, title,
 * description, argument names (the input schema's `properties`, nested ones included),
 * argument text (their descriptions, titles and enum values), and its scope (host and server
 * names, also joined when they contain separators). Text goes through `text.ts`: split on
 * `_ - .`, camelCase and digits, lowercased, stopwords dropped, lightly stemmed. A term's
 * frequency in each field is weighted (name 3, title 1.5, description 1, argument names 1.5,
 * argument text 0.5, scope 1), length-normalised per field (b from 0 for the scope to 0.75 for
 * descriptions), summed, saturated with k1 = 1.2 and multiplied by the term's IDF.
 * - Synonyms (`text.ts`): per query word the best of the word and its synonyms counts, a synonym
 *   at 0.7, so "remove" finds `delete_entities` without a tool that says both counting twice.
 * - Compounds: two adjacent query words that together are an indexed term count as that one
 *   term ("build box" → host `buildbox`, "file system" → server `filesystem`).
 * - Hosts: when a query word (or two joined) is a host id, tools of other hosts count ×0.5, so
 *   "read a file on the laptop" puts the laptop's copy first. Server names are ordinary words
 *   ("time", "fetch", "memory" are too common to filter on) and only match the scope field.
 * - Names: a query word equal to a tool's exposed name ×3, to its original name ×2; a one-word
 *   query that is a prefix of either ×1.25.
 * - Offline tools ×0.9: still found, but an online copy comes first.
 * - Identical tools on several hosts fold into their best copy (`groupCopies`).
 * - Ties go to the smaller exposed name, so results never depend on arrival order.
 *
 * **Scope.** With a `filter`, the document count, field lengths and document frequencies are
 * those of the visible tools only, and so are host mentions and compounds: an agent gets exactly
 * the results, scores included, of an index that never held what it cannot see.
 *
 * **Cost.** Postings map each term to the tools containing it with their per-field
 * frequencies packed in one integer; field lengths are kept per tool and summed per field.
 * `upsertUpstream` and `removeUpstream` touch only that upstream's tools and their terms. A
 * search walks the postings of its terms (plus one pass over all tools when a `filter` is given,
 * to compute the visible statistics) and keeps the best `limit` in a small heap.
 */
export class ToolIndex {
  private readonly upstreams = new Map<string, UpstreamRecord>();
  private readonly postings = new Map<string, Map<number, number>>();
  private readonly docs: (Doc | undefined)[] = [];
  private readonly freeIds: number[] = [];
  /** FIELD_COUNT lengths per doc id. */
  private lengths = new Float64Array(0);
  private readonly totalLength = new Float64Array(FIELD_COUNT);
  private docCount = 0;
  /** Definition fingerprint → group id and how many docs use it; and back. */
  private readonly groups = new Map<string, { id: number; refs: number }>();
  private readonly groupKeys: string[] = [];
  private readonly freeGroupIds: number[] = [];
  /** A host id without separators ("buildbox" for build-box) → host ids → their tool counts. */
  private readonly hostsByBare = new Map<string, Map<string, number>>();
  private nextGroupId = 0;
  // Scratch space of a search, indexed by doc id (reused: JavaScript runs one search at a time).
  private score = new Float64Array(0);
  private wordScore = new Float64Array(0);
  private visible = new Uint8Array(0);

  /** Tools in the index, visible or not. For the operator, not for an agent. */
  get size(): number {
    return this.docCount;
  }

  hasUpstream(key: string): boolean {
    return this.upstreams.has(key);
  }

  /**
   * Replaces every tool of one upstream (a local server, or a slave host with all its servers).
   * `online` defaults to the upstream's current state, or true for a new one.
   */
  upsertUpstream(key: string, entries: readonly ToolEntry[], online?: boolean): void {
    const previous = this.upstreams.get(key);
    if (previous) this.dropDocs(previous);
    const record: UpstreamRecord = { key, online: online ?? previous?.online ?? true, docs: [] };
    this.upstreams.set(key, record);
    for (const entry of entries) record.docs.push(this.addDoc(entry, record));
  }

  /** Marks an upstream's tools online or offline; they stay in the index. False if unknown. */
  setOnline(key: string, online: boolean): boolean {
    const record = this.upstreams.get(key);
    if (!record) return false;
    record.online = online;
    return true;
  }

  removeUpstream(key: string): boolean {
    const record = this.upstreams.get(key);
    if (!record) return false;
    this.dropDocs(record);
    this.upstreams.delete(key);
    return true;
  }

  /**
   * Servers per host with their visible tool counts, sorted by host (`local` first) then
   * server. Servers with no visible tool are left out.
   */
  summary(filter?: SearchOptions['filter']): ServerSummary[] {
    const byKey = new Map<string, ServerSummary>();
    for (const record of this.upstreams.values()) {
      for (const id of record.docs) {
        const { entry } = this.docs[id]!;
        if (filter && !filter(entry.name, entry.host)) continue;
        const key = `${entry.host}\u0000${entry.server}`;
        const line = byKey.get(key);
        if (line) line.toolCount += 1;
        else byKey.set(key, { host: entry.host, server: entry.server, online: record.online, toolCount: 1 });
      }
    }
    return [...byKey.values()].sort(
      (a, b) => hostOrder(a.host, b.host) || (a.server < b.server ? -1 : a.server > b.server ? 1 : 0),
    );
  }

  search(options: SearchOptions): SearchResult[] {
    const limit = Math.min(Math.floor(options.limit), MAX_SEARCH_LIMIT);
    if (!(limit >= 1)) return [];
    const { filter, host, server } = options;
    const capacity = this.docs.length;
    this.ensureScratch(capacity);
    const visible = filter ? this.visible : undefined;
    let mentioned = this.mentionedHosts(options.query);

    // Statistics: of the whole index, or of what the filter lets the caller see.
    let n = this.docCount;
    const avgLength = new Float64Array(FIELD_COUNT);
    if (visible) {
      n = 0;
      const total = new Float64Array(FIELD_COUNT);
      const mentionedVisible = new Set<string>();
      for (let id = 0; id < capacity; id++) {
        const doc = this.docs[id];
        const ok = doc !== undefined && filter!(doc.entry.name, doc.entry.host);
        visible[id] = ok ? 1 : 0;
        if (!ok) continue;
        if (mentioned.has(doc.entry.host)) mentionedVisible.add(doc.entry.host);
        n += 1;
        for (let f = 0; f < FIELD_COUNT; f++) total[f]! += this.lengths[id * FIELD_COUNT + f]!;
      }
      for (let f = 0; f < FIELD_COUNT; f++) avgLength[f] = n > 0 ? total[f]! / n : 0;
      mentioned = mentionedVisible;
    } else {
      for (let f = 0; f < FIELD_COUNT; f++) avgLength[f] = n > 0 ? this.totalLength[f]! / n : 0;
    }
    if (n === 0) return [];
    const visibleDf = (list: Map<number, number>): number => {
      if (!visible) return list.size;
      let df = 0;
      for (const id of list.keys()) df += visible[id]!;
      return df;
    };
    const queryWords = this.parseQuery(options.query, (term) => {
      const list = this.postings.get(term);
      return list !== undefined && visibleDf(list) > 0;
    });
    if (queryWords.length === 0) return [];

    const accepts = (id: number): boolean => {
      if (visible && visible[id] === 0) return false;
      if (host === undefined && server === undefined) return true;
      const { entry } = this.docs[id]!;
      return (host === undefined || entry.host === host) && (server === undefined || entry.server === server);
    };

    // Per query word: the best of its variants per doc, then summed over words.
    const score = this.score;
    const wordScore = this.wordScore;
    const candidates: number[] = [];
    const lengths = this.lengths;
    for (const word of queryWords) {
      const touched: number[] = [];
      for (const { term, weight } of word.variants) {
        const list = this.postings.get(term);
        if (!list) continue;
        const df = visibleDf(list);
        if (df === 0) continue;
        const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5)) * weight;
        list.forEach((packed, id) => {
          if (!accepts(id)) return;
          let tf = 0;
          for (let f = 0; f < FIELD_COUNT; f++) {
            const count = (packed >>> (f * TF_BITS)) & TF_MAX;
            if (count === 0) continue;
            const b = FIELD_B[f]!;
            const norm = 1 - b + (b * lengths[id * FIELD_COUNT + f]!) / avgLength[f]!;
            tf += (FIELD_WEIGHT[f]! * count) / norm;
          }
          const s = (idf * tf * (K1 + 1)) / (K1 + tf);
          const before = wordScore[id]!;
          if (before === 0) touched.push(id);
          if (s > before) wordScore[id] = s;
        });
      }
      for (const id of touched) {
        if (score[id] === 0) candidates.push(id);
        score[id]! += wordScore[id]!;
        wordScore[id] = 0;
      }
    }

    // Exact and prefix name matches, a host named in the query, offline penalty.
    const nameWords = new Set(
      options.query
        .toLowerCase()
        .split(/\s+/)
        .map((w) => w.replace(/^[^\p{L}\p{N}_]+|[^\p{L}\p{N}_]+$/gu, ''))
        .filter((w) => w !== ''),
    );
    const single = nameWords.size === 1 ? [...nameWords][0]! : undefined;
    for (const id of candidates) {
      const doc = this.docs[id]!;
      let factor = 1;
      if (nameWords.has(doc.lowerName)) factor = EXACT_EXPOSED_BOOST;
      else if (nameWords.has(doc.lowerOriginal)) factor = EXACT_ORIGINAL_BOOST;
      else if (
        single !== undefined &&
        single.length >= 3 &&
        (doc.lowerOriginal.startsWith(single) || doc.lowerName.startsWith(single))
      ) {
        factor = PREFIX_BOOST;
      }
      if (mentioned.size > 0 && !mentioned.has(doc.entry.host)) factor *= OTHER_HOST_FACTOR;
      if (!doc.upstream.online) factor *= OFFLINE_FACTOR;
      score[id]! *= factor;
    }

    const better = (a: number, b: number): boolean => {
      const sa = score[a]!;
      const sb = score[b]!;
      return sa > sb || (sa === sb && this.docs[a]!.entry.name < this.docs[b]!.entry.name);
    };

    let results: SearchResult[];
    if (options.groupCopies === false) {
      results = topK(candidates, limit, better).map((id) => this.result(id, score[id]!));
    } else {
      const members = new Map<number, number[]>();
      for (const id of candidates) {
        const group = this.docs[id]!.group;
        const list = members.get(group);
        if (list) list.push(id);
        else members.set(group, [id]);
      }
      const leaders: number[] = [];
      for (const list of members.values()) {
        let best = list[0]!;
        for (const id of list) if (better(id, best)) best = id;
        leaders.push(best);
      }
      results = topK(leaders, limit, better).map((id) => {
        const result = this.result(id, score[id]!);
        const others = members.get(this.docs[id]!.group)!.filter((other) => other !== id);
        if (others.length > 0) {
          result.alsoOn = topK(others, MAX_ALSO_ON, better).map((other) => this.docs[other]!.entry.name);
          result.alsoOnCount = others.length;
        }
        return result;
      });
    }
    for (const id of candidates) score[id] = 0;
    return results;
  }

  private result(id: number, score: number): SearchResult {
    const doc = this.docs[id]!;
    const { entry } = doc;
    return {
      name: entry.name,
      host: entry.host,
      server: entry.server,
      ...(entry.title ? { title: entry.title } : {}),
      description: doc.summary,
      inputSchema: entry.inputSchema,
      online: doc.upstream.online,
      score: Math.round(score * 1000) / 1000,
    };
  }

  /**
   * Hosts whose id (separators ignored) is a word of the query or two adjacent words joined.
   * `local` is left out: it is an everyday word of tool descriptions ("local branches", "local
   * timezone"), and the master's own servers are not a place an agent names that way.
   */
  private mentionedHosts(query: string): Set<string> {
    const found = new Set<string>();
    if (this.hostsByBare.size === 0) return found;
    const bare = query
      .toLowerCase()
      .split(/\s+/)
      .slice(0, MAX_QUERY_WORDS)
      .map((w) => w.replace(/[^\p{L}\p{N}]/gu, ''));
    const check = (word: string) => {
      const hosts = this.hostsByBare.get(word);
      if (hosts) for (const h of hosts.keys()) if (h !== LOCAL_HOST) found.add(h);
    };
    for (let i = 0; i < bare.length; i++) {
      if (!bare[i]) continue;
      check(bare[i]!);
      if (bare[i + 1]) check(bare[i]! + bare[i + 1]!);
    }
    return found;
  }

  /**
   * Query words: each term of each word with its synonyms, in order, without repeats. Two
   * adjacent words that together are a term the caller can see ("build box" → `buildbox`) count
   * as that one term instead of two.
   */
  private parseQuery(query: string, known: (term: string) => boolean): QueryWord[] {
    const raw = query.toLowerCase().split(/\s+/).filter(Boolean).slice(0, MAX_QUERY_WORDS);
    const bare = raw.map((w) => w.replace(/[^\p{L}\p{N}]/gu, ''));
    const seen = new Set<string>();
    const out: QueryWord[] = [];
    const add = (term: string) => {
      if (seen.has(term) || out.length >= MAX_QUERY_WORDS) return;
      seen.add(term);
      out.push({
        variants: [
          { term, weight: 1 },
          ...synonymsOf(term).map((s) => ({ term: s, weight: SYNONYM_WEIGHT })),
        ],
      });
    };
    for (let i = 0; i < raw.length; i++) {
      if (i + 1 < raw.length && bare[i] && bare[i + 1]) {
        const joined = stem(bare[i]! + bare[i + 1]!);
        if (known(joined)) {
          add(joined);
          i += 1;
          continue;
        }
      }
      for (const term of terms(raw[i]!)) add(term);
    }
    return out;
  }

  private addDoc(entry: ToolEntry, upstream: UpstreamRecord): number {
    const fields = analyse(entry);
    const id = this.freeIds.pop() ?? this.docs.length;
    if (id === this.docs.length) this.docs.push(undefined);
    this.ensureLengths(this.docs.length);

    const packedByTerm = new Map<string, number>();
    for (let f = 0; f < FIELD_COUNT; f++) {
      const list = fields[f]!;
      const shift = f * TF_BITS;
      this.lengths[id * FIELD_COUNT + f] = list.length;
      this.totalLength[f]! += list.length;
      for (const term of list) {
        const packed = packedByTerm.get(term) ?? 0;
        if (((packed >>> shift) & TF_MAX) < TF_MAX) packedByTerm.set(term, packed + (1 << shift));
      }
    }
    for (const [term, packed] of packedByTerm) {
      let list = this.postings.get(term);
      if (!list) {
        list = new Map();
        this.postings.set(term, list);
      }
      list.set(id, packed);
    }
    this.docs[id] = {
      entry,
      upstream,
      terms: [...packedByTerm.keys()],
      lowerName: entry.name.toLowerCase(),
      lowerOriginal: entry.originalName.toLowerCase(),
      summary: oneLine(entry.description ?? '', DESCRIPTION_CHARS),
      group: this.groupOf(entry),
    };
    const bare = bareName(entry.host);
    let hosts = this.hostsByBare.get(bare);
    if (!hosts) {
      hosts = new Map();
      this.hostsByBare.set(bare, hosts);
    }
    hosts.set(entry.host, (hosts.get(entry.host) ?? 0) + 1);
    this.docCount += 1;
    return id;
  }

  private dropDocs(record: UpstreamRecord): void {
    for (const id of record.docs) {
      const doc = this.docs[id]!;
      for (const term of doc.terms) {
        const list = this.postings.get(term)!;
        list.delete(id);
        if (list.size === 0) this.postings.delete(term);
      }
      for (let f = 0; f < FIELD_COUNT; f++) {
        this.totalLength[f]! -= this.lengths[id * FIELD_COUNT + f]!;
        this.lengths[id * FIELD_COUNT + f] = 0;
      }
      this.releaseGroup(doc.group);
      const bare = bareName(doc.entry.host);
      const hosts = this.hostsByBare.get(bare)!;
      const left = hosts.get(doc.entry.host)! - 1;
      if (left > 0) hosts.set(doc.entry.host, left);
      else hosts.delete(doc.entry.host);
      if (hosts.size === 0) this.hostsByBare.delete(bare);
      this.docs[id] = undefined;
      this.freeIds.push(id);
      this.docCount -= 1;
    }
    record.docs = [];
  }

  private groupOf(entry: ToolEntry): number {
    const key = fingerprint(entry);
    const known = this.groups.get(key);
    if (known) {
      known.refs += 1;
      return known.id;
    }
    const id = this.freeGroupIds.pop() ?? this.nextGroupId++;
    this.groups.set(key, { id, refs: 1 });
    this.groupKeys[id] = key;
    return id;
  }

  private releaseGroup(id: number): void {
    const key = this.groupKeys[id]!;
    const known = this.groups.get(key)!;
    known.refs -= 1;
    if (known.refs === 0) {
      this.groups.delete(key);
      this.groupKeys[id] = '';
      this.freeGroupIds.push(id);
    }
  }

  private ensureLengths(docs: number): void {
    if (this.lengths.length >= docs * FIELD_COUNT) return;
    const next = new Float64Array(Math.max(docs, 64, (this.lengths.length / FIELD_COUNT) * 2) * FIELD_COUNT);
    next.set(this.lengths);
    this.lengths = next;
  }

  private ensureScratch(capacity: number): void {
    if (this.score.length >= capacity) return;
    const size = Math.max(capacity, 64, this.score.length * 2);
    this.score = new Float64Array(size);
    this.wordScore = new Float64Array(size);
    this.visible = new Uint8Array(size);
  }
}

/** The terms of each field of one tool, in `Field` order. */
function analyse(entry: ToolEntry): string[][] {
  const fields: string[][] = Array.from({ length: FIELD_COUNT }, () => []);
  fields[Field.Name] = terms(entry.originalName);
  fields[Field.Title] = terms(clip(entry.title));
  fields[Field.Description] = terms(clip(entry.description));
  const argNames: string[] = [];
  const argText: string[] = [];
  let budget = MAX_SCHEMA_PROPERTIES;
  const walk = (schema: unknown, depth: number) => {
    const properties = isObject(schema) ? schema.properties : undefined;
    if (!isObject(properties)) return;
    for (const [name, sub] of Object.entries(properties)) {
      if (budget-- <= 0) return;
      argNames.push(name);
      if (!isObject(sub)) continue;
      if (typeof sub.description === 'string') argText.push(clip(sub.description));
      if (typeof sub.title === 'string') argText.push(clip(sub.title));
      const values = Array.isArray(sub.enum) ? sub.enum : isObject(sub.items) ? sub.items.enum : undefined;
      if (Array.isArray(values)) {
        for (const v of values.slice(0, MAX_ENUM_VALUES)) if (typeof v === 'string') argText.push(clip(v));
      }
      if (depth < 2) walk(isObject(sub.properties) ? sub : sub.items, depth + 1);
    }
  };
  walk(entry.inputSchema, 1);
  fields[Field.ArgName] = terms(argNames.join(' '));
  fields[Field.ArgText] = terms(argText.join(' '));
  fields[Field.Scope] = [...scopeTerms(entry.host), ...scopeTerms(entry.server)];
  return fields;
}

/** A host or server name's terms, plus the name joined when it has separators (`build-box`). */
function scopeTerms(name: string): string[] {
  const out = terms(name);
  const joined = stem(bareName(name));
  if (joined.length > 0 && joined.length <= 64 && !out.includes(joined)) out.push(joined);
  return out;
}

/** Lowercase letters and digits only: `build-box` → `buildbox`. */
function bareName(name: string): string {
  return name.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');
}

function fingerprint(entry: ToolEntry): string {
  return JSON.stringify([
    entry.server,
    entry.originalName,
    entry.title,
    entry.description,
    entry.inputSchema,
  ]);
}

function clip(text: string | undefined): string {
  if (!text) return '';
  return text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whitespace collapsed to single spaces, cut at a word boundary near `max` characters. */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).replace(/[\s,;:.-]+$/, '')}…`;
}

function hostOrder(a: string, b: string): number {
  if (a === b) return 0;
  if (a === LOCAL_HOST) return -1;
  if (b === LOCAL_HOST) return 1;
  return a < b ? -1 : 1;
}

/** The best `k` of `ids` by `better`, best first: a min-heap of size k over one pass. */
function topK(ids: readonly number[], k: number, better: (a: number, b: number) => boolean): number[] {
  const heap: number[] = [];
  // heap[0] is the worst kept: `better(parent, child)` is false for every parent/child pair.
  const worse = (a: number, b: number) => better(b, a);
  const siftUp = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!worse(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (const id of ids) {
    if (heap.length < k) {
      heap.push(id);
      siftUp(heap.length - 1);
    } else if (better(id, heap[0]!)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
}
