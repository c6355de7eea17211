import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Logger } from '../log.js';
import { setTracingMode } from '../mcp/tracing.js';
import { VERSION } from '../version.js';

export interface Tracing {
  /** Exports what is still buffered, then stops. */
  shutdown(): Promise<void>;
}

/**
 * Turns on span export when the standard OpenTelemetry variables ask for it
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; OTLP over HTTP, batched;
 * `OTEL_SERVICE_NAME`, `OTEL_BSP_*` and the exporter's own variables apply). Without them nothing
 * is registered and no span is made, but an agent's trace context still flows through
 * (`propagate`). `OTEL_SDK_DISABLED=true` turns tracing off altogether (no spans, no trace
 * context of Diane's own), whatever else is set.
 */
export function startTracing(
  serviceName: string,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Tracing | undefined {
  const disabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  setTracingMode(disabled ? 'off' : endpoint ? 'record' : 'propagate');
  if (!endpoint || disabled) return undefined;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME ?? serviceName,
      'service.version': VERSION,
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  trace.setGlobalTracerProvider(provider);
  logger.info(
    { endpoint, service: env.OTEL_SERVICE_NAME ?? serviceName },
    'exporting traces (OTLP over HTTP)',
  );
  return {
    shutdown: async () => {
      await provider
        .shutdown()
        .catch((err: Error) => logger.warn({ err: err.message }, 'trace export at shutdown failed'));
      trace.disable();
      setTracingMode('propagate');
    },
  };
}
