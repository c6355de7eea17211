import type { ListenerLimits } from '../http/listenerLimits.js';

/** Everything the metrics of `diane serve` and `diane slave start` can be tuned by, in one place. */
export interface MetricsSettings {
  /** Prefix of every metric name, the process metrics of prom-client included. */
  prefix: string;
  /**
   * Distinct `host` label values (`local` included). A host seen after the cap is reported as
   * `_other`, with its server: a master with more paired hosts keeps a bounded number of series.
   */
  maxHostLabels: number;
  /** Distinct `server` label values; past the cap, `_other`. */
  maxServerLabels: number;
  /** The label value hosts and servers past their cap fold into. */
  otherLabel: string;
  /** Buckets of `diane_call_duration_seconds`: 1 ms to 60 s. */
  latencyBucketsSeconds: readonly number[];
  /**
   * Scrapes closer together than this get the previous answer (and concurrent scrapes share
   * one), so that a flood of requests cannot make the daemon read its state in a loop.
   */
  minScrapeIntervalMs: number;
  /**
   * Sampling interval of prom-client's event-loop delay monitor (its default is 10 ms). Each sample
   * wakes the process: at 10 ms an idle daemon spends about 1 % of a core on it (a slave on a
   * laptop, a master between calls); at 100 ms, 0.1 %. A stall shorter than the interval is still
   * caught when a sample falls in it, and every longer one always is.
   */
  eventLoopPrecisionMs: number;
  /**
   * The metrics listener's connection limits. `maxConnectionsPerSource` applies only when it is
   * bound off loopback (on loopback every peer has the same address).
   */
  listener: ListenerLimits;
}

export const DEFAULT_METRICS_SETTINGS: MetricsSettings = Object.freeze({
  prefix: 'diane_',
  maxHostLabels: 2000,
  maxServerLabels: 2000,
  otherLabel: '_other',
  latencyBucketsSeconds: Object.freeze([
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
  ]),
  minScrapeIntervalMs: 1000,
  eventLoopPrecisionMs: 100,
  listener: Object.freeze({
    maxConnections: 64,
    maxShareOfFileLimit: 0.05,
    maxConnectionsPerSource: 8,
    firstRequestTimeoutMs: 5_000,
    handshakeTimeoutMs: 5_000,
    headersTimeoutMs: 5_000,
    requestTimeoutMs: 10_000,
  }),
});
