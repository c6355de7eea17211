import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { withOrderedDelivery } from '../../src/mcp/orderedDelivery.js';

/**
 * A server side that answers every request with `steps` progress notifications and the result,
 * all handed to the client in one synchronous burst, as a pipe read holding all of them would.
 */
class BurstTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  constructor(private readonly steps: number) {}
  async start(): Promise<void> {}
  async close(): Promise<void> {
    this.onclose?.();
  }
  async send(message: JSONRPCMessage): Promise<void> {
    if (!('method' in message) || !('id' in message)) return;
    const id = message.id;
    if (message.method === 'initialize') {
      queueMicrotask(() =>
        this.onmessage?.({
          jsonrpc: '2.0',
          id,
          result: {
            protocolVersion: '2025-11-25',
            capabilities: { tools: {} },
            serverInfo: { name: 'burst', version: '1' },
          },
        }),
      );
      return;
    }
    const token = (message.params as { _meta?: { progressToken?: number } })._meta?.progressToken;
    setImmediate(() => {
      for (let i = 1; i <= this.steps; i++) {
        this.onmessage?.({
          jsonrpc: '2.0',
          method: 'notifications/progress',
          params: { progressToken: token!, progress: i },
        });
      }
      this.onmessage?.({ jsonrpc: '2.0', id, result: { content: [] } });
    });
  }
}

async function progressSeen(transport: Transport): Promise<number[]> {
  const client = new Client({ name: 't', version: '1' });
  client.onerror = () => {};
  await client.connect(transport);
  const seen: number[] = [];
  await client.callTool({ name: 'x', arguments: {} }, { onprogress: (p) => seen.push(p.progress) });
  await client.close();
  return seen;
}

describe('withOrderedDelivery', () => {
  it('the SDK client alone drops the progress that arrives with the result (why this exists)', async () => {
    expect(await progressSeen(new BurstTransport(3))).not.toEqual([1, 2, 3]);
  });

  it('delivers every progress notification before the result', async () => {
    for (let run = 0; run < 20; run++) {
      expect(await progressSeen(withOrderedDelivery(new BurstTransport(3)))).toEqual([1, 2, 3]);
    }
  });

  it('keeps the transport itself: its own fields and methods', () => {
    const inner = new BurstTransport(1);
    const wrapped = withOrderedDelivery(inner);
    expect(wrapped).toBe(inner);
    expect(wrapped.onmessage).toBeUndefined();
    const got: unknown[] = [];
    wrapped.onmessage = (m) => got.push(m);
    inner.onmessage?.({ jsonrpc: '2.0', method: 'notifications/initialized' });
    expect(got).toHaveLength(1);
  });
});
