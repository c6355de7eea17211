import { parseJSONRPCMessage } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import {
  asHotRequest,
  asJsonRpcMessage,
  asListRequest,
  checkedResult,
  toWireError,
} from '../../src/mcp/relay/wire.js';

/** Messages the SDK's zod schema accepts or refuses; the shape check must agree on each. */
const SAMPLES: unknown[] = [
  { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } },
  { jsonrpc: '2.0', id: 'a', method: 'ping' },
  { jsonrpc: '2.0', id: 1.5, method: 'ping' },
  { jsonrpc: '2.0', id: null, method: 'ping' },
  { jsonrpc: '2.0', id: 1, method: 'ping', extra: true },
  { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } },
  { jsonrpc: '2.0', method: 'notifications/x', params: { _meta: { progressToken: {} } } },
  { jsonrpc: '2.0', method: 'notifications/x', params: [] },
  { jsonrpc: '2.0', method: 'n', params: 'text' },
  { jsonrpc: '1.0', method: 'n' },
  { jsonrpc: '2.0', id: 3, result: {} },
  { jsonrpc: '2.0', id: 3, result: { content: [], _meta: { a: 1 } } },
  { jsonrpc: '2.0', id: 3, result: [] },
  { jsonrpc: '2.0', id: 3, result: 'x' },
  { jsonrpc: '2.0', id: 3, result: {}, error: { code: 1, message: 'm' } },
  { jsonrpc: '2.0', id: 3, error: { code: -32600, message: 'm', data: [1] } },
  { jsonrpc: '2.0', error: { code: -32700, message: 'parse' } },
  { jsonrpc: '2.0', id: 3, error: { code: 1.5, message: 'm' } },
  { jsonrpc: '2.0', id: 3, error: { code: 1 } },
  { jsonrpc: '2.0', id: 3 },
  { jsonrpc: '2.0' },
  [],
  null,
  'text',
  { id: 1, method: 'ping' },
];

function sdkAccepts(value: unknown): boolean {
  try {
    parseJSONRPCMessage(value);
    return true;
  } catch {
    return false;
  }
}

describe('relay wire contract', () => {
  it('takes list requests with nothing but a cursor and plain _meta, and leaves the rest to the SDK', () => {
    const list = (method: string, params?: unknown) => ({
      jsonrpc: '2.0',
      id: 3,
      method,
      ...(params === undefined ? {} : { params }),
    });
    for (const method of ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']) {
      expect(asListRequest(list(method))).toBeDefined();
      expect(asListRequest(list(method, {}))).toBeDefined();
      expect(asListRequest(list(method, { cursor: 'abc', _meta: { trace: 'x' } }))).toBeDefined();
    }
    expect(asListRequest(list('tools/list', { cursor: 7 }))).toBeUndefined();
    expect(asListRequest(list('tools/list', { cursor: 'a', extra: true }))).toBeUndefined();
    expect(asListRequest(list('tools/list', { _meta: [] }))).toBeUndefined();
    expect(asListRequest(list('tools/list', { _meta: { 'io.modelcontextprotocol/x': 1 } }))).toBeUndefined();
    expect(asListRequest(list('tools/list', []))).toBeUndefined();
    expect(asListRequest(list('toString'))).toBeUndefined();
    expect(asListRequest(list('tools/call', {}))).toBeUndefined();
    expect(asListRequest({ jsonrpc: '2.0', method: 'tools/list' })).toBeUndefined();
    expect(asListRequest({ jsonrpc: '1.0', id: 1, method: 'tools/list' })).toBeUndefined();
    expect(asListRequest({ jsonrpc: '2.0', id: 1.5, method: 'tools/list' })).toBeUndefined();
  });

  it('accepts exactly the JSON-RPC messages the SDK schema accepts', () => {
    for (const sample of SAMPLES) {
      expect({ sample, accepted: asJsonRpcMessage(sample) !== undefined }).toEqual({
        sample,
        accepted: sdkAccepts(sample),
      });
    }
  });

  it('takes only hot requests whose params need none of the SDK machinery', () => {
    const call = (params: unknown, method = 'tools/call') =>
      asHotRequest({ jsonrpc: '2.0', id: 1, method, params });
    expect(call({ name: 't', arguments: { a: 1 } })).toBeDefined();
    expect(call({ name: 'p', arguments: { a: 'x' } }, 'prompts/get')).toBeDefined();
    expect(call({ uri: 'diane://x/y' }, 'resources/read')).toBeDefined();
    expect(call({ name: 'p', arguments: { a: 1 } }, 'prompts/get')).toBeUndefined();
    expect(call({ name: 't' }, 'tools/list')).toBeUndefined();
    expect(call({ arguments: {} })).toBeUndefined();
    expect(call({ name: 't', arguments: [] })).toBeUndefined();
    expect(call({ name: 't', requestState: 's' })).toBeUndefined();
    expect(call({ name: 't', inputResponses: {} })).toBeUndefined();
    expect(call({ name: 't', task: {} })).toBeUndefined();
    expect(
      call({ name: 't', _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } }),
    ).toBeUndefined();
    expect(call({ name: 't', _meta: { progressToken: true } })).toBeUndefined();
    expect(call({ name: 't', _meta: { progressToken: 7, traceparent: 'x' } })).toBeDefined();
    expect(call(undefined)).toBeUndefined();
  });

  it('checks a result for the shape the agent expects, and fills a missing tool content', () => {
    expect(checkedResult('tools/call', { structuredContent: { a: 1 } })).toEqual({
      ok: true,
      result: { structuredContent: { a: 1 }, content: [] },
    });
    expect(checkedResult('tools/call', { content: 'x' }).ok).toBe(false);
    expect(checkedResult('prompts/get', { messages: [{ role: 'user' }] }).ok).toBe(true);
    expect(checkedResult('resources/read', { contents: [1] }).ok).toBe(false);
  });

  it('writes errors as the SDK protocol does', () => {
    expect(toWireError(Object.assign(new Error('gone'), { code: -32002, data: { uri: 'u' } }))).toEqual({
      code: -32602,
      message: 'gone',
      data: { uri: 'u' },
    });
    expect(toWireError(new Error('plain'))).toEqual({ code: -32603, message: 'plain' });
    expect(toWireError(Object.assign(new Error('odd'), { code: 'E_X' }))).toEqual({
      code: -32603,
      message: 'odd',
    });
  });
});
