import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { CallRecord } from '../../src/mcp/callRecords.js';
import { Exposure } from '../../src/mcp/exposure.js';
import { DEFAULT_ROUTER_SETTINGS, Router } from '../../src/mcp/router.js';
import { Scope } from '../../src/mcp/scope.js';
import type { JsonObject } from '../../src/mcp/upstream.js';
import { BoundedLabel, LabelCaps } from '../../src/metrics/boundedLabel.js';
import { CallMetrics } from '../../src/metrics/callMetrics.js';
import { MasterMetrics, type SlaveHostView } from '../../src/metrics/masterMetrics.js';
import { isLoopbackName, loopbackHostHeader, MetricsServer } from '../../src/metrics/metricsServer.js';
import { newRegistry } from '../../src/metrics/registry.js';
import { DEFAULT_METRICS_SETTINGS } from '../../src/metrics/settings.js';
import { SlaveMetrics } from '../../src/metrics/slaveMetrics.js';
import { FakeUpstream, tool } from '../helpers/fakeUpstream.js';
import { samplesOf as find, parseMetrics as parse, sampleValue as value } from '../helpers/prometheus.js';

const logger = createLogger('fatal');

function record(overrides: Partial<CallRecord>): CallRecord {
  return {
    method: 'tools/call',
    exposedName: 'fs_read',
    host: 'local',
    server: 'fs',
    originalName: 'read',
    startedAt: Date.now(),
    durationMs: 3,
    outcome: 'ok',
    bytesIn: 0,
    bytesOut: 0,
    callId: 'c1',
    ...overrides,
  };
}

const signal = () => new AbortController().signal;

const routers: Router[] = [];
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const r of routers.splice(0)) r.close();
});

function newRouter(): Router {
  const router = new Router({ ...DEFAULT_ROUTER_SETTINGS, listChangedDebounceMs: 1 }, logger);
  routers.push(router);
  return router;
}

function host(id: string, overrides: Partial<SlaveHostView> = {}): SlaveHostView {
  return {
    host_id: id,
    status: 'connected',
    enabled: true,
    cert_expires_at: '2030-01-01T00:00:00.000Z',
    ...overrides,
  };
}

interface MasterState {
  slaves: SlaveHostView[];
  pending: number;
  sessions: number;
  audit: { queued: number; written: number; dropped: number };
  disabled: string[];
  caNext?: Date;
}

function masterFixture() {
  const router = newRouter();
  const fs = new FakeUpstream('fs');
  fs.setCatalog({
    tools: [tool('read'), tool('write'), tool('secret')],
    prompts: [{ name: 'greet' }],
    resources: [{ uri: 'file:///a', name: 'a' }],
    resourceTemplates: [{ uriTemplate: 'file:///{p}', name: 't' }],
  });
  router.add(fs, { exposure: Exposure.from({ hide: ['secret'] }) });
  const state: MasterState = {
    slaves: [],
    pending: 0,
    sessions: 0,
    audit: { queued: 0, written: 0, dropped: 0 },
    disabled: [],
  };
  const metrics = new MasterMetrics({
    router,
    slaves: () => state.slaves,
    pendingPairings: () => state.pending,
    caExpiry: () => ({ current: new Date('2035-06-01T00:00:00Z'), next: state.caNext }),
    agentSessions: () => state.sessions,
    audit: () => state.audit,
    disabledServers: () => state.disabled,
  });
  closers.push(() => metrics.close());
  const scrape = async () => parse(await metrics.registry.metrics());
  return { router, fs, state, metrics, scrape };
}

describe('master metrics', () => {
  it('counts finished calls by host, server, kind and outcome, with their latency', async () => {
    const { router, fs, scrape } = masterFixture();
    fs.answer = async (req) =>
      req.params.name === 'write' ? { content: [], isError: true } : { content: [] };
    await router.callTool('fs_read', {}, signal());
    await router.callTool('fs_read', {}, signal());
    await router.callTool('fs_write', {}, signal());
    fs.answer = async () => {
      throw new Error('boom');
    };
    await expect(router.callTool('fs_read', {}, signal())).rejects.toThrow();

    const samples = await scrape();
    const calls = (outcome: string) =>
      value(samples, 'diane_calls_total', { host: 'local', server: 'fs', kind: 'tools/call', outcome });
    expect(calls('ok')).toBe(2);
    expect(calls('tool_error')).toBe(1);
    expect(calls('protocol_error')).toBe(1);
    expect(value(samples, 'diane_call_duration_seconds_count', { host: 'local', outcome: 'ok' })).toBe(2);
    // Every call of a fake upstream takes well under 60 s: the last bucket holds them all.
    expect(
      value(samples, 'diane_call_duration_seconds_bucket', { host: 'local', outcome: 'ok', le: '60' }),
    ).toBe(2);
    expect(value(samples, 'diane_call_duration_seconds_bucket', { outcome: 'ok', le: '+Inf' })).toBe(2);
    // Tool names are not labels.
    expect(samples.some((s) => Object.values(s.labels).includes('fs_read'))).toBe(false);
  });

  it('counts refusals as refused_scope and refused_host', async () => {
    const { router, scrape } = masterFixture();
    const outside = Scope.parse({ allow: ['tool:nothing_*'] });
    expect(() =>
      router.startCall('tools/call', { name: 'fs_read' }, { signal: signal(), scope: outside }),
    ).toThrow();
    expect(() => router.startCall('tools/call', { name: 'fs_secret' }, { signal: signal() })).toThrow();
    const samples = await scrape();
    expect(value(samples, 'diane_calls_total', { outcome: 'refused_scope', kind: 'tools/call' })).toBe(1);
    expect(value(samples, 'diane_calls_total', { outcome: 'refused_host', server: 'fs' })).toBe(1);
    // A refusal has no duration.
    expect(find(samples, 'diane_call_duration_seconds_count', { outcome: 'refused_scope' })).toEqual([]);
  });

  it('reads the calls in flight from the router on each scrape', async () => {
    const { router, fs, scrape } = masterFixture();
    let release!: () => void;
    fs.answer = () =>
      new Promise<JsonObject>((resolve) => {
        release = () => resolve({ content: [] });
      });
    const call = router.callTool('fs_read', {}, signal());
    expect(value(await scrape(), 'diane_calls_in_flight', { host: 'local' })).toBe(1);
    release();
    await call;
    expect(find(await scrape(), 'diane_calls_in_flight')).toEqual([]);
  });

  it('reports server states, restarts, list sizes, sessions and the audit queue', async () => {
    const { fs, state, scrape } = masterFixture();
    state.disabled = ['off'];
    state.sessions = 3;
    state.audit = { queued: 4, written: 10, dropped: 2 };
    let samples = await scrape();
    expect(value(samples, 'diane_upstream_state', { server: 'fs', state: 'connected' })).toBe(1);
    expect(value(samples, 'diane_upstream_state', { server: 'fs', state: 'backoff' })).toBe(0);
    expect(value(samples, 'diane_upstream_state', { server: 'off', state: 'disabled' })).toBe(1);
    expect(value(samples, 'diane_upstream_restarts_total', { server: 'fs' })).toBe(0);
    expect(value(samples, 'diane_exposed_entries', { list: 'tools' })).toBe(2);
    expect(value(samples, 'diane_exposed_entries', { list: 'prompts' })).toBe(1);
    expect(value(samples, 'diane_exposed_entries', { list: 'resources' })).toBe(1);
    expect(value(samples, 'diane_exposed_entries', { list: 'resource_templates' })).toBe(1);
    expect(value(samples, 'diane_agent_sessions')).toBe(3);
    expect(value(samples, 'diane_audit_queue_length')).toBe(4);
    expect(value(samples, 'diane_audit_events_written_total')).toBe(10);
    expect(value(samples, 'diane_audit_events_dropped_total')).toBe(2);

    fs.setState('backoff');
    samples = await scrape();
    expect(value(samples, 'diane_upstream_state', { server: 'fs', state: 'connected' })).toBe(0);
    expect(value(samples, 'diane_upstream_state', { server: 'fs', state: 'backoff' })).toBe(1);
  });

  it('reports slave links, renewals, certificates, the CA and pairing', async () => {
    const { metrics, state, scrape } = masterFixture();
    state.slaves = [
      host('ws1'),
      host('ws2', { status: 'disconnected', renewal_error: 'key-reused: a renewal needs a new key' }),
      host('old', { enabled: false, status: 'disconnected' }),
    ];
    state.pending = 2;
    state.caNext = new Date('2040-01-01T00:00:00Z');
    metrics.linkConnected('ws1');
    metrics.linkConnected('ws1');
    metrics.heartbeatMissed('ws1');
    metrics.renewalIssued('ws2');
    metrics.renewalFailed('ws2', 'key-reused');
    metrics.pairingEvent('new');
    metrics.pairingEvent('new');
    metrics.pairingEvent('approved');
    metrics.pairingEvent('expired');

    const samples = await scrape();
    expect(value(samples, 'diane_slave_links_connected')).toBe(1);
    expect(value(samples, 'diane_slave_link_up', { host: 'ws1' })).toBe(1);
    expect(value(samples, 'diane_slave_link_up', { host: 'ws2' })).toBe(0);
    expect(find(samples, 'diane_slave_link_up', { host: 'old' })).toEqual([]);
    expect(value(samples, 'diane_slave_hosts', { state: 'connected' })).toBe(1);
    expect(value(samples, 'diane_slave_hosts', { state: 'disconnected' })).toBe(1);
    expect(value(samples, 'diane_slave_hosts', { state: 'disabled' })).toBe(1);
    expect(value(samples, 'diane_slave_link_connects_total', { host: 'ws1' })).toBe(2);
    expect(value(samples, 'diane_slave_heartbeat_misses_total', { host: 'ws1' })).toBe(1);
    expect(value(samples, 'diane_slave_cert_renewals_total', { host: 'ws2' })).toBe(1);
    expect(
      value(samples, 'diane_slave_cert_renewal_failures_total', { host: 'ws2', reason: 'key-reused' }),
    ).toBe(1);
    expect(value(samples, 'diane_slave_renewal_failing', { host: 'ws2' })).toBe(1);
    expect(value(samples, 'diane_slave_renewal_failing', { host: 'ws1' })).toBe(0);
    expect(value(samples, 'diane_slave_renewal_failing_hosts')).toBe(1);
    expect(value(samples, 'diane_slave_cert_expiry_timestamp_seconds', { host: 'ws1' })).toBe(
      Date.parse('2030-01-01T00:00:00Z') / 1000,
    );
    expect(value(samples, 'diane_ca_expiry_timestamp_seconds', { ca: 'current' })).toBe(
      Date.parse('2035-06-01T00:00:00Z') / 1000,
    );
    expect(value(samples, 'diane_ca_expiry_timestamp_seconds', { ca: 'next' })).toBe(
      Date.parse('2040-01-01T00:00:00Z') / 1000,
    );
    expect(value(samples, 'diane_pairing_requests_pending')).toBe(2);
    expect(value(samples, 'diane_pairing_requests_total')).toBe(2);
    expect(value(samples, 'diane_pairing_decisions_total', { outcome: 'approved' })).toBe(1);
    expect(value(samples, 'diane_pairing_decisions_total', { outcome: 'expired' })).toBe(1);
    expect(value(samples, 'diane_pairing_decisions_total', { outcome: 'denied' })).toBe(0);
  });

  it("includes prom-client's process metrics under the diane_ prefix, and the build info", async () => {
    const { scrape } = masterFixture();
    const names = new Set((await scrape()).map((s) => s.name));
    for (const name of [
      'diane_process_resident_memory_bytes',
      'diane_process_cpu_seconds_total',
      'diane_nodejs_eventloop_lag_p99_seconds',
      'diane_nodejs_heap_size_used_bytes',
      'diane_build_info',
    ]) {
      expect(names, name).toContain(name);
    }
    expect([...names].every((n) => n.startsWith('diane_'))).toBe(true);
  });

  it('keeps its own registry: two instances do not collide', async () => {
    const a = masterFixture();
    const b = masterFixture();
    a.metrics.pairingEvent('new');
    expect(value(await a.scrape(), 'diane_pairing_requests_total')).toBe(1);
    expect(value(await b.scrape(), 'diane_pairing_requests_total')).toBe(0);
  });
});

describe('label cardinality', () => {
  it('keeps the first hosts and folds later ones, with their servers, into _other', async () => {
    const settings = { ...DEFAULT_METRICS_SETTINGS, maxHostLabels: 3 };
    const registry = newRegistry(settings, 'master');
    const router = newRouter();
    const labels = new LabelCaps(settings);
    const calls = new CallMetrics(registry, router, labels, settings);
    closers.push(() => calls.close());
    for (const h of ['local', 'h1', 'h2', 'h3', 'h4', 'h1'])
      calls.finished(record({ host: h, server: `s-${h}` }));
    const samples = parse(await registry.metrics());
    const hosts = new Set(find(samples, 'diane_calls_total').map((s) => s.labels.host));
    expect(hosts).toEqual(new Set(['local', 'h1', 'h2', '_other']));
    expect(value(samples, 'diane_calls_total', { host: 'h1', server: 's-h1' })).toBe(2);
    expect(value(samples, 'diane_calls_total', { host: '_other', server: '_other' })).toBe(2);
    expect(value(samples, 'diane_call_duration_seconds_count', { host: '_other' })).toBe(2);
  });

  it('folds gauges of hosts past the cap into one _other series that counts them', async () => {
    const { state, scrape } = masterFixture();
    state.slaves = Array.from({ length: DEFAULT_METRICS_SETTINGS.maxHostLabels + 5 }, (_, i) =>
      host(`h${i}`, { status: i % 2 === 0 ? 'connected' : 'disconnected' }),
    );
    const samples = await scrape();
    const up = find(samples, 'diane_slave_link_up');
    // `local` takes one of the places.
    expect(up).toHaveLength(DEFAULT_METRICS_SETTINGS.maxHostLabels);
    // h1999 .. h2004 are past the cap: 6 hosts, of which h2000, h2002, h2004 are connected.
    expect(value(samples, 'diane_slave_link_up', { host: '_other' })).toBe(3);
    expect(value(samples, 'diane_slave_links_connected')).toBe(1003);
  });

  it('BoundedLabel: values kept for good, the cap counts the values given up front', () => {
    const label = new BoundedLabel(2, '_other', ['local']);
    expect(label.value('a')).toBe('a');
    expect(label.value('b')).toBe('_other');
    expect(label.value('local')).toBe('local');
    expect(label.value('a')).toBe('a');
    expect(label.size).toBe(2);
  });

  it('a server cap folds servers but keeps the host', () => {
    const labels = new LabelCaps({ maxHostLabels: 10, maxServerLabels: 1, otherLabel: '_other' });
    expect(labels.hostAndServer('ws1', 'fs')).toEqual({ host: 'ws1', server: 'fs' });
    expect(labels.hostAndServer('ws1', 'git')).toEqual({ host: 'ws1', server: '_other' });
  });
});

describe('slave metrics', () => {
  function slaveFixture() {
    const router = newRouter();
    const echo = new FakeUpstream('echo');
    echo.setCatalog({ tools: [tool('echo'), tool('crash'), tool('pid')], prompts: [{ name: 'p' }] });
    router.add(echo, { exposure: Exposure.from({ hide: ['crash'] }) });
    let status:
      | {
          state: string;
          host_id: string;
          cert_expires_at: string;
          next_renewal_at?: string;
          renewal_error?: string;
        }
      | undefined;
    const metrics = new SlaveMetrics({
      router,
      status: () => status,
      audit: () => ({ queued: 0, written: 1, dropped: 0 }),
    });
    closers.push(() => metrics.close());
    const scrape = async () => parse(await metrics.registry.metrics());
    const setStatus = (s: typeof status) => {
      status = s;
      if (s) metrics.linkStatus(s);
    };
    return { router, echo, metrics, scrape, setStatus };
  }

  it('reports the link, reconnects, heartbeats and the renewal', async () => {
    const { metrics, scrape, setStatus } = slaveFixture();
    let samples = await scrape();
    expect(value(samples, 'diane_master_link_up')).toBe(0);
    expect(find(samples, 'diane_cert_expiry_timestamp_seconds')).toEqual([]);
    const base = { host_id: 'ws', cert_expires_at: '2031-01-01T00:00:00.000Z' };
    setStatus({ ...base, state: 'connecting' });
    setStatus({ ...base, state: 'connected', next_renewal_at: '2030-11-01T00:00:00.000Z' });
    setStatus({ ...base, state: 'connected', next_renewal_at: '2030-11-01T00:00:00.000Z' });
    samples = await scrape();
    expect(value(samples, 'diane_master_link_up')).toBe(1);
    expect(value(samples, 'diane_master_link_connects_total')).toBe(1);
    expect(value(samples, 'diane_cert_expiry_timestamp_seconds', { host: 'ws' })).toBe(
      Date.parse('2031-01-01T00:00:00Z') / 1000,
    );
    expect(value(samples, 'diane_cert_next_renewal_timestamp_seconds', { host: 'ws' })).toBe(
      Date.parse('2030-11-01T00:00:00Z') / 1000,
    );
    expect(value(samples, 'diane_cert_renewal_failing')).toBe(0);

    metrics.heartbeatMissed();
    metrics.renewal('failed');
    metrics.renewal('renewed');
    setStatus({ ...base, state: 'backoff', renewal_error: 'timeout' });
    setStatus({ ...base, state: 'connecting', renewal_error: 'timeout' });
    setStatus({ ...base, state: 'connected', renewal_error: 'timeout' });
    samples = await scrape();
    expect(value(samples, 'diane_master_link_connects_total')).toBe(2);
    expect(value(samples, 'diane_master_heartbeat_misses_total')).toBe(1);
    expect(value(samples, 'diane_cert_renewals_total', { outcome: 'failed' })).toBe(1);
    expect(value(samples, 'diane_cert_renewals_total', { outcome: 'renewed' })).toBe(1);
    expect(value(samples, 'diane_cert_renewals_total', { outcome: 'refused' })).toBe(0);
    expect(value(samples, 'diane_cert_renewal_failing')).toBe(1);
    expect(find(samples, 'diane_cert_next_renewal_timestamp_seconds')).toEqual([]);
  });

  it('reports the calls it served and what each server exposes and hides', async () => {
    const { router, scrape } = slaveFixture();
    await router.callTool('echo_echo', {}, signal());
    const samples = await scrape();
    expect(
      value(samples, 'diane_calls_total', {
        host: 'local',
        server: 'echo',
        kind: 'tools/call',
        outcome: 'ok',
      }),
    ).toBe(1);
    expect(
      value(samples, 'diane_exposure_entries', { server: 'echo', list: 'tools', exposure: 'exposed' }),
    ).toBe(2);
    expect(
      value(samples, 'diane_exposure_entries', { server: 'echo', list: 'tools', exposure: 'hidden' }),
    ).toBe(1);
    expect(
      value(samples, 'diane_exposure_entries', { server: 'echo', list: 'prompts', exposure: 'exposed' }),
    ).toBe(1);
    expect(value(samples, 'diane_exposed_entries', { list: 'tools' })).toBe(2);
    expect(value(samples, 'diane_upstream_state', { server: 'echo', state: 'connected' })).toBe(1);
    expect(value(samples, 'diane_build_info', { role: 'slave' })).toBe(1);
    expect(find(samples, 'diane_nodejs_eventloop_lag_p99_seconds')).toHaveLength(1);
  });
});

describe('the metrics listener', () => {
  async function serve() {
    const { metrics } = masterFixture();
    const server = new MetricsServer({
      registry: metrics.registry,
      host: '127.0.0.1',
      port: 0,
      logger,
      settings: { ...DEFAULT_METRICS_SETTINGS, minScrapeIntervalMs: 60_000 },
    });
    const bound = await server.listen();
    closers.push(() => server.close());
    return { metrics, base: `http://127.0.0.1:${bound.port}` };
  }

  it('serves GET /metrics and a hint at /, nothing else', async () => {
    const { base } = await serve();
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await res.text()).toContain('# TYPE diane_calls_total counter');
    const hint = await fetch(`${base}/`);
    expect(hint.status).toBe(200);
    expect(await hint.text()).toContain('/metrics');
    for (const path of ['/mcp', '/healthz', '/metrics/x', '/api/slaves']) {
      const other = await fetch(`${base}${path}`);
      expect(other.status, path).toBe(404);
      await other.body?.cancel();
    }
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.body?.cancel();
  });

  it('shares one reading of the state between scrapes closer than the interval', async () => {
    const { base, metrics } = await serve();
    const first = await (await fetch(`${base}/metrics`)).text();
    metrics.pairingEvent('new');
    const second = await (await fetch(`${base}/metrics`)).text();
    expect(second).toBe(first);
  });

  it('wants a loopback Host header on loopback (no DNS rebinding from a web page)', async () => {
    const { base } = await serve();
    const { request } = await import('node:http');
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${base}/metrics`, { headers: { host: 'evil.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it('warns when bound off loopback: metrics name hosts and servers', async () => {
    const { metrics } = masterFixture();
    const lines: Array<Record<string, unknown>> = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const server = new MetricsServer({
      registry: metrics.registry,
      host: '0.0.0.0',
      port: 0,
      logger: capture,
    });
    await server.listen();
    await server.close();
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        msg: expect.stringMatching(/off loopback, without authentication/),
      }),
    ]);
  });

  it('tells loopback names and Host headers apart', () => {
    for (const name of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]'])
      expect(isLoopbackName(name)).toBe(true);
    for (const name of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '127.0.0.1.evil.com'])
      expect(isLoopbackName(name), name).toBe(false);
    expect(loopbackHostHeader('localhost:9464')).toBe(true);
    expect(loopbackHostHeader('[::1]:9464')).toBe(true);
    expect(loopbackHostHeader('LOCALHOST')).toBe(true);
    expect(loopbackHostHeader('evil.com:9464')).toBe(false);
    expect(loopbackHostHeader(undefined)).toBe(false);
  });
});
