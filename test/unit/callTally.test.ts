import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CallTally, TalliedHistogram, tallyCounter } from '../../src/metrics/callTally.js';
import { DEFAULT_METRICS_SETTINGS } from '../../src/metrics/settings.js';

const BOUNDS = DEFAULT_METRICS_SETTINGS.latencyBucketsSeconds;
const CALLS = { name: 't_calls_total', help: 'calls' };
const DURATION = { name: 't_call_duration_seconds', help: 'durations' };

/** The same calls into the tally and into prom-client's own Counter and Histogram. */
function peers() {
  const tallied = new Registry();
  const tally = new CallTally(BOUNDS);
  tallyCounter(tally, { ...CALLS, registers: [tallied] });
  new TalliedHistogram(tally, { ...DURATION, registers: [tallied] });

  const reference = new Registry();
  const counter = new Counter({
    ...CALLS,
    labelNames: ['host', 'server', 'kind', 'outcome'],
    registers: [reference],
  });
  const histogram = new Histogram({
    ...DURATION,
    labelNames: ['host', 'kind', 'outcome'],
    buckets: [...BOUNDS],
    registers: [reference],
  });
  const add = (host: string, server: string, kind: string, outcome: string, seconds?: number) => {
    tally.add(host, server, kind, outcome, seconds);
    counter.inc({ host, server, kind, outcome });
    if (seconds !== undefined) histogram.observe({ host, kind, outcome }, seconds);
  };
  return { tallied, reference, add };
}

/** A fixed pseudo-random sequence, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('CallTally against prom-client as a peer', () => {
  it('writes the text prom-client writes for the same calls, bounds and overflow included', async () => {
    const { tallied, reference, add } = peers();
    const next = random(42);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const hosts = ['local', 'workstation', 'build-box', '_other'];
    const servers = ['fs', 'git', 'search'];
    const kinds = ['tools/call', 'prompts/get', 'resources/read', 'sampling/createMessage'];
    const outcomes = ['ok', 'tool_error', 'protocol_error', 'timeout', 'cancelled'];
    for (let i = 0; i < 5_000; i++) {
      // Durations on every bound exactly, inside buckets, and past the last bound (only +Inf).
      const roll = next();
      const seconds =
        roll < 0.2
          ? pick(BOUNDS)
          : roll < 0.25
            ? 60 + next() * 100
            : roll < 0.3
              ? 0
              : next() * 2 ** (next() * 12 - 10);
      add(pick(hosts), pick(servers), pick(kinds), pick(outcomes), seconds);
    }
    // Refusals are counted, never timed: some series exist in the counter only.
    for (let i = 0; i < 200; i++)
      add(pick(hosts), pick(servers), 'tools/call', pick(['refused_scope', 'refused_host']));
    add('refusing-only-host', 'fs', 'tools/call', 'refused_host');

    const got = await tallied.metrics();
    expect(got).toBe(await reference.metrics());
    expect(got).toContain(
      't_calls_total{host="refusing-only-host",server="fs",kind="tools/call",outcome="refused_host"} 1',
    );
    expect(got).not.toContain('t_call_duration_seconds_count{host="refusing-only-host"');
    expect(got).toMatch(
      /t_call_duration_seconds_bucket\{le="\+Inf",host="local",kind="tools\/call",outcome="ok"\} \d+/,
    );
  });

  it('writes the same OpenMetrics text and JSON as prom-client', async () => {
    const { tallied, reference, add } = peers();
    add('local', 'fs', 'tools/call', 'ok', 0.004);
    add('local', 'fs', 'tools/call', 'ok', 0.0025);
    add('workstation', 'git', 'resources/read', 'timeout', 61);
    add('workstation', 'git', 'tools/call', 'refused_scope');
    // Exemplars are off (prom-client lists them as null or undefined), and `collect` is what
    // prom-client's types ask a metric's `get` for: neither is data.
    const data = async (registry: Registry) =>
      JSON.parse(
        JSON.stringify(await registry.getMetricsAsJSON(), (key, v) => (key === 'exemplar' ? undefined : v)),
      );
    expect(await data(tallied)).toEqual(await data(reference));
    tallied.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    reference.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    expect(await tallied.metrics()).toBe(await reference.metrics());
  });

  it('keeps counting from where it was after a scrape, and starts empty', async () => {
    const { tallied, reference, add } = peers();
    expect(await tallied.metrics()).toBe(await reference.metrics());
    add('local', 'fs', 'tools/call', 'ok', 0.001);
    await tallied.metrics();
    add('local', 'fs', 'tools/call', 'ok', 0.5);
    const text = await tallied.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain('t_calls_total{host="local",server="fs",kind="tools/call",outcome="ok"} 2');
    expect(text).toContain('t_call_duration_seconds_sum{host="local",kind="tools/call",outcome="ok"} 0.501');
  });

  it('counts a call whose duration is not a number without timing it', async () => {
    const tally = new CallTally(BOUNDS);
    tally.add('local', 'fs', 'tools/call', 'ok', Number.NaN);
    tally.add('local', 'fs', 'tools/call', 'ok', Number.POSITIVE_INFINITY);
    const [series] = [...tally.callSeries()];
    expect(series?.count).toBe(2);
    expect(series?.duration.count).toBe(0);
  });
});
