import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { type Front, onServerClose } from '../frontServer.js';
import type { Router } from '../router.js';
import type { ProgressUpdate } from '../upstream.js';
import { relayCall } from './relayCall.js';
import { askAsShim } from './shimQuestions.js';
import {
  asHotRequest,
  type CancelsInFlight,
  checkedResult,
  type HotRequest,
  progressTokenOf,
  takeCancellation,
  toWireError,
} from './wire.js';

/**
 * The relay path of an SDK front on a message transport (the slave's end of the link): hot
 * requests are taken off the transport before the front's SDK `Server` sees them and run
 * through the router's call path; the result frame is written directly. The SDK server still
 * serves the handshake and every other method, and carries the upstream's questions to the
 * caller mid-call, so a relayed call asks them exactly as the SDK's shim would (`shimQuestions.ts`).
 *
 * Call before `front.server.connect(transport)`.
 */
export function relayHotRequests(router: Router, front: Front, transport: Transport): void {
  const relay = new TransportRelay(router, front, transport);
  let handler: Transport['onmessage'];
  const relayed: NonNullable<Transport['onmessage']> = (message, extra) => {
    if (!relay.take(message)) handler?.(message, extra);
  };
  // Only the property is replaced (as in orderedDelivery.ts): the SDK sets its handler here and
  // the transport calls whatever `onmessage` returns.
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: () => (handler ? relayed : undefined),
    set: (value: Transport['onmessage']) => {
      handler = value;
    },
  });
  // The SDK aborts its handlers when the connection closes; so does the relay.
  onServerClose(front.server, () => relay.close());
}

class TransportRelay {
  private readonly inFlight: CancelsInFlight = new Map();

  constructor(
    private readonly router: Router,
    private readonly front: Front,
    private readonly transport: Transport,
  ) {}

  take(message: JSONRPCMessage): boolean {
    const request = asHotRequest(message);
    if (!request) return this.takeCancel(message);
    if (!this.servable(request)) return false;
    this.serve(request);
    return true;
  }

  close(): void {
    for (const cancel of [...this.inFlight.values()]) cancel('the connection closed');
    this.inFlight.clear();
  }

  /** An initialized 2025-era connection, and no duplicate id (which the SDK would judge). */
  private servable(request: HotRequest): boolean {
    const { server } = this.front;
    if (!server.getClientCapabilities()) return false;
    if (!server.getNegotiatedProtocolVersion()?.startsWith('2025')) return false;
    if (request.method === 'tools/call' && this.front.isMetaTool(String(request.params.name))) return false;
    return !this.inFlight.has(request.id);
  }

  private serve(request: HotRequest): void {
    const { id } = request;
    const token = progressTokenOf(request.params);
    const send = (message: object) =>
      this.transport.send(message as JSONRPCMessage).catch(() => {
        // The link is gone: its close cancels what is still in flight.
      });
    const onprogress =
      token === undefined
        ? undefined
        : (update: ProgressUpdate) =>
            void send({
              jsonrpc: '2.0',
              method: 'notifications/progress',
              params: { ...update, progressToken: token },
            });
    const server = this.front.server;
    // Built on the first question only: most calls never ask one.
    let asking: AbortController | undefined;
    const call = relayCall(this.router, request.method, request.params, {
      scope: this.front.scope(),
      ...(this.front.agent ? { agent: this.front.agent } : {}),
      capabilities: server.getClientCapabilities(),
      ...(onprogress ? { onprogress } : {}),
      ask: (requests) => {
        asking ??= new AbortController();
        return askAsShim(server, requests, { relatedRequestId: id, signal: asking.signal });
      },
    });
    let cancelled = false;
    const cancel = (reason?: unknown) => {
      cancelled = true;
      // The SDK server cancels the questions it asked for this call, as the shim's do.
      asking?.abort(reason);
      call.cancel();
    };
    this.inFlight.set(id, cancel);
    void call.done.then((step) => {
      if (this.inFlight.get(id) === cancel) this.inFlight.delete(id);
      // A cancelled request gets no response, as from the SDK.
      if (cancelled) return;
      if (step.kind === 'result') {
        const checked = checkedResult(request.method, step.result);
        if (checked.ok) return send({ result: checked.result, jsonrpc: '2.0', id });
        return send({ jsonrpc: '2.0', id, error: checked.error });
      }
      return send({ jsonrpc: '2.0', id, error: toWireError(step.error) });
    });
  }

  private takeCancel(message: JSONRPCMessage): boolean {
    return takeCancellation(message, this.inFlight);
  }
}
