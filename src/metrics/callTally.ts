import {
  Counter,
  Histogram,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
  type Registry,
} from 'prom-client';

/**
 * What a finished or refused call is counted by. `calls_total` has all four labels, the latency
 * histogram all but `server`.
 */
export interface CallLabels {
  host: string;
  server: string;
  kind: string;
  outcome: string;
}

type DurationLabels = Omit<CallLabels, 'server'>;

interface DurationSeries {
  labels: DurationLabels;
  /** Observations per bucket, not cumulative; past the last bound only `count` grows. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

interface CallSeries {
  labels: CallLabels;
  count: number;
  /** Resolved when the series is made: a finished call then costs one map lookup in all. */
  duration: DurationSeries;
}

/**
 * The call counters of a process, in plain numbers, handed to prom-client when it is scraped.
 *
 * prom-client's `Counter.inc` and `Histogram.observe` validate and hash a labels object and look
 * the bucket up under the bound turned into a string, on every call. Under load that measured
 * 1–1.5 % of a daemon's CPU (a profile of master and slave at c=64), nearly all that metrics cost
 * a call. Here a call costs one map lookup and a few additions. The counter is published through
 * prom-client's `collect` hook; the histogram, which has no way to set its counts, by a subclass
 * answering `get` (prom-client's public Metric API) from the tally. The text a scrape returns is
 * the one prom-client would write for the same observations: a unit test holds the two together.
 */
export class CallTally {
  private readonly calls = new Map<string, CallSeries>();
  private readonly durations = new Map<string, DurationSeries>();

  constructor(readonly bounds: readonly number[]) {}

  /** One call, timed when `durationSeconds` is given (refusals are counted, not timed). */
  add(host: string, server: string, kind: string, outcome: string, durationSeconds?: number): void {
    const key = `${host}\0${server}\0${kind}\0${outcome}`;
    const series = this.calls.get(key) ?? this.newSeries(key, { host, server, kind, outcome });
    series.count++;
    if (durationSeconds === undefined || !Number.isFinite(durationSeconds)) return;
    const d = series.duration;
    d.count++;
    d.sum += durationSeconds;
    const bucket = bucketOf(this.bounds, durationSeconds);
    if (bucket >= 0) d.buckets[bucket]!++;
  }

  callSeries(): Iterable<CallSeries> {
    return this.calls.values();
  }

  durationSeries(): Iterable<DurationSeries> {
    return this.durations.values();
  }

  private newSeries(key: string, labels: CallLabels): CallSeries {
    const durationKey = `${labels.host}\0${labels.kind}\0${labels.outcome}`;
    let duration = this.durations.get(durationKey);
    if (duration === undefined) {
      duration = {
        labels: { host: labels.host, kind: labels.kind, outcome: labels.outcome },
        buckets: new Float64Array(this.bounds.length),
        sum: 0,
        count: 0,
      };
      this.durations.set(durationKey, duration);
    }
    const series: CallSeries = { labels, count: 0, duration };
    this.calls.set(key, series);
    return series;
  }
}

/** Index of the first bound `value` is at or under (what prom-client's `findBound` picks); -1 past the last. */
function bucketOf(bounds: readonly number[], value: number): number {
  for (let i = 0; i < bounds.length; i++) if (value <= bounds[i]!) return i;
  return -1;
}

/** `calls_total`: the tally's counts, set on each scrape. */
export function tallyCounter(
  tally: CallTally,
  config: { name: string; help: string; registers: Registry[] },
): Counter<keyof CallLabels> {
  return new Counter({
    ...config,
    labelNames: ['host', 'server', 'kind', 'outcome'],
    collect() {
      this.reset();
      for (const s of tally.callSeries()) this.inc(s.labels, s.count);
    },
  });
}

type DurationValue = MetricValueWithName<keyof DurationLabels | 'le'>;
/** prom-client's types declare a numeric enum here; its registry writes the string it sets at run time. */
const HISTOGRAM_TYPE = 'histogram' as unknown as MetricType;

/** The latency histogram, read from the tally: prom-client formats it, the tally holds the counts. */
export class TalliedHistogram extends Histogram<keyof DurationLabels> {
  private readonly config: { name: string; help: string };

  constructor(
    private readonly tally: CallTally,
    config: { name: string; help: string; registers: Registry[] },
  ) {
    super({ ...config, labelNames: ['host', 'kind', 'outcome'], buckets: [...tally.bounds] });
    this.config = { name: config.name, help: config.help };
  }

  override async get(): Promise<MetricObjectWithValues<DurationValue>> {
    const { name, help } = this.config;
    const bounds = this.tally.bounds;
    const values: DurationValue[] = [];
    for (const d of this.tally.durationSeries()) {
      // Refusals make a series that is counted but never timed: prom-client would not list it.
      if (d.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < bounds.length; i++) {
        cumulative += d.buckets[i]!;
        values.push({
          labels: { le: bounds[i]!, ...d.labels },
          value: cumulative,
          metricName: `${name}_bucket`,
        });
      }
      values.push({ labels: { le: '+Inf', ...d.labels }, value: d.count, metricName: `${name}_bucket` });
      values.push({ labels: { ...d.labels }, value: d.sum, metricName: `${name}_sum` });
      values.push({ labels: { ...d.labels }, value: d.count, metricName: `${name}_count` });
    }
    return { name, help, type: HISTOGRAM_TYPE, values, aggregator: 'sum', collect: () => undefined };
  }

  /** What prom-client's registry asks a histogram for when it writes text (else `get`). */
  getForPromString(): Promise<MetricObjectWithValues<DurationValue>> {
    return this.get();
  }
}
