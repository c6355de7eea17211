import { describe, expect, it } from 'vitest';
import { exposeUri, parseExposedUri } from '../../src/mcp/resourceUris.js';

describe('Diane resource URIs', () => {
  const cases: [upstream: string, original: string, exposed: string][] = [
    ['fs', 'file:///home/me/notes.md', 'diane://fs/file:///home/me/notes.md'],
    [
      'everything',
      'demo://resource/static/document/architecture.md',
      'diane://everything/demo://resource/static/document/architecture.md',
    ],
    ['fx', 'fixture://echo/{word}', 'diane://fx/fixture://echo/{word}'],
    ['db', 'postgres://host/db?table=x#frag', 'diane://db/postgres://host/db?table=x#frag'],
    ['mail', 'mailto:me@example.com', 'diane://mail/mailto:me@example.com'],
    // A Diane upstream (a slave) hands out Diane URIs: they nest without a second scheme.
    ['ws1', 'diane://fs/file:///a.txt', 'diane://ws1/fs/file:///a.txt'],
    ['master', 'diane://ws1/fs/file:///a.txt', 'diane://master/ws1/fs/file:///a.txt'],
  ];

  it.each(cases)('%s: %s <-> %s', (upstream, original, exposed) => {
    expect(exposeUri(upstream, original)).toBe(exposed);
    expect(parseExposedUri(exposed)).toEqual({ upstream, originalUri: original });
  });

  it('refuses what it cannot address, rather than guessing', () => {
    expect(exposeUri('fs', 'relative/path')).toBeUndefined();
    expect(exposeUri('fs', '/absolute/path')).toBeUndefined();
    expect(exposeUri('fs', 'diane://noslash')).toBeUndefined();
    for (const bad of ['file:///a', 'diane://', 'diane://fs', 'diane://fs/', 'diane:///file:///a']) {
      expect(parseExposedUri(bad)).toBeUndefined();
    }
  });
});
