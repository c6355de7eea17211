import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Front } from '../frontServer.js';
import type { Router } from '../router.js';
import type { ProgressUpdate } from '../upstream.js';
import { relayCall } from './relayCall.js';
import {
  asHotRequest,
  checkedResult,
  type HotRequest,
  type JsonRpcId,
  progressTokenOf,
  toWireError,
} from './wire.js';

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

/**
 * The relay path of one 2025-era HTTP session: a POST whose body is one hot request is served
 * here, through the router's call path, instead of by the SDK transport (web `Request`
 * conversion, an AbortSignal per request, web streams, zod on every message). Everything else,
 * and every hot request this path cannot serve exactly as the SDK would, stays the SDK's; the
 * decision is made before anything is sent. See docs/architecture.md, "The relay path".
 */
export class HttpRelaySession {
  /** Relayed calls in flight by JSON-RPC id, for `notifications/cancelled`. */
  private readonly inFlight = new Map<JsonRpcId, () => void>();

  constructor(
    private readonly router: Router,
    private readonly front: Front,
    private readonly sessionId: string,
  ) {}

  /**
   * Serves the POST if it is the relay's, and says whether it did. `body` was parsed (with the
   * front's size and depth limits) and the caller authenticated the agent and its session.
   */
  tryServe(req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
    if (!acceptsBoth(req) || !isJsonContentType(req)) return false;
    const request = asHotRequest(body);
    if (!request) return this.tryCancel(res, body);
    if (!this.servable(req, request)) return false;
    this.serve(res, request);
    return true;
  }

  /** Ends the session's relayed calls, as the SDK aborts its handlers when a session closes. */
  close(): void {
    for (const cancel of [...this.inFlight.values()]) cancel();
    this.inFlight.clear();
  }

  /**
   * Whether the SDK would serve this request exactly as the relay does: an initialized session
   * of the 2025 era, the protocol version header it would accept without question, and an agent
   * that declared nothing an upstream could ask of it (server-to-agent requests mid-call are the
   * SDK's legacy shim's job). Discovery meta-tools are the SDK handler's too.
   */
  private servable(req: IncomingMessage, request: HotRequest): boolean {
    const { server } = this.front;
    const capabilities = server.getClientCapabilities();
    if (!capabilities || capabilities.sampling || capabilities.elicitation || capabilities.roots)
      return false;
    const version = server.getNegotiatedProtocolVersion();
    if (version === undefined || !version.startsWith('2025')) return false;
    const header = req.headers['mcp-protocol-version'];
    if (header !== undefined && header !== version) return false;
    if (request.method === 'tools/call' && this.front.isMetaTool(String(request.params.name))) return false;
    return !this.inFlight.has(request.id);
  }

  private serve(res: ServerResponse, request: HotRequest): void {
    const reply = new LazyReply(res, this.sessionId);
    const token = progressTokenOf(request.params);
    const onprogress =
      token === undefined
        ? undefined
        : (update: ProgressUpdate) =>
            reply.send({
              jsonrpc: '2.0',
              method: 'notifications/progress',
              params: { ...update, progressToken: token },
            });
    const call = relayCall(this.router, request.method, request.params, {
      scope: this.front.scope(),
      ...(this.front.agent ? { agent: this.front.agent } : {}),
      capabilities: this.front.server.getClientCapabilities(),
      ...(onprogress ? { onprogress } : {}),
    });
    const { id } = request;
    let cancelled = false;
    const cancel = () => {
      cancelled = true;
      call.cancel();
    };
    this.inFlight.set(id, cancel);
    // An agent that hung up cannot read the result: the upstream stops working for it.
    res.once('close', () => {
      if (!reply.ended) cancel();
    });
    void call.done.then((step) => {
      if (this.inFlight.get(id) === cancel) this.inFlight.delete(id);
      // A cancelled request gets no response (as from the SDK), only the end of the POST.
      if (cancelled) return reply.abandon();
      if (step.kind === 'result') {
        const checked = checkedResult(request.method, step.result);
        if (checked.ok) return reply.end({ result: checked.result, jsonrpc: '2.0', id });
        return reply.end({ jsonrpc: '2.0', id, error: checked.error });
      }
      reply.end({ jsonrpc: '2.0', id, error: toWireError(step.error) });
    });
  }

  /** `notifications/cancelled` for a relayed call: the SDK would answer 202 and know nothing of it. */
  private tryCancel(res: ServerResponse, body: unknown): boolean {
    const message = body as {
      jsonrpc?: unknown;
      method?: unknown;
      id?: unknown;
      params?: { requestId?: unknown };
    };
    if (message?.jsonrpc !== '2.0' || message.method !== 'notifications/cancelled' || 'id' in message)
      return false;
    const requestId = message.params?.requestId;
    const cancel =
      typeof requestId === 'string' || typeof requestId === 'number'
        ? this.inFlight.get(requestId)
        : undefined;
    if (!cancel) return false;
    this.inFlight.delete(requestId as JsonRpcId);
    cancel();
    res.writeHead(202).end();
    return true;
  }
}

/**
 * One POST's answer, its headers decided by the first message: the result alone goes as
 * `application/json`; a progress notification before it turns the answer into an event stream.
 */
class LazyReply {
  private streaming = false;
  ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly sessionId: string,
  ) {}

  send(message: object): void {
    if (this.ended || this.res.destroyed) return;
    if (!this.streaming) {
      this.streaming = true;
      this.res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId });
    }
    this.res.write(sseEvent(message));
  }

  /** Ends the POST without a message. */
  abandon(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.res.destroyed) return;
    if (this.streaming) this.res.end();
    else this.res.writeHead(202).end();
  }

  end(message: object): void {
    if (this.ended) return;
    this.ended = true;
    if (this.res.destroyed) return;
    if (this.streaming) {
      this.res.end(sseEvent(message));
      return;
    }
    const body = JSON.stringify(message);
    this.res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'mcp-session-id': this.sessionId,
    });
    this.res.end(body);
  }
}

function sseEvent(message: object): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

function acceptsBoth(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('application/json') && accept.includes('text/event-stream');
}

function isJsonContentType(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  // The common form without string work: splitting and lower-casing the header showed in the profile.
  return type === 'application/json' || (type !== undefined && /^application\/json\s*(;|$)/i.test(type));
}
