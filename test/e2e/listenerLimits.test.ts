import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { pendingOf, requestPairing } from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { makeHome } from '../helpers/home.js';
import { waitFor } from '../helpers/wait.js';

afterAll(() => cleanupProcesses());

const FILE_LIMIT = 256;
const ATTEMPTS = 5000;
/** Loopback has all of 127/8: each flooder address stays under the per-address cap. */
const SOURCES = 200;

interface Flood {
  sockets: Socket[];
  connected(): number;
}

/** The daemon's open descriptors (Linux). */
function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Opens `count` TCP connections that never send a byte, spread over `sources` loopback addresses. */
async function silentFlood(port: number, count: number, sources: number): Promise<Flood> {
  const sockets: Socket[] = [];
  let connected = 0;
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: '127.0.0.1', port, localAddress: `127.1.0.${(i % sources) + 1}` });
    socket.on('connect', () => {
      connected++;
    });
    socket.on('error', () => {});
    sockets.push(socket);
    // Let the event loop breathe so that the attempts overlap instead of queueing in one burst.
    if (i % 250 === 249) await new Promise((r) => setTimeout(r, 20));
  }
  return { sockets, connected: () => connected };
}

async function healthz(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
  await res.body?.cancel();
  return res.status;
}

describe.skipIf(process.platform !== 'linux')(
  'listener resources under a flood of silent connections',
  () => {
    it(`survives ${ATTEMPTS} silent connections under ulimit -n ${FILE_LIMIT}: /healthz, pairing and the admin socket answer`, async () => {
      const master = await startDaemon({ home: makeHome('m-flood'), fileLimit: FILE_LIMIT });
      const baseline = openFiles(master.pid);
      const flood = await silentFlood(master.clusterPort!, ATTEMPTS, SOURCES);
      try {
        // The flood is at its height: many attempts are connected, none has sent anything.
        await waitFor(() => flood.connected() > 1000, { what: 'the flood to connect' });
        expect(openFiles(master.pid)).toBeGreaterThan(baseline + 100);

        expect(await healthz(master.port)).toBe(200);
        const info = await runCli(master.home, ['info', '--json']);
        expect(info.code).toBe(0);
        // A real slave on a fresh address still gets its request in.
        const { pair, request } = await requestPairing(master, makeHome('s-flood'), 'fresh');
        expect(request.host_id).toBe('fresh');
        await pair.stop();
        expect((await pendingOf(master)).map((p) => p.host_id)).toContain('fresh');

        // Nothing that never spoke stays open: the handshake deadline closes them all.
        // Nothing that never spoke stays open: the daemon is back to the descriptors it had before.
        // (Counted on the daemon's side: when the kernel's accept queue overflows, a client can
        // believe it is connected to a server that never saw it.)
        await waitFor(() => openFiles(master.pid) <= baseline + 8, {
          what: `the daemon's descriptors to fall back to ${baseline}`,
          timeoutMs: 20_000,
        });
        expect(master.proc.exitCode).toBeNull();
        expect(await healthz(master.port)).toBe(200);
        expect(master.stderr()).toMatch(/cluster listener: at its connection limit/);
      } finally {
        for (const socket of flood.sockets) socket.destroy();
        await master.stop();
      }
    }, 120_000);

    it('closes a silent connection to the agent endpoint and the cluster listener within seconds', async () => {
      const master = await startDaemon({ home: makeHome('m-idle') });
      try {
        const started = Date.now();
        // A connection still open after 25 s fails with what the daemon said, rather than a bare
        // test timeout.
        const closedAfter = (port: number, what: string) =>
          new Promise<number>((resolve, reject) => {
            const socket = connect({ host: '127.0.0.1', port });
            const timer = setTimeout(() => {
              socket.destroy();
              reject(
                new Error(
                  `the ${what} (port ${port}) kept a silent connection open for 25 s ` +
                    `(local port ${socket.localPort}); daemon pid ${master.pid} alive: ${master.proc.exitCode === null}\n` +
                    master.stderr().slice(-3000),
                ),
              );
            }, 25_000);
            socket.on('error', () => {});
            socket.on('close', () => {
              clearTimeout(timer);
              resolve(Date.now() - started);
            });
          });
        const [cluster, agent] = await Promise.all([
          closedAfter(master.clusterPort!, 'cluster listener'),
          closedAfter(master.port, 'agent endpoint'),
        ]);
        // TLS handshake deadline 5 s; first request deadline 10 s.
        expect(cluster).toBeLessThan(8_000);
        expect(agent).toBeLessThan(13_000);
        expect(agent).toBeGreaterThan(8_000);
      } finally {
        await master.stop();
      }
    }, 60_000);
  },
);
