import type { CallToolResult, Tool, Transport } from '@modelcontextprotocol/client';
import { Client, SdkError, SdkErrorCode, type StandardSchemaV1 } from '@modelcontextprotocol/client';
import type { Logger } from '../log.js';
import { type CallOptions, UpstreamTimeoutError, UpstreamUnavailableError } from './upstream.js';

export interface ClientSessionOptions {
  clientName: string;
  clientVersion: string;
  logger: Logger;
  connectTimeoutMs: number;
  /** Called after the tool list was re-read because the upstream announced a change. */
  onToolsChanged: () => void;
  /** Called once when the connection is gone, whoever closed it. */
  onClosed: (error?: Error) => void;
}

/**
 * Diane forwards tool results; the agent's own client validates them. Checking the whole result
 * again on every hop cost about a tenth of the master's CPU per call, so only its shape is checked.
 */
const FORWARDED_RESULT: StandardSchemaV1<unknown, CallToolResult> = {
  '~standard': {
    version: 1,
    vendor: 'diane',
    validate: (value) =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? { value: value as CallToolResult }
        : { issues: [{ message: 'a tool result must be an object' }] },
  },
};

/**
 * One live MCP client connection to an upstream, over any SDK transport: the initialize
 * handshake, the tool list (re-read on `tools/list_changed`), and call forwarding with
 * timeout, progress and cancellation. Reconnecting is the owner's job.
 */
export class ClientSession {
  private toolList: readonly Tool[] = [];
  private isClosed = false;
  private lastTransportError?: Error;
  private refreshing?: Promise<void>;
  private refreshAgain = false;

  private constructor(
    private readonly client: Client,
    private readonly opts: ClientSessionOptions,
  ) {}

  static async open(transport: Transport, opts: ClientSessionOptions): Promise<ClientSession> {
    const client = new Client({ name: opts.clientName, version: opts.clientVersion }, { capabilities: {} });
    const session = new ClientSession(client, opts);
    client.onerror = (err) => {
      session.lastTransportError = err;
      opts.logger.debug({ err: err.message }, 'upstream transport error');
      // HTTP transports report a dead server only through onerror; find out whether it is gone.
      if (session.isOpen && isTransportFailure(err)) void session.checkAlive();
    };
    client.onclose = () => session.handleClose();
    client.setNotificationHandler('notifications/tools/list_changed', () => session.scheduleRefresh());
    try {
      await client.connect(transport, { timeout: opts.connectTimeoutMs });
      await session.refreshTools();
      session.opened = true;
    } catch (err) {
      session.isClosed = true;
      await client.close().catch(() => {});
      throw err;
    }
    return session;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private get isOpen(): boolean {
    return !this.isClosed && this.opened;
  }

  private opened = false;
  private checking?: Promise<boolean>;

  /**
   * Pings the upstream; a link that cannot answer is closed, which hands it to the owner's
   * restart logic. Concurrent checks share one ping.
   */
  checkAlive(timeoutMs = this.opts.connectTimeoutMs): Promise<boolean> {
    if (this.isClosed) return Promise.resolve(false);
    this.checking ??= this.client
      .ping({ timeout: timeoutMs })
      .then(() => true)
      .catch(async (err) => {
        if (this.isClosed) return false;
        this.lastTransportError = err as Error;
        this.opts.logger.warn({ err: (err as Error).message }, 'upstream does not answer; closing the link');
        await this.close().catch(() => {});
        return false;
      })
      .finally(() => {
        this.checking = undefined;
      });
    return this.checking;
  }

  tools(): readonly Tool[] {
    return this.toolList;
  }

  serverVersion(): string | undefined {
    return this.client.getServerVersion()?.version;
  }

  private async refreshTools(): Promise<void> {
    const capabilities = this.client.getServerCapabilities();
    if (!capabilities?.tools) {
      this.toolList = [];
      return;
    }
    const result = await this.client.listTools(undefined, {
      cacheMode: 'bypass',
      timeout: this.opts.connectTimeoutMs,
    });
    this.toolList = result.tools;
  }

  /** Coalesces bursts of list_changed into at most one refresh in flight plus one queued. */
  private scheduleRefresh(): void {
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = this.refreshTools()
      .then(() => this.opts.onToolsChanged())
      .catch((err) =>
        this.opts.logger.warn({ err: (err as Error).message }, 'could not re-read the tool list'),
      )
      .finally(() => {
        this.refreshing = undefined;
        if (this.refreshAgain && !this.isClosed) {
          this.refreshAgain = false;
          this.scheduleRefresh();
        }
      });
  }

  async callTool(
    name: string,
    args: Record<string, unknown> | undefined,
    opts: CallOptions,
    unavailableMessage: string,
  ): Promise<CallToolResult> {
    if (this.isClosed) throw new UpstreamUnavailableError(unavailableMessage);
    try {
      return await this.client.request(
        { method: 'tools/call', params: args === undefined ? { name } : { name, arguments: args } },
        FORWARDED_RESULT,
        {
          signal: opts.signal,
          onprogress: opts.onprogress,
          timeout: opts.timeoutMs,
          resetTimeoutOnProgress: true,
          maxTotalTimeout: opts.maxTotalMs,
        },
      );
    } catch (err) {
      if (opts.signal.aborted) throw err;
      if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout) {
        throw new UpstreamTimeoutError(err.message);
      }
      if (this.isClosed || (err instanceof SdkError && err.code === SdkErrorCode.ConnectionClosed)) {
        throw new UpstreamUnavailableError(unavailableMessage);
      }
      if (isTransportFailure(err)) {
        // The request never reached the upstream: the link is broken, not the tool.
        void this.checkAlive();
        throw new UpstreamUnavailableError(unavailableMessage);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    await this.client.close();
    this.handleClose();
  }

  private handleClose(): void {
    if (this.isClosed) {
      return;
    }
    this.isClosed = true;
    this.toolList = [];
    this.opts.onClosed(this.lastTransportError);
  }
}

/** Errors that mean the transport cannot carry messages (as opposed to an upstream's answer). */
function isTransportFailure(err: unknown): boolean {
  if (err instanceof SdkError)
    return err.code === SdkErrorCode.SendFailed || err.code === SdkErrorCode.NotConnected;
  if (
    err instanceof Error &&
    /fetch failed|terminated|SSE stream disconnected|ECONNREFUSED/.test(err.message)
  ) {
    return true;
  }
  const code =
    (err as { code?: unknown; cause?: { code?: unknown } })?.cause?.code ?? (err as { code?: unknown })?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE';
}
