import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConnectionGuard, serverTimeouts } from '../http/connectionGuard.js';
import { listenOn } from '../http/listen.js';
import type { Logger } from '../log.js';
import { DEFAULT_METRICS_SETTINGS, type MetricsSettings } from './settings.js';

export interface MetricsServerOptions {
  registry: Registry;
  host: string;
  port: number;
  logger: Logger;
  settings?: MetricsSettings;
}

const HINT = 'Diane metrics: GET /metrics (Prometheus text format)\n';

/**
 * `--metrics-listen`: Prometheus text at `GET /metrics`, a hint at `GET /`, 404 elsewhere.
 * Nothing on it changes anything, but what it says (host names, servers, counts) is for the
 * operator: loopback is the expected address, and anything else is logged as a warning. The
 * listener has its own connection guard, loopback `Host` names are required on loopback (no
 * DNS rebinding from a web page), and scrapes closer together than `minScrapeIntervalMs` share
 * one reading of the state.
 */
export class MetricsServer {
  private readonly http: HttpServer;
  private readonly settings: MetricsSettings;
  private readonly loopback: boolean;
  private last?: { at: number; text: Promise<string> };

  constructor(private readonly opts: MetricsServerOptions) {
    this.settings = opts.settings ?? DEFAULT_METRICS_SETTINGS;
    this.loopback = isLoopbackName(opts.host);
    const limits = this.loopback
      ? { ...this.settings.listener, maxConnectionsPerSource: 0 }
      : this.settings.listener;
    this.http = createServer(serverTimeouts(limits), (req, res) => this.handle(req, res));
    this.http.keepAliveTimeout = 5_000;
    new ConnectionGuard(this.http, limits, opts.logger, 'metrics endpoint');
  }

  async listen(): Promise<AddressInfo> {
    const bound = await listenOn(this.http, this.opts.host, this.opts.port, '--metrics-listen');
    const where =
      bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
    if (this.loopback) this.opts.logger.info({ metrics: where }, 'serving Prometheus metrics at /metrics');
    else {
      this.opts.logger.warn(
        { metrics: where },
        'serving Prometheus metrics off loopback, without authentication: they name hosts and servers; ' +
          'restrict who can reach this address',
      );
    }
    return bound;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.loopback && !loopbackHostHeader(req.headers.host)) {
      return plain(res, 403, 'a loopback Host header is required\n');
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/') return plain(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return plain(res, 405, 'method not allowed\n');
    }
    if (path === '/') return plain(res, 200, HINT, req.method === 'HEAD');
    this.scrape().then(
      (text) => {
        res.writeHead(200, {
          'content-type': this.opts.registry.contentType,
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err) => {
        this.opts.logger.error({ err: (err as Error).message }, 'could not collect the metrics');
        plain(res, 500, 'could not collect the metrics\n');
      },
    );
  }

  private scrape(): Promise<string> {
    const now = Date.now();
    if (this.last && now - this.last.at < this.settings.minScrapeIntervalMs) return this.last.text;
    const text = this.opts.registry.metrics();
    const entry = { at: now, text };
    this.last = entry;
    text.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return text;
  }
}

function plain(res: ServerResponse, status: number, body: string, head = false): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-content-type-options': 'nosniff',
  });
  res.end(head ? undefined : body);
}

/** `localhost:9464`, `127.0.0.1`, `[::1]:9464`: the name without its port, if it is a loopback one. */
export function loopbackHostHeader(header: string | undefined): boolean {
  if (header === undefined) return false;
  const name = header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.split(':')[0]!;
  return isLoopbackName(name.toLowerCase());
}

/** A loopback name or address (the agent endpoint's rule, without importing its HTTP stack). */
export function isLoopbackName(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
