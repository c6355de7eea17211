/** What the router needs to know of one definition (a tool, prompt, resource or template). */
export interface DefinitionFacts {
  /** Its serialized size, for the per-upstream byte budget. */
  bytes: number;
  /** A digest of its serialized form: two definitions with the same digest look the same to an agent. */
  digest: number;
}

const facts = new WeakMap<object, DefinitionFacts>();

/**
 * Serialized once per definition object, when an upstream's catalogue arrives: a catalogue is
 * re-checked on every change of any list, and comparing digests instead of whole serialized lists
 * keeps an attach or a drop proportional to that upstream's own entries.
 */
export function definitionFacts(item: object): DefinitionFacts {
  let known = facts.get(item);
  if (known === undefined) {
    const json = JSON.stringify(item);
    known = {
      bytes: Buffer.byteLength(json),
      digest: hash53(json),
    };
    facts.set(item, known);
  }
  return known;
}

/**
 * A 53-bit string hash (cyrb53: two multiply-xor lanes mixed at the end). Not cryptographic: it
 * only tells whether the definition under one name changed, and a crypto hash object per
 * definition cost ten times the serialisation itself during a reconnect storm.
 */
function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
