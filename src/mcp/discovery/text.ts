/**
 * Text normalisation shared by the discovery index and its queries: the same function turns a
 * tool's name, title, description and argument names into index terms and a query into query
 * terms, so both sides always agree.
 *
 * 1. Split into words: camelCase and letter/digit boundaries start a new word, anything that is
 *    not a letter or a digit separates words (`list_directory_with_sizes`, `oldText`,
 *    `get-tiny-image`, `base64`). A word that mixes letters and digits is also kept whole, so
 *    `k8s` and a host named `db1` stay findable as typed.
 * 2. Lowercase; drop one-letter words and a short list of English function words.
 * 3. Stem with a few suffix rules (see `stem`): enough to make plurals, -ing, -ed and a
 *    trailing e meet (`files`/`file`, `directories`/`directory`, `running`/`run`,
 *    `created`/`create`/`creating`). Stems are internal keys, never shown.
 */

/** Words that say nothing about what a tool does. Checked before stemming. */
const STOPWORDS = new Set(
  (
    'a an the and or but of to in on at for with by from into onto as is are was were be been being ' +
    'it its this that these those there here my me mine your yours our we us you he she they them ' +
    'i do does did done can could should would will shall may might must please some any all each ' +
    'every no not if then than so such what which who whom whose when where why how just also only ' +
    'very about via per under over up down out off again tool tools use using used called named'
  ).split(' '),
);

/** Longest word considered; anything longer is noise (hashes, base64) and costs memory. */
const MAX_WORD_LENGTH = 40;

/** Words of `text`, lowercased, before stopword removal and stemming. */
export function words(text: string): string[] {
  const out: string[] = [];
  // A hand-written scan rather than a split on /[^\p{L}\p{N}]+/u: indexing a catalogue spends
  // most of its time here. Runs of ASCII lowercase letters (most of a description) are words as
  // they are; a run with capitals, digits or non-ASCII letters takes the slower path.
  let start = -1;
  let plain = true;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 32;
    let inWord: boolean;
    if (c >= 97 && c <= 122) inWord = true;
    else if ((c >= 65 && c <= 90) || (c >= 48 && c <= 57)) {
      inWord = true;
      plain = false;
    } else if (c < 128) inWord = false;
    else {
      inWord = LETTER_OR_DIGIT.test(text[i]!) || (c >= 0xd800 && c <= 0xdfff);
      if (inWord) plain = false;
    }
    if (inWord) {
      if (start < 0) start = i;
      continue;
    }
    if (start >= 0) {
      const length = i - start;
      if (length >= 2 && length <= MAX_WORD_LENGTH) {
        const chunk = text.slice(start, i);
        if (plain) out.push(chunk);
        else splitWord(chunk, out);
      }
      start = -1;
      plain = true;
    }
  }
  return out;
}

const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
const ASCII_WORD = /^[A-Za-z0-9]+$/;

const LOWER = 0;
const UPPER = 1;
const DIGIT = 2;

function asciiClass(c: number): number {
  return c >= 97 ? LOWER : c >= 65 ? UPPER : DIGIT;
}

/**
 * The ASCII case of `splitWord`, without regular expressions: a word starts at a lowercase →
 * capital step (oldText), before the last capital of a run followed by a lowercase letter
 * (HTTPResponse) and wherever letters and digits meet (base64).
 */
function splitAscii(chunk: string, out: string[]): void {
  let start = 0;
  let pieces = 0;
  let digits = false;
  let letters = false;
  for (let i = 0; i < chunk.length; i++) {
    const cur = asciiClass(chunk.charCodeAt(i));
    if (cur === DIGIT) digits = true;
    else letters = true;
    if (i === 0) continue;
    const prev = asciiClass(chunk.charCodeAt(i - 1));
    const next = i + 1 < chunk.length ? asciiClass(chunk.charCodeAt(i + 1)) : -1;
    const boundary =
      (prev === LOWER && cur === UPPER) ||
      (prev === UPPER && cur === UPPER && next === LOWER) ||
      (prev === DIGIT) !== (cur === DIGIT);
    if (boundary) {
      if (i - start > 1) out.push(chunk.slice(start, i).toLowerCase());
      start = i;
      pieces += 1;
    }
  }
  if (chunk.length - start > 1) out.push(chunk.slice(start).toLowerCase());
  // A word such as "k8s" or "db1" is also kept whole, so it can be searched as written.
  if (pieces > 0 && digits && letters) out.push(chunk.toLowerCase());
}

/** One run of letters and digits with case or digit boundaries in it. */
function splitWord(chunk: string, out: string[]): void {
  if (ASCII_WORD.test(chunk)) {
    splitAscii(chunk, out);
    return;
  }
  if (/[^\p{L}\p{N}]/u.test(chunk)) {
    // A surrogate pair that is not a letter or digit (an emoji): split on it.
    for (const piece of chunk.split(/[^\p{L}\p{N}]+/u)) if (piece.length >= 2) splitWord(piece, out);
    return;
  }
  const parts = chunk
    .replace(/(\p{Ll})(\p{Lu})/gu, '$1 $2')
    .replace(/(\p{Lu}+)(\p{Lu}\p{Ll})/gu, '$1 $2')
    .replace(/(\p{L})(\p{N})/gu, '$1 $2')
    .replace(/(\p{N})(\p{L})/gu, '$1 $2')
    .toLowerCase()
    .split(' ');
  for (const part of parts) if (part.length > 1) out.push(part);
  // A word such as "k8s" or "db1" is also kept whole, so it can be searched as written.
  if (parts.length > 1 && /\p{N}/u.test(chunk) && /\p{L}/u.test(chunk)) out.push(chunk.toLowerCase());
}

export function isStopword(word: string): boolean {
  return STOPWORDS.has(word);
}

const VOWEL = /[aeiouy]/;

/**
 * A deliberately small stemmer (a subset of Porter's step 1, plus one rule of its own), applied
 * to lowercase words of four letters or more:
 * - plurals: `-ies` → `-y` (entities), `-sses` → `-ss`, `-es` after s/x/z/ch/sh (processes,
 *   branches), otherwise a final `-s` unless the word ends in `ss`, `us` or `is` (status,
 *   analysis);
 * - `-ied` → `-y`, `-ing` and `-ed` when a vowel stays before them (listing, created, but not
 *   `bring` or `red`), then a doubled final consonant is undoubled (running, stopped,
 *   committed);
 * - a final `e` is dropped, so `create`, `created` and `creating` all become `creat`.
 * Every rule keeps at least three letters. It over-merges a little (`note`/`not`) and misses
 * irregular forms; for ranking tool descriptions that is a good trade for twenty lines.
 */
export function stem(word: string): string {
  if (word.length < 4) return word;
  let known = stemCache.get(word);
  if (known === undefined) {
    known = stemUncached(word);
    if (stemCache.size >= STEM_CACHE_SIZE) stemCache.clear();
    stemCache.set(word, known);
  }
  return known;
}

/** Stems of words seen recently: a catalogue's vocabulary is small and repeats on every host. */
const stemCache = new Map<string, string>();
const STEM_CACHE_SIZE = 50_000;

function stemUncached(word: string): string {
  if (/\p{N}/u.test(word)) return word;
  let w = word;
  if (w.endsWith('ies') && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (/(s|x|z|ch|sh)es$/.test(w) && w.length - 2 >= 3) w = w.slice(0, -2);
  else if (w.endsWith('s') && !/(ss|us|is)$/.test(w) && w.length - 1 >= 3) w = w.slice(0, -1);

  if (w.endsWith('ied') && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('ing') && w.length - 3 >= 3 && VOWEL.test(w.slice(0, -3))) w = undouble(w.slice(0, -3));
  else if (w.endsWith('ed') && w.length - 2 >= 3 && VOWEL.test(w.slice(0, -2))) w = undouble(w.slice(0, -2));

  if (w.endsWith('e') && w.length - 1 >= 3) w = w.slice(0, -1);
  return w;
}

function undouble(w: string): string {
  const last = w[w.length - 1]!;
  if (w.length >= 4 && last === w[w.length - 2] && !'aeioulsz'.includes(last)) return w.slice(0, -1);
  return w;
}

/** Index or query terms of a text: words, stopwords dropped, stemmed. */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const w of words(text)) if (!STOPWORDS.has(w)) out.push(stem(w));
  return out;
}

/**
 * Words that mean the same thing to someone looking for a tool. A query term also matches its
 * group's other words, at a discount (the index never expands, so the map can change without a
 * rebuild). Kept short on purpose: each group is a verb or noun pair that tool authors and agents
 * demonstrably use interchangeably (`grep` a repo / `search_code`, remove a container /
 * `delete_entities`, a folder / `create_directory`, `exec` / `run_command`).
 */
const SYNONYM_GROUPS: readonly string[][] = [
  ['search', 'find', 'grep', 'lookup', 'locate'],
  ['delete', 'remove', 'rm', 'erase'],
  ['list', 'ls', 'enumerate'],
  ['read', 'get', 'cat', 'open', 'view'],
  ['write', 'save', 'put', 'store'],
  ['create', 'make', 'new'],
  ['directory', 'folder', 'dir'],
  ['run', 'execute', 'exec', 'launch'],
  ['diff', 'difference', 'compare'],
  ['move', 'rename', 'mv'],
  ['copy', 'cp', 'duplicate'],
  ['kill', 'terminate', 'stop'],
  ['fetch', 'download', 'retrieve'],
  ['image', 'picture', 'photo'],
  ['post', 'send'],
  ['log', 'history'],
  ['time', 'clock', 'date'],
  ['repository', 'repo'],
  ['environment', 'env'],
  ['kubernetes', 'k8s', 'kube'],
  ['database', 'db'],
  ['process', 'ps'],
  ['issue', 'ticket', 'bug'],
];

/** stem → the stems of its synonyms (not itself). */
const SYNONYMS: ReadonlyMap<string, readonly string[]> = (() => {
  const map = new Map<string, string[]>();
  for (const group of SYNONYM_GROUPS) {
    const stems = [...new Set(group.map(stem))];
    for (const s of stems) {
      const others = stems.filter((o) => o !== s);
      map.set(s, [...new Set([...(map.get(s) ?? []), ...others])]);
    }
  }
  return map;
})();

export function synonymsOf(term: string): readonly string[] {
  return SYNONYMS.get(term) ?? [];
}
