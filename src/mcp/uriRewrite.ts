import { exposeUri, ORIGINAL_URI_META_KEY } from './resourceUris.js';
import type { JsonObject } from './upstream.js';

type UriOwner = { uri: string; _meta?: JsonObject };

/**
 * Puts an upstream's resource (or resource link, or read content) in the agent's form. The
 * upstream's own URI stays visible in `_meta`; behind nested Dianes it is the innermost one.
 */
export function exposeResourceObject<T extends UriOwner>(upstream: string, item: T): T {
  const uri = exposeUri(upstream, item.uri);
  if (uri === undefined) return item;
  const meta = item._meta ?? {};
  const original = typeof meta[ORIGINAL_URI_META_KEY] === 'string' ? meta[ORIGINAL_URI_META_KEY] : item.uri;
  return { ...item, uri, _meta: { ...meta, [ORIGINAL_URI_META_KEY]: original } };
}

/** A tool result or prompt message content block, with any resource in it rewritten. */
function exposeContentBlock(upstream: string, block: unknown): unknown {
  if (typeof block !== 'object' || block === null) return block;
  const b = block as JsonObject;
  if (b.type === 'resource_link' && typeof b.uri === 'string') {
    return exposeResourceObject(upstream, b as UriOwner);
  }
  if (b.type === 'resource' && typeof b.resource === 'object' && b.resource !== null) {
    const inner = b.resource as UriOwner;
    if (typeof inner.uri === 'string') return { ...b, resource: exposeResourceObject(upstream, inner) };
  }
  return block;
}

/**
 * Rewrites the URIs an upstream handed out in a result, so that an agent can `resources/read`
 * exactly what a tool, a prompt or a read gave it.
 */
export function exposeResultUris(method: string, upstream: string, result: JsonObject): JsonObject {
  switch (method) {
    case 'tools/call':
      return Array.isArray(result.content)
        ? { ...result, content: result.content.map((c) => exposeContentBlock(upstream, c)) }
        : result;
    case 'prompts/get':
      return Array.isArray(result.messages)
        ? {
            ...result,
            messages: result.messages.map((m) =>
              typeof m === 'object' && m !== null
                ? { ...m, content: exposeContentBlock(upstream, (m as JsonObject).content) }
                : m,
            ),
          }
        : result;
    case 'resources/read':
      return Array.isArray(result.contents)
        ? {
            ...result,
            contents: result.contents.map((c) =>
              typeof c === 'object' && c !== null && typeof (c as UriOwner).uri === 'string'
                ? exposeResourceObject(upstream, c as UriOwner)
                : c,
            ),
          }
        : result;
    default:
      return result;
  }
}
