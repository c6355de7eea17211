import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { ProtocolError, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import type { CallOptions, JsonObject, ProgressUpdate } from '../upstream.js';
import { asWireError, type HotMethod, isPlainObject } from './wire.js';

interface Pending {
  resolve: (result: JsonObject) => void;
  reject: (err: Error) => void;
  onprogress?: (update: ProgressUpdate) => void;
  timer?: NodeJS.Timeout;
  idleMs: number;
  /** Epoch ms past which progress no longer extends the call. */
  hardDeadline: number;
  cancel: (reason: unknown) => void;
}

/**
 * Hot requests to an upstream as raw JSON-RPC over the SDK client's own transport, their
 * results taken as the upstream sent them (shape only: an object) instead of through the SDK
 * `Client` (a zod probe per request, a parse of every result). It does what the SDK's
 * `Protocol.request` does for these requests and nothing more: its own ids (strings, which the
 * SDK's numeric ids never equal), the id as progress token, the idle timeout restarted by
 * progress under a hard cap, `notifications/cancelled` on abort or timeout. Its failures are
 * the SDK's error types (`SdkError` codes, `ProtocolError` for a JSON-RPC error), so the owner
 * handles both paths alike.
 *
 * It sees every message before the SDK (`take`), and keeps only answers to its own requests;
 * handled synchronously, a request's progress is always delivered before its result.
 */
export class RawForward {
  private nextId = 0;
  private readonly pending = new Map<string, Pending>();
  private closedWith?: Error;

  constructor(private readonly transport: Transport) {}

  request(method: HotMethod, params: JsonObject, opts: CallOptions): Promise<JsonObject> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (opts.signal.aborted) return Promise.reject(abortError(opts.signal.reason));
    const id = `diane-${++this.nextId}`;
    const message = {
      jsonrpc: '2.0' as const,
      id,
      method,
      params: { ...params, _meta: { ...(params._meta as JsonObject | undefined), progressToken: id } },
    };
    return new Promise<JsonObject>((resolve, reject) => {
      const onAbort = () => entry.cancel(opts.signal.reason);
      const settle = () => {
        clearTimeout(entry.timer);
        opts.signal.removeEventListener('abort', onAbort);
        this.pending.delete(id);
      };
      const entry: Pending = {
        resolve: (result) => {
          settle();
          resolve(result);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
        ...(opts.onprogress ? { onprogress: opts.onprogress } : {}),
        idleMs: opts.timeoutMs,
        hardDeadline: Date.now() + opts.maxTotalMs,
        cancel: (reason) => {
          if (!this.pending.has(id)) return;
          this.transport
            .send({
              jsonrpc: '2.0',
              method: 'notifications/cancelled',
              params: { requestId: id, reason: String(reason) },
            })
            .catch(() => {
              // The link is gone; its close settles everything else.
            });
          entry.reject(reason instanceof SdkError ? reason : abortError(reason));
        },
      };
      this.pending.set(id, entry);
      opts.signal.addEventListener('abort', onAbort, { once: true });
      this.armTimer(entry);
      this.transport.send(message as JSONRPCMessage).catch((err: unknown) => {
        entry.reject(
          new SdkError(SdkErrorCode.SendFailed, `Failed to send a request: ${(err as Error).message}`),
        );
      });
    });
  }

  /** Takes a message that answers one of its requests; anything else is left to the SDK. */
  take(message: JSONRPCMessage): boolean {
    const m = message as Record<string, unknown>;
    if ('method' in m) {
      if (m.method !== 'notifications/progress' || !isPlainObject(m.params)) return false;
      const { progressToken, ...update } = m.params;
      const entry = typeof progressToken === 'string' ? this.pending.get(progressToken) : undefined;
      if (!entry) return false;
      this.armTimer(entry);
      entry.onprogress?.(update as unknown as ProgressUpdate);
      return true;
    }
    const entry = typeof m.id === 'string' ? this.pending.get(m.id) : undefined;
    if (!entry) return false;
    if ('result' in m) {
      if (isPlainObject(m.result)) entry.resolve(m.result);
      else entry.reject(new SdkError(SdkErrorCode.InvalidResult, 'a result must be an object'));
      return true;
    }
    const error = asWireError(m.error);
    entry.reject(
      error
        ? ProtocolError.fromError(error.code, error.message, error.data)
        : new SdkError(SdkErrorCode.InvalidResult, 'an error response without a valid error object'),
    );
    return true;
  }

  /** The connection is gone: every request in flight fails as the SDK's would. */
  close(): void {
    this.closedWith ??= new SdkError(SdkErrorCode.ConnectionClosed, 'Connection closed');
    for (const entry of [...this.pending.values()]) entry.reject(this.closedWith);
  }

  private armTimer(entry: Pending): void {
    clearTimeout(entry.timer);
    const left = entry.hardDeadline - Date.now();
    const wait = Math.min(entry.idleMs, left);
    entry.timer = setTimeout(
      () => entry.cancel(new SdkError(SdkErrorCode.RequestTimeout, 'Request timed out', { timeout: wait })),
      Math.max(wait, 0),
    );
  }
}

/** What the SDK rejects an aborted request with. */
function abortError(reason: unknown): SdkError {
  return new SdkError(SdkErrorCode.RequestTimeout, String(reason));
}
