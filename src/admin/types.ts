import type {
  CallToolResult,
  Prompt,
  Resource,
  ResourceTemplateType,
  Tool,
} from '@modelcontextprotocol/client';
import type { AuditEventJson } from '../audit/index.js';
import type { RejectedItem } from '../mcp/nameTable.js';
import type { UpstreamStatus } from '../mcp/upstream.js';

/** The shapes exchanged over the admin socket; the daemon answers with them, the CLI reads them. */

export interface InfoResponse {
  version: string;
  pid: number;
  home: string;
  startedAt: string;
  mcp: { listen: string; url: string; tokenRequired: boolean; token?: string };
  socket: string;
  cluster: { listen: string; url: string };
  /** Slaves pin this when pairing. */
  ca_fingerprint: string;
  /** The next CA during a rollover (`diane ca rotate`); a pairing pin may name either. */
  ca_next_fingerprint?: string;
  ca_expires_at: string;
  /** Set while the CA is within `--ca-expiry-warning` of its end. */
  ca_expiry_warning?: string;
  /** What to run on a machine to pair it with this master. */
  pair_command: string;
  upstreams: number;
  tools: number;
  /** With `--bus`: this master's id and its NATS connection. */
  bus?: { master: string; servers: string[]; prefix: string; connected: boolean };
}

export interface ConfigIssueView {
  server?: string;
  path: string;
  message: string;
}

export interface ServersResponse {
  servers: UpstreamStatus[];
  disabled: string[];
  configErrors: ConfigIssueView[];
  configWarnings: ConfigIssueView[];
  configFile: string;
}

export interface ReloadResponse {
  added: string[];
  removed: string[];
  restarted: string[];
  unchanged: string[];
  configErrors: ConfigIssueView[];
}

export interface ToolView {
  name: string;
  upstream: string;
  /** `local` for the master's own servers, else the slave's host id. */
  host: string;
  /** The MCP server that runs it: a configured server, or the slave's server of that name. */
  server: string;
  originalName: string;
  description?: string;
  definition: Tool;
}

export interface ToolsResponse {
  tools: ToolView[];
  rejected: RejectedItem[];
}

export interface PromptView {
  name: string;
  upstream: string;
  /** `local` for the master's own servers, else the slave's host id. */
  host: string;
  /** The MCP server that runs it: a configured server, or the slave's server of that name. */
  server: string;
  originalName: string;
  description?: string;
  definition: Prompt;
}

export interface PromptsResponse {
  prompts: PromptView[];
  rejected: RejectedItem[];
}

export interface ResourceView {
  uri: string;
  upstream: string;
  /** `local` for the master's own servers, else the slave's host id. */
  host: string;
  /** The MCP server that runs it: a configured server, or the slave's server of that name. */
  server: string;
  originalUri: string;
  name: string;
  mimeType?: string;
  template: boolean;
  definition: Resource | ResourceTemplateType;
}

export interface ResourcesResponse {
  resources: ResourceView[];
  /** Resources whose URI could not be given a Diane address; `exposedName` is the URI. */
  rejected: RejectedItem[];
}

export interface CallRequest {
  name: string;
  arguments?: Record<string, unknown>;
}

export type CallResponse = CallToolResult;

export interface ApproveResponse {
  status: 'approved';
  host_id: string;
  cert_serial: string;
  expires_at: string;
  re_pair: boolean;
}

export interface RevokedJson {
  host_id: string;
  cert_serial: string;
  revoked_at: string;
  reason: string | null;
}

export type { AuditEventJson };

/** `GET /api/audit`. */
export interface AuditResponse {
  /** Oldest first. */
  events: AuditEventJson[];
  /** True when the limit cut rows off (older ones without `after_id`, newer ones with it). */
  more: boolean;
  /** The newest id in the whole trail: where `follow=1&after_id=` picks up. */
  last_id: number;
}

/** The filters of `GET /api/audit`, as the CLI sends them. */
export interface AuditParams {
  agent?: string;
  host?: string;
  outcome?: string;
  kind?: string;
  /** ISO-8601 time, or a duration back from now (`1h`). */
  since?: string;
  until?: string;
  limit?: number;
  after_id?: number;
}
