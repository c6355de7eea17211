import type { IncomingMessage } from 'node:http';
import type { Server } from '@modelcontextprotocol/server';
import { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import { Backoff } from '../mcp/backoff.js';
import { createFrontServer, type FrontInfo, LiveServers } from '../mcp/frontServer.js';
import type { Router } from '../mcp/router.js';
import type { Refusal } from './certificateCheck.js';
import { startHeartbeat } from './heartbeat.js';
import type { SlaveCredentials } from './slaveCredentials.js';
import { CloseCode, WebSocketTransport } from './webSocketTransport.js';

export type SlaveState =
  | 'connecting'
  | 'connected'
  | 'backoff'
  | 'revoked'
  | 'superseded'
  | 'expired'
  | 'stopped';

export interface SlaveStatus {
  state: SlaveState;
  host_id: string;
  master: string;
  connected_at?: string;
  last_error?: string;
  next_retry_at?: string;
  attempts: number;
}

export interface SlaveAgentOptions {
  creds: SlaveCredentials;
  router: Router;
  info: FrontInfo;
  logger: Logger;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxPayloadBytes: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** A link that lived this long resets the backoff. */
  stableAfterMs: number;
  onStatus: (status: SlaveStatus) => void;
}

/** Why the agent stopped for good. */
export type SlaveOutcome = 'stopped' | 'revoked' | 'superseded' | 'expired';

type LinkEnd =
  | { kind: 'closed'; code: number; reason: string; connectedMs: number }
  | { kind: 'refused'; status: number; refusal?: Refusal }
  | { kind: 'failed'; message: string };

const FATAL_REFUSALS: Record<string, SlaveOutcome> = {
  revoked: 'revoked',
  superseded: 'superseded',
  disabled: 'revoked',
  expired: 'expired',
};

/**
 * The refusals after which redialing cannot help. A 5xx is the master's own fault (the hub
 * answers 500 when its check crashes), so it is retried whatever header came with it.
 */
export function fatalRefusal(status: number, refusal: string | undefined): SlaveOutcome | undefined {
  if (status >= 500 || refusal === undefined || !Object.hasOwn(FATAL_REFUSALS, refusal)) return undefined;
  return FATAL_REFUSALS[refusal];
}

/**
 * The slave's side of the cluster: dials the master over WebSocket with mutual TLS (the master
 * is verified against the CA pinned at pairing), serves this machine's aggregated tools as an
 * MCP server over that socket, and redials with full-jitter backoff whenever the link drops.
 * It gives up only when the master says the credentials are revoked or expired.
 */
export class SlaveAgent {
  private readonly backoff: Backoff;
  private stopped = false;
  private current?: WebSocket;
  private wakeUp?: () => void;
  private status: SlaveStatus;

  constructor(private readonly opts: SlaveAgentOptions) {
    this.backoff = new Backoff({ baseMs: opts.backoffBaseMs, capMs: opts.backoffCapMs, jitter: 'full' });
    this.status = {
      state: 'connecting',
      host_id: opts.creds.host_id,
      master: opts.creds.ws_url,
      attempts: 0,
    };
  }

  async run(): Promise<SlaveOutcome> {
    while (!this.stopped) {
      if (new Date(this.opts.creds.expires_at).getTime() <= Date.now())
        return this.finish('expired', 'certificate expired');
      this.setStatus({ state: 'connecting', attempts: this.status.attempts + 1 });
      const end = await this.connectOnce();
      if (this.stopped) break;
      if (end.kind === 'refused') {
        const fatal = fatalRefusal(end.status, end.refusal);
        if (fatal) return this.finish(fatal, `the master refused the connection: ${end.refusal}`);
        this.setStatus({
          last_error: `the master refused the connection (HTTP ${end.status}${end.refusal ? `, ${end.refusal}` : ''})`,
        });
      } else if (end.kind === 'closed') {
        if (end.code === CloseCode.revoked) return this.finish('revoked', 'credentials revoked');
        if (end.code === CloseCode.superseded) {
          return this.finish('superseded', 'credentials superseded: this host paired again with another key');
        }
        if (end.code === CloseCode.certificateExpired) return this.finish('expired', 'certificate expired');
        if (end.connectedMs >= this.opts.stableAfterMs) this.backoff.reset();
        this.setStatus({ last_error: `link closed (${end.code}${end.reason ? ` ${end.reason}` : ''})` });
      } else {
        this.setStatus({ last_error: end.message });
      }
      const delay = this.backoff.next();
      this.setStatus({
        state: 'backoff',
        connected_at: undefined,
        next_retry_at: new Date(Date.now() + delay).toISOString(),
      });
      this.opts.logger.info(
        { retryInMs: delay, error: this.status.last_error },
        'link to the master is down; retrying',
      );
      await this.sleep(delay);
    }
    return this.finish('stopped');
  }

  private finish(outcome: SlaveOutcome, why?: string): SlaveOutcome {
    this.setStatus({
      state: outcome === 'stopped' ? 'stopped' : outcome,
      last_error: why,
      next_retry_at: undefined,
    });
    return outcome;
  }

  private connectOnce(): Promise<LinkEnd> {
    const { creds } = this.opts;
    return new Promise<LinkEnd>((resolve) => {
      let openedAt: number | undefined;
      let server: Server | undefined;
      let unsubscribe: (() => void) | undefined;
      let settled = false;
      const settle = (end: LinkEnd) => {
        if (settled) return;
        settled = true;
        unsubscribe?.();
        void server?.close().catch(() => {});
        resolve(end);
      };
      const ws = new WebSocket(creds.ws_url, {
        cert: creds.client_cert,
        key: creds.client_key,
        ca: creds.ca_cert,
        minVersion: 'TLSv1.3',
        maxPayload: this.opts.maxPayloadBytes,
        perMessageDeflate: false,
        handshakeTimeout: 15_000,
        // Masking protects browsers' intermediaries from forged frames; this link is mutual TLS
        // between two Dianes, and masking cost 2-4 ms per routed 1 MiB result.
        generateMask: (mask) => mask.fill(0),
      });
      this.current = ws;
      ws.on('unexpected-response', (_req, res: IncomingMessage) => {
        const refusal = res.headers['x-diane-refusal'];
        res.resume();
        settle({
          kind: 'refused',
          status: res.statusCode ?? 0,
          refusal: typeof refusal === 'string' ? (refusal as Refusal) : undefined,
        });
        ws.terminate();
      });
      ws.on('error', (err) => {
        this.opts.logger.debug({ err: err.message }, 'link error');
        if (openedAt === undefined) settle({ kind: 'failed', message: err.message });
      });
      ws.on('open', () => {
        openedAt = Date.now();
        const transport = new WebSocketTransport(ws);
        const front = createFrontServer(this.opts.router, this.opts.info, { persistent: true });
        server = front;
        const live = new LiveServers();
        live.add(front);
        unsubscribe = this.opts.router.onListChanged((kind) => live.announceListChanged(kind));
        front.connect(transport).catch((err) => {
          this.opts.logger.warn({ err: (err as Error).message }, 'could not serve MCP on the link');
          ws.close(CloseCode.invalidFrame, 'MCP setup failed');
        });
        startHeartbeat(ws, {
          intervalMs: this.opts.heartbeatIntervalMs,
          timeoutMs: this.opts.heartbeatTimeoutMs,
          onTimeout: () => {
            this.opts.logger.warn('the master missed its heartbeat; reconnecting');
            ws.terminate();
          },
        });
        // Attempts count from the last success, so `slave status` shows the current outage only.
        this.setStatus({
          attempts: 0,
          state: 'connected',
          connected_at: new Date(openedAt).toISOString(),
          last_error: undefined,
          next_retry_at: undefined,
        });
        this.opts.logger.info({ master: creds.ws_url }, 'connected to the master');
      });
      ws.on('close', (code, reason) => {
        settle({
          kind: 'closed',
          code,
          reason: reason.toString(),
          connectedMs: openedAt === undefined ? 0 : Date.now() - openedAt,
        });
      });
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private setStatus(patch: Partial<SlaveStatus>): void {
    this.status = { ...this.status, ...patch };
    this.opts.onStatus({ ...this.status });
  }

  stop(): void {
    this.stopped = true;
    this.wakeUp?.();
    this.current?.close(CloseCode.goingAway, 'slave shutting down');
  }
}
