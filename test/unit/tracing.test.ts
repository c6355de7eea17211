import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { startTracing } from '../../src/daemon/tracingSetup.js';
import type { Logger } from '../../src/log.js';
import { contextFromMeta, hop, metaFromContext, setTracingMode, startHop } from '../../src/mcp/tracing.js';

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

describe('record mode (an exporter is set)', () => {
  afterEach(() => {
    trace.disable();
    setTracingMode('propagate');
  });

  it("makes a span per hop under the agent's, and each request carries its own hop's span id", async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    setTracingMode('record');
    const front = startHop('diane.front', contextFromMeta({ traceparent: TRACEPARENT }), {});
    expect(front.span.isRecording()).toBe(true);
    const sent = await hop('diane.link', front.context, {}, async (ctx) => metaFromContext(ctx));
    front.span.end();
    const [traceId, spanId] = TRACEPARENT.split('-').slice(1, 3);
    const spans = exporter.getFinishedSpans();
    const link = spans.find((s) => s.name === 'diane.link')!;
    const frontSpan = spans.find((s) => s.name === 'diane.front')!;
    expect(frontSpan.parentSpanContext?.spanId).toBe(spanId);
    expect(link.parentSpanContext?.spanId).toBe(frontSpan.spanContext().spanId);
    expect(sent).toEqual({ traceparent: `00-${traceId}-${link.spanContext().spanId}-01` });
  });
});

describe('propagate mode (the default)', () => {
  it('writes the trace context once per call: every hop shares the context and its _meta', () => {
    const parent = contextFromMeta({ traceparent: TRACEPARENT });
    const link = startHop('diane.link', startHop('diane.front', parent, {}).context, {});
    expect(link.context).toBe(parent);
    expect(metaFromContext(link.context)).toBe(metaFromContext(parent));
    expect(Object.isFrozen(metaFromContext(parent))).toBe(true);
  });
});

describe('propagate mode checks what it passes on, as the OpenTelemetry propagator would', () => {
  const TRACE = '0af7651916cd43dd8448eb211c80319c';
  const SPAN = 'b7ad6b7169203331';
  const viaOtel = (meta: Record<string, string>) => {
    setTracingMode('record'); // the library's extract and inject, with no provider registered
    try {
      return metaFromContext(contextFromMeta(meta));
    } finally {
      setTracingMode('propagate');
    }
  };

  it.each([
    `00-${TRACE}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-00`,
    ` 00-${TRACE}-${SPAN}-01 `,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01-extra`,
    `00-${'0'.repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${TRACE.slice(1)}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}`,
    'garbage',
    '',
  ])('%j: passed on exactly when the library accepts it, and the same', (traceparent) => {
    expect(metaFromContext(contextFromMeta({ traceparent }))).toEqual(viaOtel({ traceparent }));
  });

  it("passes a later version's header and the tracestate on as they came", () => {
    const later = `01-${TRACE}-${SPAN}-01-more`;
    expect(metaFromContext(contextFromMeta({ traceparent: later, tracestate: 'a=1,b=2' }))).toEqual({
      traceparent: later,
      tracestate: 'a=1,b=2',
    });
  });

  it('drops a tracestate over 512 characters, and one without a traceparent', () => {
    const traceparent = `00-${TRACE}-${SPAN}-01`;
    expect(metaFromContext(contextFromMeta({ traceparent, tracestate: `a=${'x'.repeat(511)}` }))).toEqual({
      traceparent,
    });
    expect(metaFromContext(contextFromMeta({ tracestate: 'a=1' }))).toEqual({});
  });

  it('is a context like any other: a value set on it keeps what it passes on', () => {
    const ctx = contextFromMeta({ traceparent: `00-${TRACE}-${SPAN}-01` });
    const key = Symbol('k');
    const next = ctx.setValue(key, 1);
    expect(next.getValue(key)).toBe(1);
    expect(metaFromContext(next)).toEqual(metaFromContext(ctx));
    expect(ctx.getValue(key)).toBeUndefined();
  });
});
