import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { DiscoveryCatalog } from '../../src/mcp/discovery/discoveryCatalog.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import { Scope } from '../../src/mcp/scope.js';
import { FakeUpstream } from '../helpers/fakeUpstream.js';

const routers: Router[] = [];
afterEach(() => {
  while (routers.length) routers.pop()?.close();
});
const settle = () => new Promise((r) => setTimeout(r, 40));

function described(name: string, description: string) {
  return { name, description, inputSchema: { type: 'object' as const } };
}

function setup() {
  const router = new Router({ ...DEFAULT_ROUTER_SETTINGS, listChangedDebounceMs: 10 }, silentLogger);
  routers.push(router);
  const ws = new FakeUpstream('ws', 'ws');
  ws.setCatalog({
    tools: [described('fs_read_file', 'Read a text file'), described('fs_delete_file', 'Delete a file')],
  });
  const github = new FakeUpstream('github');
  github.setCatalog({ tools: [described('create_issue', 'Open an issue in a repository')] });
  router.add(ws);
  router.add(github);
  return { router, ws, github, catalog: new DiscoveryCatalog(router) };
}

describe('DiscoveryCatalog', () => {
  it("indexes the router's exposed tools with host, server and the server's own name", async () => {
    const { catalog } = setup();
    await settle();
    const [read] = catalog.search({ query: 'read a file', limit: 5 }, Scope.full());
    expect(read).toMatchObject({ name: 'ws_fs_read_file', host: 'ws', server: 'fs', online: true });
    const [issue] = catalog.search({ query: 'open an issue', limit: 5 }, Scope.full());
    expect(issue).toMatchObject({ name: 'github_create_issue', host: 'local', server: 'github' });
  });

  it('follows catalogue changes, and keeps an offline host found but marked offline', async () => {
    const { catalog, ws } = setup();
    catalog.search({ query: 'file', limit: 5 }, Scope.full());
    ws.setCatalog({ tools: [described('fs_move_file', 'Move or rename a file')] });
    await settle();
    expect(catalog.search({ query: 'rename', limit: 5 }, Scope.full()).map((r) => r.name)).toEqual([
      'ws_fs_move_file',
    ]);
    expect(catalog.search({ query: 'delete', limit: 5 }, Scope.full())).toEqual([]);
    // As Slave- and SupervisedUpstream do: a state change comes with the whole catalogue.
    ws.setState('disconnected');
    ws.setCatalog({ tools: [described('fs_move_file', 'Move or rename a file')] });
    await settle();
    expect(catalog.search({ query: 'rename', limit: 5 }, Scope.full())).toMatchObject([
      { name: 'ws_fs_move_file', online: false },
    ]);
    expect(catalog.servers(Scope.full())).toContainEqual({
      host: 'ws',
      server: 'fs',
      online: false,
      toolCount: 1,
    });
  });

  it('drops a removed upstream, and never shows what a scope hides', async () => {
    const { catalog, router } = setup();
    const scoped = Scope.parse({ allow: ['host:local'] });
    await settle();
    expect(catalog.search({ query: 'file', limit: 5 }, scoped)).toEqual([]);
    expect(catalog.servers(scoped).map((s) => s.host)).toEqual(['local']);
    router.remove('ws');
    await settle();
    expect(catalog.search({ query: 'file', limit: 5 }, Scope.full())).toEqual([]);
  });
});
