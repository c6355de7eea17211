import { describe, expect, it } from 'vitest';
import { contextFromMeta, hop, metaFromContext, startHop } from '../../src/mcp/tracing.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

// No tracer provider is registered in unit tests: the no-op path a master without an exporter runs.
describe('trace context in _meta without an exporter', () => {
  it("passes the agent's traceparent and tracestate through every hop unchanged", async () => {
    const parent = contextFromMeta({ traceparent: TRACEPARENT, tracestate: 'vendor=x', progressToken: 1 });
    const front = startHop('diane.front', parent, {});
    expect(front.span.isRecording()).toBe(false);
    const sent = await hop('diane.link', front.context, {}, async (ctx) => metaFromContext(ctx));
    expect(sent).toEqual({ traceparent: TRACEPARENT, tracestate: 'vendor=x' });
  });

  it('adds nothing when the agent sent no trace context, or a malformed one', () => {
    for (const meta of [undefined, null, 'x', {}, { traceparent: 'garbage' }, { traceparent: 42 }]) {
      expect(metaFromContext(startHop('diane.front', contextFromMeta(meta), {}).context)).toEqual({});
    }
  });

  it('ends the span and passes the error on when the hop fails', async () => {
    await expect(
      hop('diane.upstream', contextFromMeta({}), {}, async () => {
        throw new Error('upstream down');
      }),
    ).rejects.toThrow('upstream down');
  });
});
