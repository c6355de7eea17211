import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { startTracing } from '../../src/daemon/tracingSetup.js';
import type { Logger } from '../../src/log.js';
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

describe('OTEL_SDK_DISABLED=true', () => {
  const logger = { info: () => {}, warn: () => {} } as unknown as Logger;
  afterEach(() => {
    startTracing('diane-test', logger, {});
  });

  it('turns tracing off: no context is read or added, so _meta passes through as it came', async () => {
    expect(startTracing('diane-test', logger, { OTEL_SDK_DISABLED: 'TRUE ' })).toBeUndefined();
    const parent = contextFromMeta({ traceparent: TRACEPARENT });
    expect(parent).toBe(ROOT_CONTEXT);
    const front = startHop('diane.front', parent, {});
    expect(front.context).toBe(parent);
    expect(front.span.isRecording()).toBe(false);
    expect(front.span.spanContext().traceId).toBe(INVALID_SPAN_CONTEXT.traceId);
    const sent = await hop('diane.link', front.context, {}, async (ctx) => metaFromContext(ctx));
    expect(sent).toEqual({});
  });

  it('is exported nowhere even with an endpoint, and tracing comes back when it is unset', () => {
    expect(
      startTracing('diane-test', logger, {
        OTEL_SDK_DISABLED: 'true',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
      }),
    ).toBeUndefined();
    expect(metaFromContext(contextFromMeta({ traceparent: TRACEPARENT }))).toEqual({});
    expect(startTracing('diane-test', logger, { OTEL_SDK_DISABLED: 'false' })).toBeUndefined();
    expect(metaFromContext(contextFromMeta({ traceparent: TRACEPARENT }))).toEqual({
      traceparent: TRACEPARENT,
    });
  });
});
