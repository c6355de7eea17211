import { Client, type ClientCapabilities, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { cleanEnv, dianeBin, repoRoot } from './home.js';
import { withAgentToken } from './mcpClient.js';
import { trackClosable, trackPid, untrackClosable } from './registry.js';

/** What a test agent was asked by the server side, and what it was told. */
export interface AgentRecord {
  sampling: unknown[];
  elicitation: unknown[];
  roots: number;
  logs: { level: string; logger?: string; data: unknown }[];
  updated: string[];
  listChanged: string[];
}

export interface AgentOptions {
  name: string;
  /** Which server-to-client requests the agent answers. Default: all three. */
  answers?: { sampling?: boolean; elicitation?: boolean; roots?: boolean };
  /** The root this agent reports for roots/list. */
  root?: string;
  /** 2026-07-28 per-request protocol instead of a 2025 session. */
  modern?: boolean;
  /** The bearer token: default the test daemon's (see `connectHttp`), `false` for none. */
  token?: string | false;
}

/**
 * An MCP client that behaves like a full agent: it answers sampling (with its own name),
 * elicitation (accepting with its name) and roots/list, and records every notification.
 */
export class TestAgent extends Client {
  readonly record: AgentRecord = {
    sampling: [],
    elicitation: [],
    roots: 0,
    logs: [],
    updated: [],
    listChanged: [],
  };

  constructor(readonly opts: AgentOptions) {
    const answers = opts.answers ?? { sampling: true, elicitation: true, roots: true };
    const capabilities: ClientCapabilities = {};
    if (answers.sampling) capabilities.sampling = {};
    if (answers.elicitation) capabilities.elicitation = { form: {}, url: {} };
    if (answers.roots) capabilities.roots = { listChanged: true };
    super(
      { name: opts.name, version: '1.0.0' },
      { capabilities, ...(opts.modern ? { versionNegotiation: { mode: 'auto' as const } } : {}) },
    );
    if (answers.sampling) {
      this.setRequestHandler('sampling/createMessage', async (request) => {
        this.record.sampling.push(request.params);
        return {
          model: 'test-model',
          role: 'assistant',
          content: { type: 'text', text: `sampled by ${opts.name}` },
        };
      });
    }
    if (answers.elicitation) {
      this.setRequestHandler('elicitation/create', async (request) => {
        this.record.elicitation.push(request.params);
        if (request.params.mode === 'url') return { action: 'accept' };
        return { action: 'accept', content: acceptAll(request.params, opts.name) };
      });
    }
    if (answers.roots) {
      this.setRequestHandler('roots/list', async () => {
        this.record.roots++;
        return { roots: [{ uri: `file://${opts.root ?? `/roots/${opts.name}`}`, name: opts.name }] };
      });
    }
    this.setNotificationHandler('notifications/message', (n) => {
      this.record.logs.push(n.params as AgentRecord['logs'][number]);
    });
    this.setNotificationHandler('notifications/resources/updated', (n) => {
      this.record.updated.push(n.params.uri);
    });
    for (const kind of ['tools', 'prompts', 'resources'] as const) {
      this.setNotificationHandler(`notifications/${kind}/list_changed`, () => {
        this.record.listChanged.push(kind);
      });
    }
  }

  override async close(): Promise<void> {
    untrackClosable(this);
    await super.close();
  }
}

/** Fills every field of an elicitation form with something of the right type. */
function acceptAll(params: unknown, name: string): Record<string, unknown> {
  const schema = (
    params as { requestedSchema?: { properties?: Record<string, { type?: string; enum?: unknown[] }> } }
  ).requestedSchema;
  const content: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(schema?.properties ?? {})) {
    if (prop.enum?.length) content[key] = prop.enum[0];
    else if (prop.type === 'boolean') content[key] = true;
    else if (prop.type === 'number' || prop.type === 'integer') content[key] = 7;
    else content[key] = name;
  }
  return content;
}

export async function connectAgent(url: string, opts: AgentOptions): Promise<TestAgent> {
  const agent = new TestAgent(opts);
  const headers = withAgentToken(url, undefined, opts.token);
  await agent.connect(
    new StreamableHTTPClientTransport(new URL(url), { requestInit: headers ? { headers } : undefined }),
  );
  return trackClosable(agent);
}

/** A TestAgent talking to `diane mcp` over stdio. */
export async function connectBridgeAgent(home: string, opts: AgentOptions): Promise<TestAgent> {
  const agent = new TestAgent(opts);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [dianeBin, 'mcp'],
    env: { ...cleanEnv(), DIANE_HOME: home, DIANE_LOG_LEVEL: 'warn' },
    cwd: repoRoot,
    stderr: 'pipe',
  });
  await agent.connect(transport);
  if (transport.pid !== null) trackPid(transport.pid);
  return trackClosable(agent);
}
