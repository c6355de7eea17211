import {
  type Attributes,
  type Context,
  createContextKey,
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
 * Three modes, set by daemon/tracingSetup.ts from the standard OpenTelemetry variables:
 * - `record` (an OTLP endpoint is set): a span per hop, exported;
 * - `propagate` (the default: no endpoint): no spans at all; the caller's `traceparent` (checked)
 *   and `tracestate` reach the next hop as they came;
 * - `off` (`OTEL_SDK_DISABLED=true`): no trace context of Diane's own, and a request's `_meta`
 *   (an agent's `traceparent` included) passes through exactly as it came.
 */
export type TracingMode = 'record' | 'propagate' | 'off';

let mode: TracingMode = 'propagate';

export function setTracingMode(next: TracingMode): void {
  mode = next;
}

const propagator = new W3CTraceContextPropagator();
const tracer = trace.getTracer('diane', VERSION);
/** What every hop gets outside `record` mode: records nothing (no context of those modes holds a span). */
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

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

/**
 * In `propagate` mode a request's context is only what it passes on: the caller's
 * `traceparent` (checked) and `tracestate`, as they came, which is what W3C Trace Context asks
 * of an intermediary that takes no part in the trace. One small object per request, and no
 * parse or re-serialisation per hop.
 */
const OUTGOING_META = createContextKey('diane.outgoing-meta');
const NO_META: Readonly<Record<string, string>> = Object.freeze({});
/** version-traceid-parentid-flags, lower-case hex; a later version may add fields after a dash. */
const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}(-.*)?$/;
const ALL_ZEROS = /^0+$/;
const MAX_TRACESTATE = 512;

class PassOnContext implements Context {
  constructor(private readonly meta: Readonly<Record<string, string>>) {}
  getValue(key: symbol): unknown {
    return key === OUTGOING_META ? this.meta : undefined;
  }
  setValue(key: symbol, value: unknown): Context {
    return ROOT_CONTEXT.setValue(OUTGOING_META, this.meta).setValue(key, value);
  }
  deleteValue(key: symbol): Context {
    return key === OUTGOING_META ? ROOT_CONTEXT : this;
  }
}

function passOn(meta: JsonObject): Context {
  const raw = meta.traceparent;
  if (typeof raw !== 'string') return ROOT_CONTEXT;
  const traceparent = raw.trim();
  const m = TRACEPARENT.exec(traceparent);
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[4] !== undefined)) return ROOT_CONTEXT;
  if (ALL_ZEROS.test(m[2]!) || ALL_ZEROS.test(m[3]!)) return ROOT_CONTEXT;
  const carrier: Record<string, string> = { traceparent };
  const state = meta.tracestate;
  if (typeof state === 'string' && state.length > 0 && state.length <= MAX_TRACESTATE)
    carrier.tracestate = state;
  return new PassOnContext(Object.freeze(carrier));
}

/** The trace context an incoming request's `_meta` carries (the root context when none). */
export function contextFromMeta(meta: unknown): Context {
  if (mode === 'off' || typeof meta !== 'object' || meta === null) return ROOT_CONTEXT;
  if (mode === 'propagate') return passOn(meta as JsonObject);
  return propagator.extract(ROOT_CONTEXT, meta as JsonObject, metaGetter);
}

/** `traceparent` (and `tracestate`) for a request sent within `ctx`; empty when there is no trace. */
export function metaFromContext(ctx: Context): Readonly<Record<string, string>> {
  if (mode === 'off' || ctx === ROOT_CONTEXT) return NO_META;
  const passed = ctx.getValue(OUTGOING_META) as Readonly<Record<string, string>> | undefined;
  if (passed) return passed;
  const carrier: Record<string, string> = {};
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
  if (mode !== 'record') return { span: NO_SPAN, context: parent };
  const span = tracer.startSpan(name, { kind: KINDS[name], attributes }, parent);
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
