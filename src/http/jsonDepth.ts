/**
 * Deepest nesting a JSON body may have. MCP messages and pairing bodies are a few levels deep;
 * tool arguments rarely pass 20. Anything far deeper is an attack on the recursive code that
 * handles parsed values later (schema checks, JSON.stringify), which overflows the stack.
 */
export const MAX_JSON_DEPTH = 128;

const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether `bytes` nests objects and arrays deeper than `max`, scanning without parsing (so
 * without recursion). Brackets inside strings do not count. Malformed text is left to
 * JSON.parse: this only measures depth.
 */
export function jsonDeeperThan(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (++depth > max) return true;
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) depth--;
  }
  return false;
}
