import type { ServerCapabilities } from '@modelcontextprotocol/client';
import type {
  AgentRequestHandler,
  CallOptions,
  ForwardedMethod,
  JsonObject,
  Upstream,
  UpstreamCatalog,
  UpstreamEvent,
  UpstreamStatus,
} from '../../src/mcp/upstream.js';
import { EMPTY_CATALOG, UpstreamUnavailableError } from '../../src/mcp/upstream.js';

export interface SentRequest {
  method: ForwardedMethod;
  params: JsonObject;
  opts: CallOptions;
}

/**
 * An upstream whose catalog, state and answers a unit test sets by hand (the router's view of a
 * configured server, or of a slave when `host` is given).
 */
export class FakeUpstream implements Upstream {
  readonly kind = 'stdio' as const;
  agentRequests?: AgentRequestHandler;
  state: UpstreamStatus['state'] = 'connected';
  catalogNow: UpstreamCatalog = EMPTY_CATALOG;
  capabilities: ServerCapabilities = {
    tools: {},
    prompts: {},
    resources: { subscribe: true },
    logging: {},
    completions: {},
  };
  readonly sent: SentRequest[] = [];
  answer: (req: SentRequest) => Promise<JsonObject> = async () => ({ content: [] });
  private readonly listeners = new Set<(event: UpstreamEvent) => void>();

  constructor(
    readonly name: string,
    readonly host?: string,
  ) {}

  status(): UpstreamStatus {
    return {
      name: this.name,
      kind: 'stdio',
      state: this.state,
      toolCount: 0,
      promptCount: 0,
      resourceCount: 0,
      restarts: 0,
    };
  }
  catalog(): UpstreamCatalog {
    return this.state === 'connected' ? this.catalogNow : EMPTY_CATALOG;
  }
  serverCapabilities(): ServerCapabilities | undefined {
    return this.state === 'connected' ? this.capabilities : undefined;
  }
  request(method: ForwardedMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    const req = { method, params, opts };
    this.sent.push(req);
    if (this.state !== 'connected')
      return Promise.reject(new UpstreamUnavailableError(this.unavailableMessage()));
    return this.answer(req);
  }
  unavailableMessage(): string {
    return `Server ${this.name} is not available`;
  }
  subscribe(listener: (event: UpstreamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(event: UpstreamEvent): void {
    for (const l of this.listeners) l(event);
  }
  setCatalog(catalog: Partial<UpstreamCatalog>): void {
    this.catalogNow = { ...EMPTY_CATALOG, ...catalog };
    this.emit({ type: 'catalog', kind: 'tools' });
    this.emit({ type: 'catalog', kind: 'prompts' });
    this.emit({ type: 'catalog', kind: 'resources' });
  }
  setState(state: UpstreamStatus['state']): void {
    this.state = state;
    this.emit({ type: 'state' });
  }
  async stop(): Promise<void> {}
}

export const tool = (name: string) => ({ name, inputSchema: { type: 'object' as const } });
