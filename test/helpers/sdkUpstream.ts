import type { JSONRPCMessage, ServerCapabilities } from '@modelcontextprotocol/client';
import { InMemoryTransport } from '@modelcontextprotocol/client';
import { ProtocolError, Server } from '@modelcontextprotocol/server';
import { createLogger } from '../../src/log.js';
import { ClientSession } from '../../src/mcp/clientSession.js';
import {
  type AgentRequestHandler,
  type CallOptions,
  EMPTY_CATALOG,
  type ForwardedMethod,
  type JsonObject,
  type Upstream,
  type UpstreamCatalog,
  type UpstreamEvent,
  type UpstreamStatus,
  UpstreamUnavailableError,
} from '../../src/mcp/upstream.js';

const tool = (name: string) => ({ name, inputSchema: { type: 'object' as const } });

/** What the fixture server saw and sent, frame by frame. */
export interface Wire {
  /** Messages the server received. */
  received: JSONRPCMessage[];
  /** Messages the server sent. */
  sent: JSONRPCMessage[];
  /** Tool calls whose handler saw its request cancelled. */
  cancelled: string[];
}

/**
 * A real SDK `Server` with the tools the relay tests need: `echo` (text, structured content and
 * a `_meta` of its own), `progress` (n progress notifications, then the result), `fail` (a
 * JSON-RPC error with data), `toolError` (isError), `wait` (until cancelled), `big` (n bytes),
 * `ask` (a sampling request to its client mid-call); a prompt `greet` and resources `file:///*`.
 */
export function fixtureServer(wire: Wire): Server {
  const server = new Server(
    { name: 'fixture', version: '1' },
    { capabilities: { tools: {}, prompts: {}, resources: {} } },
  );
  server.setRequestHandler('tools/list', async () => ({
    tools: ['echo', 'progress', 'fail', 'toolError', 'wait', 'big', 'ask'].map(tool),
  }));
  server.setRequestHandler('prompts/list', async () => ({ prompts: [{ name: 'greet' }] }));
  server.setRequestHandler('resources/list', async () => ({
    resources: [{ uri: 'file:///a.txt', name: 'a' }],
  }));
  server.setRequestHandler('resources/templates/list', async () => ({ resourceTemplates: [] }));
  server.setRequestHandler('prompts/get', async (request) => ({
    description: 'a greeting',
    messages: [{ role: 'user', content: { type: 'text', text: `hello ${request.params.arguments?.who}` } }],
  }));
  server.setRequestHandler('resources/read', async (request) => {
    if (request.params.uri !== 'file:///a.txt')
      throw new ProtocolError(-32002, 'Resource not found', { uri: request.params.uri });
    return { contents: [{ uri: request.params.uri, mimeType: 'text/plain', text: 'α\u0000"quoted"' }] };
  });
  server.setRequestHandler('tools/call', async (request, ctx) => {
    const args = (request.params.arguments ?? {}) as Record<string, unknown>;
    const token = request.params._meta?.progressToken;
    switch (request.params.name) {
      case 'echo':
        return {
          content: [{ type: 'text', text: String(args.text), annotations: { priority: 0.5 } }],
          structuredContent: { echoed: args.text, nested: { list: [1, 2.5, null, 'x'] } },
          _meta: { 'fixture/seen': true },
        };
      case 'progress': {
        for (let i = 1; i <= Number(args.steps ?? 3); i++) {
          if (token !== undefined)
            await ctx.mcpReq.notify({
              method: 'notifications/progress',
              params: {
                progressToken: token,
                progress: i,
                total: Number(args.steps ?? 3),
                message: `step ${i}`,
              },
            });
        }
        return { content: [{ type: 'text', text: 'done' }] };
      }
      case 'fail':
        throw new ProtocolError(-32050, 'the tool broke', { detail: [1, 'two'] });
      case 'toolError':
        return { content: [{ type: 'text', text: 'bad input' }], isError: true };
      case 'wait':
        await new Promise<void>((resolve) => {
          ctx.mcpReq.signal.addEventListener('abort', () => {
            wire.cancelled.push(String(request.params.name));
            resolve();
          });
        });
        return { content: [{ type: 'text', text: 'too late' }] };
      case 'big':
        return { content: [{ type: 'text', text: 'x'.repeat(Number(args.bytes ?? 1024)) }] };
      case 'ask': {
        // `questions` (default: one sampling) asked one after another, or all at once (`together`).
        const kinds = (args.questions as string[] | undefined) ?? ['sampling'];
        const ask = (kind: string) => askClient(ctx.mcpReq.send, kind);
        const texts = args.together
          ? await Promise.all(kinds.map(ask))
          : await kinds.reduce<Promise<string[]>>(
              async (done, kind) => [...(await done), await ask(kind)],
              Promise.resolve([]),
            );
        return { content: [{ type: 'text', text: texts.join('; ') }] };
      }
      default:
        throw new ProtocolError(-32602, `no tool ${request.params.name}`);
    }
  });
  return server;
}

/** One question of the `ask` tool to the fixture's client, and its answer as text. */
async function askClient(
  send: (request: { method: string; params?: Record<string, unknown> }) => Promise<unknown>,
  kind: string,
): Promise<string> {
  if (kind === 'roots') {
    const { roots } = (await send({ method: 'roots/list' })) as { roots: { uri: string }[] };
    return `roots ${roots.map((r) => r.uri).join(',')}`;
  }
  if (kind === 'elicit') {
    const answer = (await send({
      method: 'elicitation/create',
      params: {
        message: 'your name?',
        requestedSchema: { type: 'object', properties: { name: { type: 'string' } } },
      },
    })) as { action: string; content?: unknown };
    return `elicited ${answer.action} ${JSON.stringify(answer.content ?? null)}`;
  }
  const answer = (await send({
    method: 'sampling/createMessage',
    params: { messages: [{ role: 'user', content: { type: 'text', text: 'why?' } }], maxTokens: 10 },
  })) as { content: { text: string } };
  return `agent said ${answer.content.text}`;
}

/**
 * Records every message `side` sends and receives (what its `peer` sends), leaving both
 * transports' `onmessage` alone.
 */
export function tap(side: InMemoryTransport, peer: InMemoryTransport, wire: Wire): void {
  const record = (transport: InMemoryTransport, into: JSONRPCMessage[]) => {
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      into.push(message);
      return send(message, options);
    };
  };
  record(side, wire.sent);
  record(peer, wire.received);
}

/**
 * The router's view of the fixture server: a `ClientSession` (raw forward included) over an
 * in-memory pair, as `SupervisedUpstream` runs one over stdio.
 */
export class SdkUpstream implements Upstream {
  readonly kind = 'stdio' as const;
  agentRequests?: AgentRequestHandler;
  readonly wire: Wire = { received: [], sent: [], cancelled: [] };
  session?: ClientSession;
  server?: Server;

  constructor(readonly name: string) {}

  async start(): Promise<this> {
    this.server = fixtureServer(this.wire);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    tap(serverSide, clientSide, this.wire);
    await this.server.connect(serverSide);
    this.session = await ClientSession.open(clientSide, {
      clientName: 'test',
      clientVersion: '1',
      logger: createLogger('fatal'),
      connectTimeoutMs: 5000,
      onCatalogChanged: () => {},
      onClosed: () => {},
      onAgentRequest: (request, signal) => {
        if (!this.agentRequests) throw new Error('no agent');
        return this.agentRequests(request, signal);
      },
    });
    return this;
  }

  status(): UpstreamStatus {
    return {
      name: this.name,
      kind: 'stdio',
      state: this.session && !this.session.closed ? 'connected' : 'offline',
      toolCount: 0,
      promptCount: 0,
      resourceCount: 0,
      restarts: 0,
    };
  }
  catalog(): UpstreamCatalog {
    return this.session?.catalog() ?? EMPTY_CATALOG;
  }
  serverCapabilities(): ServerCapabilities | undefined {
    return this.session?.serverCapabilities();
  }
  request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    if (!this.session) return Promise.reject(new UpstreamUnavailableError(this.unavailableMessage()));
    return this.session.request(method, params, opts, this.unavailableMessage());
  }
  unavailableMessage(): string {
    return `Server ${this.name} is not available`;
  }
  subscribe(_listener: (event: UpstreamEvent) => void): () => void {
    return () => {};
  }
  async stop(): Promise<void> {
    await this.session?.close();
    await this.server?.close();
  }
}
