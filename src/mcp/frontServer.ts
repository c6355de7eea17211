import { Server } from '@modelcontextprotocol/server';
import type { ToolSource } from './toolSource.js';
import type { ProgressUpdate } from './upstream.js';

export interface FrontInfo {
  name: string;
  version: string;
}

/**
 * An MCP server instance (low-level SDK `Server`) that serves a ToolSource: lists its tools and
 * forwards calls, relaying the agent's progress token and cancellation to the source.
 * One instance per agent session or per request, as the SDK's serving entries want.
 */
export function createFrontServer(source: ToolSource, info: FrontInfo): Server {
  const server = new Server(
    { name: info.name, version: info.version },
    { capabilities: { tools: { listChanged: true } } },
  );
  server.setRequestHandler('tools/list', async () => ({ tools: await source.listTools() }));
  server.setRequestHandler('tools/call', async (request, ctx) => {
    const { name, arguments: args, _meta } = request.params;
    const progressToken = _meta?.progressToken;
    // Progress notifications are written in order, and the result only after the last of them:
    // an agent that read the result first would drop the progress that trails it.
    let progressSent: Promise<void> = Promise.resolve();
    const onprogress =
      progressToken === undefined
        ? undefined
        : (update: ProgressUpdate) => {
            progressSent = progressSent.then(() =>
              ctx.mcpReq
                .notify({ method: 'notifications/progress', params: { ...update, progressToken } })
                .catch(() => {
                  // The agent went away; its cancellation reaches the upstream through the signal.
                }),
            );
          };
    const result = await source.callTool(name, args, { signal: ctx.mcpReq.signal, onprogress });
    await progressSent;
    return result;
  });
  return server;
}

/**
 * The live instances that keep a connection open (legacy HTTP sessions, a stdio connection),
 * so a change in the tool set can be announced on each of them.
 */
export class LiveServers {
  private readonly servers = new Set<Server>();

  add(server: Server): void {
    this.servers.add(server);
  }

  delete(server: Server): void {
    this.servers.delete(server);
  }

  get size(): number {
    return this.servers.size;
  }

  announceToolsChanged(): void {
    for (const server of this.servers) {
      server.sendToolListChanged().catch(() => {
        // A session that is closing cannot be told; it will re-list when it reconnects.
      });
    }
  }
}
