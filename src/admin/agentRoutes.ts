import { z } from 'zod';
import { AgentError, type AgentService, type AgentView } from '../agents/agentService.js';
import type { Router } from '../mcp/router.js';
import { AGENT_MODES } from '../store/index.js';
import { AdminHttpError, type AdminServer, parseBody } from './adminServer.js';

const Name = z.string().min(1).max(64);
const Patterns = z.array(z.string().max(512)).max(256);

const Mode = z.enum(AGENT_MODES);
const AddBody = z
  .object({
    name: Name,
    allow: Patterns,
    deny: Patterns,
    record_arguments: z.boolean(),
    mode: Mode.default('full'),
  })
  .strict();
const NameBody = z.object({ name: Name }).strict();
const UpdateBody = z
  .object({
    name: Name,
    allow: Patterns.optional(),
    deny: Patterns.optional(),
    record_arguments: z.boolean().optional(),
    mode: Mode.optional(),
  })
  .strict();

/** `agents show`: the agent, and the names of what its scope lets it see right now. */
export interface AgentDetail extends AgentView {
  sees: { tools: string[]; prompts: string[]; resources: string[]; resource_templates: string[] };
}

/** Admin endpoints of agent identities. Tokens appear only in the answers of add and rotate. */
export function registerAgentRoutes(
  admin: AdminServer,
  deps: { agents: AgentService; router: Router },
): void {
  const { agents, router } = deps;
  admin.handle('GET', '/api/agents', () => wrap(async () => ({ agents: await agents.list() })));
  admin.handle('POST', '/api/agents/show', ({ body }) =>
    wrap(async (): Promise<AgentDetail> => {
      const { name } = parseBody(NameBody, body);
      const agent = await agents.get(name);
      const scope = await agents.scopeOf(name);
      const names = (kind: 'tools' | 'prompts') =>
        router.visible(kind, scope).map((item) => (item as { name: string }).name);
      const uris = (kind: 'resources' | 'resourceTemplates', key: 'uri' | 'uriTemplate') =>
        router.visible(kind, scope).map((item) => String((item as Record<string, unknown>)[key]));
      return {
        ...agent,
        sees: {
          tools: names('tools'),
          prompts: names('prompts'),
          resources: uris('resources', 'uri'),
          resource_templates: uris('resourceTemplates', 'uriTemplate'),
        },
      };
    }),
  );
  // For `diane mcp --agent`: which agent a token belongs to (the admin socket is the owner's).
  admin.handle('POST', '/api/agents/whoami', ({ body }) => {
    const { token } = parseBody(z.object({ token: z.string().min(1).max(256) }).strict(), body);
    const agent = agents.authenticate(token);
    if (!agent) throw new AdminHttpError(404, 'that token belongs to no agent', 'agent');
    return { name: agent.name };
  });
  admin.handle('POST', '/api/agents/add', ({ body }) =>
    wrap(() => {
      const req = parseBody(AddBody, body);
      return agents.add({
        name: req.name,
        allow: req.allow,
        deny: req.deny,
        recordArguments: req.record_arguments,
        mode: req.mode,
      });
    }),
  );
  admin.handle('POST', '/api/agents/rotate', ({ body }) =>
    wrap(() => agents.rotate(parseBody(NameBody, body).name)),
  );
  admin.handle('POST', '/api/agents/remove', ({ body }) =>
    wrap(async () => {
      const { name } = parseBody(NameBody, body);
      await agents.remove(name);
      return { removed: name };
    }),
  );
  admin.handle('POST', '/api/agents/update', ({ body }) =>
    wrap(() => {
      const req = parseBody(UpdateBody, body);
      return agents.update(req.name, {
        ...(req.allow === undefined ? {} : { allow: req.allow }),
        ...(req.deny === undefined ? {} : { deny: req.deny }),
        ...(req.record_arguments === undefined ? {} : { recordArguments: req.record_arguments }),
        ...(req.mode === undefined ? {} : { mode: req.mode }),
      });
    }),
  );
}

async function wrap<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AgentError) throw new AdminHttpError(err.status, err.message, 'agent');
    throw err;
  }
}
