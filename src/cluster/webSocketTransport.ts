import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import type { RawData, WebSocket } from 'ws';
import { asJsonRpcMessage } from '../mcp/relay/wire.js';

/** Close codes of the master–slave link. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  /** A frame that is not one JSON-RPC message. */
  invalidFrame: 1007,
  tooBig: 1009,
  /** The master is too busy to bring the link up now; the slave reconnects after its backoff. */
  tryAgainLater: 1013,
  /** The admin revoked this slave. */
  revoked: 4403,
  /** Another connection for the same host took over. */
  replaced: 4409,
  /** The host paired again: the certificate of this link is no longer the current one. */
  superseded: 4410,
  /** The certificate of this link reached its notAfter while the link was up. */
  certificateExpired: 4411,
  /**
   * The slave renewed its certificate and came back on a link opened with the new one; the old
   * link is closed by the master once its calls in flight are done. Not an error.
   */
  renewed: 4412,
  /** A CA rollover finished and this link's certificate is from the retired CA: pair again. */
  caRetired: 4413,
} as const;

/** Stays under the ws 123-byte limit on close reasons. */
function reason(text: string): string {
  return Buffer.byteLength(text) <= 120 ? text : text.slice(0, 100);
}

/**
 * The SDK `Transport` over one WebSocket: one JSON-RPC message per text frame. Anything else
 * (binary frames, invalid JSON, JSON that is not JSON-RPC) closes the link with a reason: a
 * peer that speaks garbage cannot be trusted with the rest of the session.
 */
export class WebSocketTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private closed = false;

  constructor(private readonly ws: WebSocket) {}

  async start(): Promise<void> {
    this.ws.on('message', (data: RawData, isBinary: boolean) => this.receive(data, isBinary));
    this.ws.on('close', () => this.finish());
    this.ws.on('error', (err) => this.onerror?.(err));
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (isBinary) return this.reject('binary frames are not accepted; send JSON-RPC as text');
    let message: JSONRPCMessage | undefined;
    try {
      // A shape check rather than the SDK's zod parse of every frame (mcp/relay/wire.ts).
      message = asJsonRpcMessage(JSON.parse(data.toString()));
    } catch {
      message = undefined;
    }
    if (!message) return this.reject('frame is not a valid JSON-RPC message');
    this.onmessage?.(message);
  }

  private reject(why: string): void {
    this.onerror?.(new Error(why));
    this.ws.close(CloseCode.invalidFrame, reason(why));
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.ws.readyState !== this.ws.OPEN) return Promise.reject(new Error('the link is closed'));
    return new Promise((resolve, reject) => {
      this.ws.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(code: number = CloseCode.normal, why = ''): Promise<void> {
    if (this.closed) return;
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(code, reason(why));
    }
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }
}
