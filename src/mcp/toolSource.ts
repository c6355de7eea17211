import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import type { ProgressUpdate } from './upstream.js';

export interface ToolCallRequestOptions {
  /** Aborted when the agent cancels the call or goes away. */
  signal: AbortSignal;
  onprogress?: (update: ProgressUpdate) => void;
}

/**
 * What an MCP front end serves: the aggregator in the daemon, or the daemon itself seen
 * through `diane mcp`'s bridge.
 */
export interface ToolSource {
  listTools(): Promise<Tool[]>;
  callTool(
    name: string,
    args: Record<string, unknown> | undefined,
    opts: ToolCallRequestOptions,
  ): Promise<CallToolResult>;
  onToolsChanged(listener: () => void): () => void;
}
