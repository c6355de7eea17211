import { ProtocolError } from '@modelcontextprotocol/client';
import { z } from 'zod';
import { splitServerName } from '../mcp/nameTable.js';
import { ORIGINAL_URI_META_KEY, parseExposedUri } from '../mcp/resourceUris.js';
import type { Router } from '../mcp/router.js';
import { LOCAL_HOST } from '../mcp/scope.js';
import type { UpstreamManager } from '../mcp/upstreamManager.js';
import { AdminHttpError, type AdminServer, parseBody } from './adminServer.js';
import type {
  InfoResponse,
  PromptsResponse,
  ResourcesResponse,
  ResourceView,
  ServersResponse,
  ToolsResponse,
} from './types.js';

const CallBody = z.object({
  name: z.string().min(1).max(512),
  arguments: z.record(z.string(), z.unknown()).optional(),
});

export interface CoreRouteDeps {
  info: () => InfoResponse;
  router: Router;
  manager: UpstreamManager;
  configPath: string;
}

/**
 * Where an entry runs: a configured server of this Diane (`local`), or a server of a slave host,
 * whose own names carry the server: `<server>_<name>`, and `diane://<host>/<server>/…` for a URI.
 */
function placeOf(router: Router, upstream: string, name: { original: string } | { uri: string }) {
  const host = router.hostOf(upstream);
  if (host === LOCAL_HOST) return { host, server: upstream };
  const server =
    'original' in name
      ? splitServerName(name.original)?.server
      : parseExposedUri(parseExposedUri(name.uri)?.originalUri ?? '')?.upstream;
  return { host, server: server ?? upstream };
}

/** Admin endpoints of the single-host proxy: daemon info, upstream servers, tools. */
export function registerCoreRoutes(admin: AdminServer, deps: CoreRouteDeps): void {
  const { router, manager } = deps;
  admin.handle('GET', '/api/info', () => deps.info());
  admin.handle(
    'GET',
    '/api/servers',
    (): ServersResponse => ({
      servers: router.statuses(),
      disabled: manager.disabled(),
      configErrors: manager.configErrors(),
      configWarnings: manager.configWarnings(),
      configFile: deps.configPath,
    }),
  );
  admin.handle('POST', '/api/servers/reload', () => manager.reload());
  admin.handle('GET', '/api/tools', ({ query }): ToolsResponse => {
    const table = router.toolTable();
    return {
      tools: table.exposed.map((t) => ({
        name: t.exposedName,
        upstream: t.upstream,
        ...placeOf(router, t.upstream, { original: t.originalName }),
        originalName: t.originalName,
        description: t.definition.description,
        definition: t.definition,
      })),
      rejected: query.get('all') ? [...table.rejected] : [],
    };
  });
  admin.handle('GET', '/api/prompts', ({ query }): PromptsResponse => {
    const table = router.promptTable();
    return {
      prompts: table.exposed.map((p) => ({
        name: p.exposedName,
        upstream: p.upstream,
        ...placeOf(router, p.upstream, { original: p.originalName }),
        originalName: p.originalName,
        description: p.definition.description,
        definition: p.definition,
      })),
      rejected: query.get('all') ? [...table.rejected] : [],
    };
  });
  admin.handle('GET', '/api/resources', ({ query }): ResourcesResponse => {
    const listing = router.resourceListing();
    const view = (
      uri: string,
      name: string,
      mimeType: string | undefined,
      template: boolean,
      definition: ResourceView['definition'],
    ): ResourceView => {
      const original = (definition._meta as Record<string, unknown> | undefined)?.[ORIGINAL_URI_META_KEY];
      const upstream = listing.owners.get(uri) ?? '';
      const originalUri =
        typeof original === 'string' ? original : (parseExposedUri(uri)?.originalUri ?? uri);
      return {
        uri,
        upstream,
        ...placeOf(router, upstream, { uri }),
        originalUri,
        name,
        mimeType,
        template,
        definition,
      };
    };
    return {
      resources: [
        ...listing.resources.map((r) => view(r.uri, r.name, r.mimeType, false, r)),
        ...listing.resourceTemplates.map((t) => view(t.uriTemplate, t.name, t.mimeType, true, t)),
      ],
      rejected: query.get('all') ? [...listing.rejected] : [],
    };
  });
  admin.handle('POST', '/api/tools/call', async ({ body, raw }) => {
    const call = parseBody(CallBody, body);
    const abort = new AbortController();
    // The CLI going away (Ctrl-C) cancels the call upstream.
    raw.socket.once('close', () => abort.abort());
    try {
      return await router.callTool(call.name, call.arguments, abort.signal);
    } catch (err) {
      // The agent would get these as JSON-RPC errors; the CLI gets them as a plain refusal.
      if (err instanceof ProtocolError) throw new AdminHttpError(400, err.message, 'tool-call');
      throw err;
    }
  });
}
