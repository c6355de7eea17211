/**
 * Diane's resource addressing. Opaque URIs cannot be prefixed like names, and the same server
 * often runs on many hosts, so every URI an agent sees is rewritten as
 *
 *   diane://<upstream>/<the upstream's own URI, verbatim>
 *
 * e.g. `diane://everything/test://static/resource/1`. An upstream that is itself a Diane (a
 * slave, or the daemon behind `diane mcp`) already hands out `diane://` URIs; those are nested by
 * dropping the inner `diane://`, so a slave's file reads
 * `diane://workstation/filesystem/file:///home/me/notes.md`. Decoding is unambiguous because an
 * upstream's own URI always starts with `scheme:`, and a scheme contains no `/`: a remainder
 * whose first segment has no `:` is a nested Diane URI. The `<upstream>` part is looked up in
 * the router's table of upstreams, exactly, never guessed.
 */
export const DIANE_URI_PREFIX = 'diane://';

/** Where the upstream's own URI is kept, for agents that want to show it. */
export const ORIGINAL_URI_META_KEY = 'dev.diane/originalUri';

/** The correlation id of a call, sent to upstreams and echoed back by a Diane peer. */
export const CALL_META_KEY = 'dev.diane/call';

const STARTS_WITH_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** The agent's form of an upstream's URI (or URI template); undefined when it has no scheme. */
export function exposeUri(upstream: string, uri: string): string | undefined {
  if (uri.startsWith(DIANE_URI_PREFIX)) {
    const inner = uri.slice(DIANE_URI_PREFIX.length);
    return inner.includes('/') ? `${DIANE_URI_PREFIX}${upstream}/${inner}` : undefined;
  }
  if (!STARTS_WITH_SCHEME.test(uri)) return undefined;
  return `${DIANE_URI_PREFIX}${upstream}/${uri}`;
}

export interface RoutedUri {
  upstream: string;
  originalUri: string;
}

/** Splits an agent's URI into the upstream it names and that upstream's own URI. */
export function parseExposedUri(uri: string): RoutedUri | undefined {
  if (!uri.startsWith(DIANE_URI_PREFIX)) return undefined;
  const rest = uri.slice(DIANE_URI_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  const upstream = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  return {
    upstream,
    originalUri: STARTS_WITH_SCHEME.test(inner) ? inner : `${DIANE_URI_PREFIX}${inner}`,
  };
}
