import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { FAST_HEARTBEAT, pairSlave, spawnCli, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
}

/** An OTLP/HTTP (JSON) receiver in the test process: what an OpenTelemetry collector would get. */
async function otlpReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const rs of body.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a: { key: string }) => a.key === 'service.name')
            ?.value?.stringValue;
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service,
                name: s.name,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId || undefined,
              });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

describe('traces across both hops', () => {
  it("one routed call is one trace under the agent's traceparent: front, route, queue, link on the master; front, route, upstream on the slave", async () => {
    const receiver = await otlpReceiver();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' };
    try {
      const masterHome = makeHome('trace-master');
      writeServersConfig(masterHome, { mcpServers: {} });
      const master = await startDaemon({ home: masterHome, env: otel });
      const slaveHome = makeHome('trace-slave');
      writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
      await pairSlave(master, slaveHome, 'ws');
      spawnCli(slaveHome, ['slave', 'start', ...FAST_HEARTBEAT], otel);
      await waitForSlaveStatus(master, 'ws', 'connected');
      const agent = await connectHttp(master.mcpUrl);
      await waitFor(async () => (await agent.listTools()).tools.some((t) => t.name === 'ws_echo_echo'), {
        what: 'the slave tool',
      });

      const traceId = randomBytes(16).toString('hex');
      const agentSpan = randomBytes(8).toString('hex');
      const result = await agent.callTool({
        name: 'ws_echo_echo',
        arguments: { text: 'traced' },
        _meta: { traceparent: `00-${traceId}-${agentSpan}-01` },
      });
      expect(textOf(result)).toBe('traced');

      const spans = await waitFor(
        () => {
          const mine = receiver.spans.filter((s) => s.traceId === traceId);
          return (
            mine.some((s) => s.service === 'diane-slave' && s.name === 'diane.upstream') &&
            mine.some((s) => s.service === 'diane-master' && s.name === 'diane.link') &&
            mine
          );
        },
        { what: 'the spans of both hops', timeoutMs: 15_000 },
      );
      const one = (service: string, name: string) => {
        const found = spans.filter((s) => s.service === service && s.name === name);
        expect(found, `${service} ${name}`).toHaveLength(1);
        return found[0]!;
      };
      const masterFront = one('diane-master', 'diane.front');
      const masterRoute = one('diane-master', 'diane.route');
      const queue = one('diane-master', 'diane.queue');
      const link = one('diane-master', 'diane.link');
      const slaveFront = one('diane-slave', 'diane.front');
      const slaveRoute = one('diane-slave', 'diane.route');
      const upstream = one('diane-slave', 'diane.upstream');
      expect(masterFront.parentSpanId).toBe(agentSpan);
      expect(masterRoute.parentSpanId).toBe(masterFront.spanId);
      expect(queue.parentSpanId).toBe(masterRoute.spanId);
      expect(link.parentSpanId).toBe(masterRoute.spanId);
      expect(slaveFront.parentSpanId).toBe(link.spanId);
      expect(slaveRoute.parentSpanId).toBe(slaveFront.spanId);
      expect(upstream.parentSpanId).toBe(slaveRoute.spanId);
      await agent.close();
    } finally {
      receiver.server.close();
    }
  }, 90_000);
});
