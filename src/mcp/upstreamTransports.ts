import type { Transport } from '@modelcontextprotocol/client';
import { SSEClientTransport, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import type { UpstreamServerConfig } from '../config/mcpServers.js';
import { StdioProcessTransport } from './stdioProcessTransport.js';

export interface TransportHooks {
  maxMessageBytes: number;
  onStderrLine: (line: string) => void;
}

/** The SDK client transport for one configured upstream. */
export function createUpstreamTransport(config: UpstreamServerConfig, hooks: TransportHooks): Transport {
  switch (config.kind) {
    case 'stdio':
      return new StdioProcessTransport({
        command: config.command,
        args: config.args,
        // Like Claude Desktop: a small safe set of the daemon's variables, plus the entry's own.
        env: { ...getDefaultEnvironment(), ...config.env },
        cwd: config.cwd,
        maxMessageBytes: hooks.maxMessageBytes,
        onStderrLine: hooks.onStderrLine,
      });
    case 'http':
      return new StreamableHTTPClientTransport(new URL(config.url), {
        requestInit: { headers: config.headers },
      });
    case 'sse':
      return new SSEClientTransport(new URL(config.url), {
        requestInit: { headers: config.headers },
        eventSourceInit: { fetch: (url, init) => fetch(url, withHeaders(init, config.headers)) },
      });
  }
}

function withHeaders(init: RequestInit | undefined, headers: Record<string, string>): RequestInit {
  const merged = new Headers(init?.headers);
  for (const [k, v] of Object.entries(headers)) merged.set(k, v);
  return { ...init, headers: merged };
}
