import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { agentTokenFor } from './daemon.js';
import { cleanEnv, dianeBin, repoRoot } from './home.js';
import { trackClosable, trackPid, untrackClosable } from './registry.js';

export interface ConnectOptions {
  /** Client name in the initialize request. Default 'diane-e2e'. */
  name?: string;
  /**
   * Called once per `notifications/tools/list_changed` (a plain notification handler, not the
   * SDK's debounced, auto-refreshing `listChanged` option).
   */
  onToolsChanged?: () => void;
  /** Timeout of the connect handshake. Default: the SDK's 60 s. */
  timeoutMs?: number;
}

export interface ConnectHttpOptions extends ConnectOptions {
  /** Headers sent with every request (e.g. `authorization`). */
  headers?: Record<string, string>;
  /**
   * The bearer token to send. Default: the token of the test daemon serving `url` (none for
   * other servers); `false` sends none. An `authorization` in `headers` wins.
   */
  token?: string | false;
  /** Send DELETE for the session on close(). Default true. */
  terminateOnClose?: boolean;
}

/** A v2 Client over Streamable HTTP whose close() also ends the HTTP session (DELETE). */
export class HttpTestClient extends Client {
  httpTransport: StreamableHTTPClientTransport | undefined;
  terminateOnClose = true;

  override async close(): Promise<void> {
    untrackClosable(this);
    const transport = this.httpTransport;
    this.httpTransport = undefined;
    if (transport && this.terminateOnClose && transport.sessionId !== undefined) {
      await transport.terminateSession().catch(() => undefined);
    }
    await super.close();
  }
}

function newClient<C extends Client>(
  Ctor: new (...args: ConstructorParameters<typeof Client>) => C,
  opts: ConnectOptions,
): C {
  const client = new Ctor({ name: opts.name ?? 'diane-e2e', version: '1.0.0' });
  const onToolsChanged = opts.onToolsChanged;
  if (onToolsChanged)
    client.setNotificationHandler('notifications/tools/list_changed', () => onToolsChanged());
  return client;
}

/**
 * A connected v2 Client over Streamable HTTP (2025 protocol era, the SDK default). Closed by
 * `cleanupProcesses()` if the test does not close it.
 */
export async function connectHttp(url: string, opts: ConnectHttpOptions = {}): Promise<HttpTestClient> {
  const client = newClient(HttpTestClient, opts);
  client.terminateOnClose = opts.terminateOnClose ?? true;
  const headers = withAgentToken(url, opts.headers, opts.token);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: headers ? { headers } : undefined,
  });
  client.httpTransport = transport;
  await client.connect(transport, opts.timeoutMs === undefined ? undefined : { timeout: opts.timeoutMs });
  return trackClosable(client);
}

/** `headers` plus `Authorization: Bearer <token>` (see {@link ConnectHttpOptions.token}). */
export function withAgentToken(
  url: string,
  headers: Record<string, string> | undefined,
  token: string | false | undefined,
): Record<string, string> | undefined {
  if (headers && Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) return headers;
  const bearer = token === false ? undefined : (token ?? agentTokenFor(url));
  if (!bearer) return headers;
  return { ...headers, authorization: `Bearer ${bearer}` };
}

export interface ConnectStdioBridgeOptions extends ConnectOptions {
  /** More environment for `diane mcp` (DIANE_HOME is set; DIANE_LOG_LEVEL defaults to debug). */
  env?: Record<string, string>;
  /** More `diane mcp` arguments. */
  args?: string[];
}

/** A v2 Client talking to `diane mcp` over stdio; it keeps the bridge's stderr. */
export class BridgeClient extends Client {
  bridgeTransport: StdioClientTransport | undefined;
  private stderrText = '';

  /** Everything `diane mcp` wrote to stderr so far. */
  stderr(): string {
    return this.stderrText;
  }

  /** The pid of the `diane mcp` process (after connect). */
  get pid(): number | null {
    return this.bridgeTransport?.pid ?? null;
  }

  appendStderr(chunk: string): void {
    this.stderrText += chunk;
  }

  override async close(): Promise<void> {
    untrackClosable(this);
    await super.close();
  }
}

/**
 * Spawns `node bin/diane.js mcp` with DIANE_HOME=home through the SDK's StdioClientTransport
 * and returns the connected client. stderr is piped and kept (`client.stderr()`), and echoed
 * when DIANE_TEST_VERBOSE=1. The reader accepts messages up to 128 MiB (SDK default: 10 MB).
 */
export async function connectStdioBridge(
  home: string,
  opts: ConnectStdioBridgeOptions = {},
): Promise<BridgeClient> {
  const client = newClient(BridgeClient, opts);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [dianeBin, 'mcp', ...(opts.args ?? [])],
    env: { ...cleanEnv(), DIANE_HOME: home, DIANE_LOG_LEVEL: 'debug', ...opts.env },
    cwd: repoRoot,
    stderr: 'pipe',
    maxBufferSize: 128 * 1024 * 1024,
  });
  client.bridgeTransport = transport;
  const verbose = process.env.DIANE_TEST_VERBOSE === '1';
  transport.stderr?.on('data', (chunk: Buffer | string) => {
    const text = chunk.toString();
    client.appendStderr(text);
    if (verbose) process.stderr.write(text.replace(/^(?=.)/gm, '[diane mcp] '));
  });
  try {
    await client.connect(transport, opts.timeoutMs === undefined ? undefined : { timeout: opts.timeoutMs });
  } catch (err) {
    await transport.close().catch(() => undefined);
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `connecting to \`diane mcp\` failed: ${message}\n--- diane mcp stderr ---\n${client.stderr()}`,
      {
        cause: err,
      },
    );
  }
  if (transport.pid !== null) trackPid(transport.pid);
  return trackClosable(client);
}

/** The text of all text contents of a tool result, joined. */
export function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] } | undefined)?.content ?? [];
  return content
    .filter((c) => c.type === 'text')
    .map((c) => c.text ?? '')
    .join('');
}
