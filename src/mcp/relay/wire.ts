import type { JSONRPCMessage } from '@modelcontextprotocol/client';

/**
 * The wire contract of the relay path: which JSON-RPC requests are relayed without the SDK's
 * schema objects, the shape checks that stand in for the SDK's zod parse, and how an error
 * becomes a JSON-RPC error the way the SDK would write it. Every side of the relay (the HTTP
 * front, the slave's end of the link, the raw forward to an upstream) imports this one file.
 */

/** The routed calls (`RoutedMethod` in router.ts): the hot requests an agent repeats. */
export type HotMethod = 'tools/call' | 'prompts/get' | 'resources/read';

export type JsonRpcId = string | number;

export interface HotRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: HotMethod;
  params: Record<string, unknown>;
}

/**
 * The list requests the HTTP front's relay answers from the router's serialised pages, each with
 * the key its items go under in the result (the router's `ListKind`).
 */
export const LIST_METHODS = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
} as const;
export type ListMethod = keyof typeof LIST_METHODS;

export interface ListRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: ListMethod;
  params?: { cursor?: string; _meta?: Record<string, unknown> };
}

/** A JSON-RPC error object, exactly as it goes on the wire. */
export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

export const JSONRPC_INVALID_PARAMS = -32602;
export const JSONRPC_INTERNAL_ERROR = -32603;

/**
 * Keys the SDK lifts out of a request before its handlers see it: the 2026-07-28 envelope in
 * `_meta` and the multi-round-trip retry fields. A request carrying any of them is the SDK's to
 * serve, so the relay never has to replicate that machinery (`task`: task augmentation, which
 * Diane does not offer and the SDK refuses).
 */
const SDK_ONLY_PARAMS = ['inputResponses', 'requestState', 'task'] as const;
const SDK_ONLY_META_PREFIX = 'io.modelcontextprotocol/';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is JsonRpcId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isSafeInteger(value));
}

/**
 * A single JSON-RPC request of a hot method whose params have the shape the SDK would accept:
 * anything doubtful is left to the SDK, so that its refusals and error texts stay the only ones.
 * Only shapes are checked (strings, objects), never the contents, which the upstream judges.
 */
export function asHotRequest(message: unknown): HotRequest | undefined {
  if (!isPlainObject(message) || message.jsonrpc !== '2.0' || !isId(message.id)) return undefined;
  const { method, params } = message;
  if (method !== 'tools/call' && method !== 'prompts/get' && method !== 'resources/read') return undefined;
  if (!isPlainObject(params)) return undefined;
  for (const key of SDK_ONLY_PARAMS) if (key in params) return undefined;
  const meta = params._meta;
  if (meta !== undefined) {
    if (!isPlainObject(meta)) return undefined;
    for (const key in meta) if (key.startsWith(SDK_ONLY_META_PREFIX)) return undefined;
    const token = meta.progressToken;
    if (token !== undefined && typeof token !== 'string' && typeof token !== 'number') return undefined;
  }
  if (method === 'resources/read') {
    if (typeof params.uri !== 'string') return undefined;
  } else {
    if (typeof params.name !== 'string') return undefined;
    const args = params.arguments;
    if (args !== undefined && !isPlainObject(args)) return undefined;
    // Prompt arguments are strings (the SDK refuses anything else).
    if (method === 'prompts/get' && args !== undefined) {
      for (const key in args) if (typeof args[key] !== 'string') return undefined;
    }
  }
  return message as unknown as HotRequest;
}

/**
 * A single list request with nothing but an optional string `cursor` and a `_meta` without the
 * SDK's own keys; anything more is left to the SDK, as for hot requests.
 */
export function asListRequest(message: unknown): ListRequest | undefined {
  if (!isPlainObject(message) || message.jsonrpc !== '2.0' || !isId(message.id)) return undefined;
  const { method, params } = message;
  if (typeof method !== 'string' || !Object.hasOwn(LIST_METHODS, method)) return undefined;
  if (params !== undefined) {
    if (!isPlainObject(params)) return undefined;
    for (const key in params) if (key !== 'cursor' && key !== '_meta') return undefined;
    if (params.cursor !== undefined && typeof params.cursor !== 'string') return undefined;
    const meta = params._meta;
    if (meta !== undefined) {
      if (!isPlainObject(meta)) return undefined;
      for (const key in meta) if (key.startsWith(SDK_ONLY_META_PREFIX)) return undefined;
    }
  }
  return message as unknown as ListRequest;
}

/** The progress token the agent asked for, if any. */
export function progressTokenOf(params: Record<string, unknown>): string | number | undefined {
  return (params._meta as { progressToken?: string | number } | undefined)?.progressToken;
}

/**
 * The result as the SDK's front would send it, or why it cannot be sent. A tool result without
 * `content` gets an empty one (the SDK does the same); otherwise only the top-level shape is
 * checked: the list each method promises is a list of objects. Their contents pass untouched.
 */
export function checkedResult(
  method: HotMethod,
  result: Record<string, unknown>,
): { ok: true; result: Record<string, unknown> } | { ok: false; error: WireError } {
  const key = method === 'tools/call' ? 'content' : method === 'prompts/get' ? 'messages' : 'contents';
  let list = result[key];
  if (method === 'tools/call' && list === undefined && !('task' in result)) {
    result = { ...result, content: [] };
    list = result.content;
  }
  if (!Array.isArray(list) || !list.every(isPlainObject)) {
    return {
      ok: false,
      error: {
        code: JSONRPC_INVALID_PARAMS,
        message: `Invalid ${method} result: ${key} must be a list of objects`,
      },
    };
  }
  return { ok: true, result };
}

/**
 * The JSON-RPC error the SDK's `Protocol` writes for an error a handler threw: its numeric
 * `code` (else internal error), its message, its `data`; the 2025 era's codec writes -32002
 * (resource not found, 2026-07-28) as invalid params.
 */
export function toWireError(err: unknown): WireError {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
  const code = Number.isSafeInteger(e.code) ? (e.code as number) : JSONRPC_INTERNAL_ERROR;
  const message = typeof e.message === 'string' ? e.message : 'Internal error';
  return {
    code: code === -32002 ? JSONRPC_INVALID_PARAMS : code,
    message,
    ...(e.data !== undefined ? { data: e.data } : {}),
  };
}

/** A JSON-RPC error object as a peer sent it, checked for shape only. */
export function asWireError(value: unknown): WireError | undefined {
  if (!isPlainObject(value) || !Number.isSafeInteger(value.code) || typeof value.message !== 'string')
    return undefined;
  return value as unknown as WireError;
}

const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const NOTIFICATION_KEYS = new Set(['jsonrpc', 'method', 'params']);
const RESULT_KEYS = new Set(['jsonrpc', 'id', 'result']);
const ERROR_KEYS = new Set(['jsonrpc', 'id', 'error']);

function onlyKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}

function hasValidMeta(value: unknown): boolean {
  if (value === undefined) return true;
  if (!isPlainObject(value)) return false;
  const meta = value._meta;
  if (meta === undefined) return true;
  if (!isPlainObject(meta)) return false;
  const token = meta.progressToken;
  return token === undefined || typeof token === 'string' || typeof token === 'number';
}

/**
 * The SDK's `JSONRPCMessageSchema` as plain checks, for the transports that read every message
 * (the stdio upstream, the slave link): the same four strict shapes (request, notification,
 * result, error), without a zod parse per message. The message is returned as it came.
 */
export function asJsonRpcMessage(value: unknown): JSONRPCMessage | undefined {
  if (!isPlainObject(value) || value.jsonrpc !== '2.0') return undefined;
  if (typeof value.method === 'string') {
    if (!hasValidMeta(value.params)) return undefined;
    if ('id' in value) return isId(value.id) && onlyKeys(value, REQUEST_KEYS) ? (value as never) : undefined;
    return onlyKeys(value, NOTIFICATION_KEYS) ? (value as never) : undefined;
  }
  if ('result' in value) {
    const { result } = value;
    return isId(value.id) &&
      isPlainObject(result) &&
      (result._meta === undefined || isPlainObject(result._meta)) &&
      onlyKeys(value, RESULT_KEYS)
      ? (value as never)
      : undefined;
  }
  if (value.id !== undefined && !isId(value.id)) return undefined;
  const error = value.error;
  if (!isPlainObject(error) || !Number.isSafeInteger(error.code) || typeof error.message !== 'string')
    return undefined;
  return onlyKeys(value, ERROR_KEYS) ? (value as never) : undefined;
}

/** The cancel function of each relayed call in flight, by the JSON-RPC id it came with. */
export type CancelsInFlight = Map<JsonRpcId, (reason?: unknown) => void>;

/**
 * Runs the cancellation `message` asks for when it is a `notifications/cancelled` of a relayed
 * call in `inFlight` (which forgets it); false for anything else, which the SDK then handles.
 */
export function takeCancellation(message: unknown, inFlight: CancelsInFlight): boolean {
  const m = message as
    | { jsonrpc?: unknown; method?: unknown; params?: { requestId?: unknown; reason?: unknown } }
    | null
    | undefined;
  if (m?.jsonrpc !== '2.0' || m.method !== 'notifications/cancelled' || 'id' in m) return false;
  const requestId = m.params?.requestId;
  const cancel =
    typeof requestId === 'string' || typeof requestId === 'number' ? inFlight.get(requestId) : undefined;
  if (!cancel) return false;
  inFlight.delete(requestId as JsonRpcId);
  cancel(m.params?.reason);
  return true;
}
