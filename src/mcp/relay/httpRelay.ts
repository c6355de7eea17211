import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transport } from '@modelcontextprotocol/server';
import type { Front } from '../frontServer.js';
import type { Router } from '../router.js';
import type { AgentRequest, ProgressUpdate } from '../upstream.js';
import { LazyReply } from './lazyReply.js';
import { relayCall } from './relayCall.js';
import { askAsShim } from './shimQuestions.js';
import {
  asHotRequest,
  asJsonRpcMessage,
  asListRequest,
  type CancelsInFlight,
  checkedResult,
  type HotRequest,
  type JsonRpcId,
  LIST_METHODS,
  type ListRequest,
  progressTokenOf,
  takeCancellation,
  toWireError,
} from './wire.js';

/**
 * The relay path of one 2025-era HTTP session: a POST whose body is one hot request is served
 * here (and so are the agent's answers to the questions such calls ask), through the router's
 * call path, instead of by the SDK transport (web `Request` conversion, an AbortSignal per
 * request, web streams, zod on every message). Everything else,
 * and every hot request this path cannot serve exactly as the SDK would, stays the SDK's; the
 * decision is made before anything is sent. See docs/architecture.md, "The relay path".
 *
 * An upstream's questions mid-call are asked as the SDK's legacy shim asks them, by the front's
 * SDK server (`shimQuestions.ts`): the server writes them with a related id of the relay's own,
 * which the wrapped `transport.send` puts on the call's stream instead of the SDK transport's;
 * the agent's POSTed answers to them come back here and go to the server as the transport would
 * hand them over.
 */
export class HttpRelaySession {
  /** Relayed calls in flight by JSON-RPC id, for `notifications/cancelled`. */
  private readonly inFlight: CancelsInFlight = new Map();
  /** The streams of relayed calls that asked the agent something, by their related id. */
  private readonly streams = new Map<string, LazyReply>();
  /** Questions asked on those streams and not answered yet: question id → related id. */
  private readonly questions = new Map<JsonRpcId, string>();
  /**
   * Related ids are the relay's, never an agent's request id: the SDK transport keeps writing
   * its own requests' messages, whatever ids the agent chose.
   */
  private readonly relatedPrefix = `diane-relay-${randomUUID()}-`;
  private relatedSeq = 0;

  constructor(
    private readonly router: Router,
    private readonly front: Front,
    private readonly transport: Transport,
    private readonly sessionId: string,
  ) {
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      const related = options?.relatedRequestId;
      if (typeof related !== 'string' || !related.startsWith(this.relatedPrefix))
        return send(message, options);
      this.writeOnCallStream(related, message);
      return Promise.resolve();
    };
  }

  /**
   * Serves the POST if it is the relay's, and says whether it did. `body` was parsed (with the
   * front's size and depth limits) and the caller authenticated the agent and its session.
   */
  tryServe(req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
    if (!acceptsBoth(req) || !isJsonContentType(req)) return false;
    const request = asHotRequest(body);
    if (!request)
      return this.tryList(req, res, body) || this.tryAnswer(req, res, body) || this.tryCancel(res, body);
    if (!this.servable(req, request)) return false;
    this.serve(res, request);
    return true;
  }

  /** Ends the session's relayed calls, as the SDK aborts its handlers when a session closes. */
  close(): void {
    for (const cancel of [...this.inFlight.values()]) cancel('the session closed');
    this.inFlight.clear();
  }

  /**
   * Whether the SDK would serve this request exactly as the relay does: an initialized session
   * of the 2025 era and the protocol version header it would accept without question.
   * Discovery meta-tools are the SDK handler's.
   */
  private servable(req: IncomingMessage, request: HotRequest): boolean {
    if (!this.sessionReady(req)) return false;
    if (request.method === 'tools/call' && this.front.isMetaTool(String(request.params.name))) return false;
    return !this.inFlight.has(request.id);
  }

  /** An initialized session of the 2025 era, and a version header the SDK would accept. */
  private sessionReady(req: IncomingMessage): boolean {
    return this.front.server.getClientCapabilities() !== undefined && this.versionFits(req);
  }

  private versionFits(req: IncomingMessage): boolean {
    const version = this.front.server.getNegotiatedProtocolVersion();
    if (version === undefined || !version.startsWith('2025')) return false;
    const header = req.headers['mcp-protocol-version'];
    return header === undefined || header === version;
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
    // Built on the first question only: most calls never ask one.
    let related: string | undefined;
    let asking: AbortController | undefined;
    const ask = (requests: Record<string, AgentRequest>) => {
      if (related === undefined) {
        related = `${this.relatedPrefix}${++this.relatedSeq}`;
        this.streams.set(related, reply);
      }
      asking ??= new AbortController();
      return askAsShim(this.front.server, requests, { relatedRequestId: related, signal: asking.signal });
    };
    const call = relayCall(this.router, request.method, request.params, {
      scope: this.front.scope(),
      ...(this.front.agent ? { agent: this.front.agent } : {}),
      capabilities: this.front.server.getClientCapabilities(),
      ...(onprogress ? { onprogress } : {}),
      ask,
    });
    const { id } = request;
    let cancelled = false;
    const cancel = (reason?: unknown) => {
      cancelled = true;
      // First, while the stream is open: the SDK server cancels its questions on it.
      asking?.abort(reason);
      call.cancel();
    };
    this.inFlight.set(id, cancel);
    // An agent that hung up cannot read the result: the upstream stops working for it.
    res.once('close', () => {
      if (!reply.ended) cancel('the agent closed the request');
    });
    void call.done.then((step) => {
      if (this.inFlight.get(id) === cancel) this.inFlight.delete(id);
      if (related !== undefined) this.closeStream(related);
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

  /**
   * A list request, answered with the router's page as serialised JSON (the SDK path would check
   * and serialise every definition of the page again); discovery mode's `tools/list` is the SDK
   * handler's. A bad cursor gets the SDK path's error.
   */
  private tryList(req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
    const request = asListRequest(body);
    if (!request || !this.sessionReady(req)) return false;
    if (request.method === 'tools/list' && !this.front.listsRoutedTools) return false;
    this.serveList(new LazyReply(res, this.sessionId), request);
    return true;
  }

  private serveList(reply: LazyReply, request: ListRequest): void {
    const { id } = request;
    let json: string;
    try {
      json = this.router.listJson(LIST_METHODS[request.method], request.params?.cursor, this.front.scope());
    } catch (err) {
      reply.end({ jsonrpc: '2.0', id, error: toWireError(err) });
      return;
    }
    reply.endJson(`{"result":${json},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`);
  }

  /** What the SDK server writes for a relayed call: its questions, and their cancellation. */
  private writeOnCallStream(related: string, message: object): void {
    const reply = this.streams.get(related);
    if (!reply) return;
    const { id, method } = message as { id?: unknown; method?: unknown };
    if (typeof method === 'string' && (typeof id === 'string' || typeof id === 'number'))
      this.questions.set(id, related);
    reply.send(message);
  }

  private closeStream(related: string): void {
    this.streams.delete(related);
    for (const [id, on] of this.questions) if (on === related) this.questions.delete(id);
  }

  /**
   * The agent's answer (a JSON-RPC response or error) to a question of a relayed call: handed to
   * the SDK server, which matches it to its question by id, and acknowledged with 202, as the
   * SDK transport does. Answers to anything else are the SDK transport's.
   */
  private tryAnswer(req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
    const id = (body as { id?: unknown } | null)?.id;
    if ((typeof id !== 'string' && typeof id !== 'number') || !this.questions.has(id)) return false;
    const message = asJsonRpcMessage(body);
    if (!message || 'method' in message || !this.versionFits(req)) return false;
    this.questions.delete(id);
    this.transport.onmessage?.(message);
    res.writeHead(202).end();
    return true;
  }

  /** `notifications/cancelled` for a relayed call: the SDK would answer 202 and know nothing of it. */
  private tryCancel(res: ServerResponse, body: unknown): boolean {
    if (!takeCancellation(body, this.inFlight)) return false;
    res.writeHead(202).end();
    return true;
  }
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
