import { ProtocolError } from '@modelcontextprotocol/client';
import { z } from 'zod';
import type { Aggregator } from '../mcp/aggregator.js';
import type { UpstreamManager } from '../mcp/upstreamManager.js';
import { AdminHttpError, type AdminServer, parseBody } from './adminServer.js';
import type { InfoResponse, ServersResponse, ToolsResponse } from './types.js';

const CallBody = z.object({
  name: z.string().min(1).max(512),
  arguments: z.record(z.string(), z.unknown()).optional(),
});

export interface CoreRouteDeps {
  info: () => InfoResponse;
  aggregator: Aggregator;
  manager: UpstreamManager;
  configPath: string;
}

/** Admin endpoints of the single-host proxy: daemon info, upstream servers, tools. */
export function registerCoreRoutes(admin: AdminServer, deps: CoreRouteDeps): void {
  const { aggregator, manager } = deps;
  admin.handle('GET', '/api/info', () => deps.info());
  admin.handle(
    'GET',
    '/api/servers',
    (): ServersResponse => ({
      servers: aggregator.statuses(),
      disabled: manager.disabled(),
      configErrors: manager.configErrors(),
      configWarnings: manager.configWarnings(),
      configFile: deps.configPath,
    }),
  );
  admin.handle('POST', '/api/servers/reload', () => manager.reload());
  admin.handle('GET', '/api/tools', ({ query }): ToolsResponse => {
    const table = aggregator.nameTable();
    return {
      tools: table.exposed.map((t) => ({
        name: t.exposedName,
        upstream: t.upstream,
        originalName: t.originalName,
        description: t.definition.description,
        definition: t.definition,
      })),
      rejected: query.get('all') ? [...table.rejected] : [],
    };
  });
  admin.handle('POST', '/api/tools/call', async ({ body, raw }) => {
    const call = parseBody(CallBody, body);
    const abort = new AbortController();
    // The CLI going away (Ctrl-C) cancels the call upstream.
    raw.socket.once('close', () => abort.abort());
    try {
      return await aggregator.callTool(call.name, call.arguments, { signal: abort.signal });
    } catch (err) {
      // The agent would get these as JSON-RPC errors; the CLI gets them as a plain refusal.
      if (err instanceof ProtocolError) throw new AdminHttpError(400, err.message, 'tool-call');
      throw err;
    }
  });
}
