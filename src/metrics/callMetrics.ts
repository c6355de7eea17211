import { Gauge, type Registry } from 'prom-client';
import type { CallOutcome, CallRecord } from '../mcp/callRecords.js';
import type { RefusedRequest, Router } from '../mcp/router.js';
import type { LabelCaps } from './boundedLabel.js';
import { CallTally, TalliedHistogram, tallyCounter } from './callTally.js';
import type { MetricsSettings } from './settings.js';

/** What `diane_calls_total` counts by: the audit trail's outcomes. */
export type CallMetricOutcome = CallOutcome | 'refused_scope' | 'refused_host';

/**
 * Calls as the router reports them: one count and one latency observation per finished call
 * (`Router.onCallFinished`, which runs once per call and must only queue: here, a tally in
 * plain numbers, see callTally.ts), one count per refusal (`Router.onRefused`), and the calls in
 * flight, read from the router on each scrape. Tool names are never labels; hosts and servers
 * are, capped.
 */
export class CallMetrics {
  private readonly tally: CallTally;
  private readonly unsubscribe: Array<() => void>;

  constructor(
    registry: Registry,
    router: Router,
    private readonly labels: LabelCaps,
    settings: MetricsSettings,
  ) {
    const prefix = settings.prefix;
    this.tally = new CallTally(settings.latencyBucketsSeconds);
    tallyCounter(this.tally, {
      name: `${prefix}calls_total`,
      help: 'Finished calls (tools/call, prompts/get, resources/read, and upstream requests relayed to agents: sampling, elicitation, roots) and refused requests, by host, server, kind and outcome',
      registers: [registry],
    });
    new TalliedHistogram(this.tally, {
      name: `${prefix}call_duration_seconds`,
      help: 'Duration of finished calls, by host, kind and outcome',
      registers: [registry],
    });
    new Gauge({
      name: `${prefix}calls_in_flight`,
      help: 'Calls in flight (waiting for an agent answer included), by host',
      labelNames: ['host'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [upstream, count] of router.callsInFlight()) {
          this.inc({ host: labels.host.value(router.hostOf(upstream)) }, count);
        }
      },
    });
    this.unsubscribe = [
      router.onCallFinished((record) => this.finished(record)),
      router.onRefused((event) => this.refused(event)),
    ];
  }

  finished(record: CallRecord): void {
    const { host, server } = this.labels.hostAndServer(record.host, record.server);
    this.tally.add(host, server, record.method, record.outcome, record.durationMs / 1000);
  }

  refused(event: RefusedRequest): void {
    const { host, server } = this.labels.hostAndServer(event.host, event.server);
    const outcome: CallMetricOutcome = event.reason === 'scope' ? 'refused_scope' : 'refused_host';
    this.tally.add(host, server, event.method, outcome);
  }

  close(): void {
    for (const off of this.unsubscribe) off();
  }
}
