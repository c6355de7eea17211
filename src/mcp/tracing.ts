import {
  type Attributes,
  type Context,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { VERSION } from '../version.js';
import type { JsonObject } from './upstream.js';

/**
 * Traces of a call across the hops (front, routing, queue wait, link, slave, upstream), carried
 * the MCP way: W3C `traceparent` / `tracestate` in the request's `_meta`. Contexts are passed
 * explicitly with the call (no async context manager), so nothing depends on async hooks.
 *
 * Without a tracer provider (no `OTEL_EXPORTER_OTLP_ENDPOINT`, see daemon/tracingSetup.ts) the
 * API's no-op tracer makes non-recording spans that still carry the caller's context, so an
 * agent's `traceparent` reaches the upstream unchanged and the cost is a few allocations.
 */
const propagator = new W3CTraceContextPropagator();

let tracingOn = true;
/** What every hop gets while tracing is off: records nothing, carries no context. */
const OFF_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * `OTEL_SDK_DISABLED=true` (daemon/tracingSetup.ts) turns tracing off altogether, as the
 * OpenTelemetry SDKs do: no spans and no trace context of Diane's own, so a request's `_meta`
 * (an agent's `traceparent` included) passes through exactly as it came.
 */
export function setTracingEnabled(on: boolean): void {
  tracingOn = on;
}

const metaGetter = {
  keys: (carrier: JsonObject) => Object.keys(carrier),
  get: (carrier: JsonObject, key: string) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
};

const metaSetter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value;
  },
};

/** The trace context an incoming request's `_meta` carries (the root context when none). */
export function contextFromMeta(meta: unknown): Context {
  if (!tracingOn || typeof meta !== 'object' || meta === null) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, meta as JsonObject, metaGetter);
}

/** `traceparent` (and `tracestate`) for a request sent within `ctx`; empty when there is no trace. */
export function metaFromContext(ctx: Context): Record<string, string> {
  const carrier: Record<string, string> = {};
  if (!tracingOn) return carrier;
  propagator.inject(ctx, carrier, metaSetter);
  return carrier;
}

export type HopSpan = 'diane.front' | 'diane.route' | 'diane.queue' | 'diane.link' | 'diane.upstream';

const KINDS: Record<HopSpan, SpanKind> = {
  'diane.front': SpanKind.SERVER,
  'diane.route': SpanKind.INTERNAL,
  'diane.queue': SpanKind.INTERNAL,
  'diane.link': SpanKind.CLIENT,
  'diane.upstream': SpanKind.CLIENT,
};

/** A span of one hop, child of `parent`, and the context its own children use. */
export function startHop(
  name: HopSpan,
  parent: Context,
  attributes: Attributes,
): { span: Span; context: Context } {
  if (!tracingOn) return { span: OFF_SPAN, context: parent };
  const span = trace.getTracer('diane', VERSION).startSpan(name, { kind: KINDS[name], attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a span with the outcome of what it measured. */
export function endHop(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  }
  span.end();
}

/** Runs `fn` as a hop: the span ends when the promise settles. */
export async function hop<T>(
  name: HopSpan,
  parent: Context,
  attributes: Attributes,
  fn: (context: Context) => Promise<T>,
): Promise<T> {
  const { span, context } = startHop(name, parent, attributes);
  try {
    const result = await fn(context);
    endHop(span);
    return result;
  } catch (err) {
    endHop(span, err);
    throw err;
  }
}
