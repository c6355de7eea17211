import { InMemoryTransport } from '@modelcontextprotocol/client';
import { Server } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { ClientSession } from '../../src/mcp/clientSession.js';

const sessions: ClientSession[] = [];
afterEach(async () => {
  while (sessions.length) await sessions.pop()?.close();
});

/** A real SDK server whose tool list the test changes, counting how often it is listed. */
async function upstream() {
  const server = new Server(
    { name: 'flood', version: '1' },
    { capabilities: { tools: { listChanged: true } } },
  );
  const state = { tools: 1, lists: 0 };
  server.setRequestHandler('tools/list', async () => {
    state.lists++;
    return {
      tools: Array.from({ length: state.tools }, (_, i) => ({
        name: `t${i}`,
        inputSchema: { type: 'object' as const },
      })),
    };
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const changes: number[] = [];
  const session = await ClientSession.open(clientSide, {
    clientName: 'test',
    clientVersion: '1',
    logger: createLogger('fatal'),
    connectTimeoutMs: 5000,
    onCatalogChanged: () => changes.push(Date.now()),
    onClosed: () => {},
    refreshPacing: { minIntervalMs: 100, maxIntervalMs: 400 },
  });
  sessions.push(session);
  return { server, state, session, changes };
}

describe('ClientSession list refreshes', () => {
  it('reads a quiet list again at once when it changes', async () => {
    const { server, state, session } = await upstream();
    state.tools = 3;
    await server.sendToolListChanged();
    await expect.poll(() => session.catalog().tools.length).toBe(3);
  });

  it('paces an upstream that announces changes every few milliseconds', async () => {
    const { server, state, session } = await upstream();
    const before = state.lists;
    const started = Date.now();
    for (let i = 0; i < 200; i++) {
      state.tools = 2 + (i % 5);
      await server.sendToolListChanged();
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = Date.now() - started;
    // One read at once, then at most one per interval, the interval doubling to 400 ms.
    const reads = state.lists - before;
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
    expect(reads).toBeLessThan(20);
    // The last announcement is never lost: the list ends as the upstream has it.
    await expect.poll(() => session.catalog().tools.length, { timeout: 2000 }).toBe(state.tools);
  });
});
