import { request as httpRequest } from 'node:http';
import type { AgentView } from '../agents/agentService.js';
import type { CaRolloverStatus, FinishResult } from '../cluster/caRollover.js';
import type { RevokedHost } from '../cluster/revocation.js';
import type { SlaveHealth } from '../cluster/slaveRegistry.js';
import { DianeError, ExitCode } from '../errors.js';
import type { AgentDetail } from './agentRoutes.js';
import type { PendingRequestJson, RotatedJoinTokenJson } from './pairingRoutes.js';
import type {
  ApproveResponse,
  AuditEventJson,
  AuditParams,
  AuditResponse,
  CallRequest,
  CallResponse,
  InfoResponse,
  PromptsResponse,
  ReloadResponse,
  ResourcesResponse,
  RevokedJson,
  ServersResponse,
  ToolsResponse,
} from './types.js';

const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

export class AdminRequestError extends DianeError {
  constructor(
    message: string,
    readonly status: number,
    code: string,
  ) {
    super(message, ExitCode.failure, code);
  }
}

/**
 * The CLI's one way into the daemon: JSON over the admin Unix socket. A missing daemon is a
 * clear error that says how to start one.
 */
export class AdminClient {
  constructor(
    readonly socketPath: string,
    private readonly home: string,
  ) {}

  info(): Promise<InfoResponse> {
    return this.request('GET', '/api/info');
  }

  servers(): Promise<ServersResponse> {
    return this.request('GET', '/api/servers');
  }

  reload(): Promise<ReloadResponse> {
    return this.request('POST', '/api/servers/reload', {});
  }

  tools(all: boolean): Promise<ToolsResponse> {
    return this.request('GET', `/api/tools${all ? '?all=1' : ''}`);
  }

  prompts(all: boolean): Promise<PromptsResponse> {
    return this.request('GET', `/api/prompts${all ? '?all=1' : ''}`);
  }

  resources(all: boolean): Promise<ResourcesResponse> {
    return this.request('GET', `/api/resources${all ? '?all=1' : ''}`);
  }

  callTool(call: CallRequest): Promise<CallResponse> {
    return this.request('POST', '/api/tools/call', call);
  }

  agents(): Promise<{ agents: AgentView[] }> {
    return this.request('GET', '/api/agents');
  }

  agentShow(name: string): Promise<AgentDetail> {
    return this.request('POST', '/api/agents/show', { name });
  }

  agentAdd(body: {
    name: string;
    allow: string[];
    deny: string[];
    record_arguments: boolean;
    mode: 'full' | 'discovery';
  }): Promise<{
    agent: AgentView;
    token: string;
  }> {
    return this.request('POST', '/api/agents/add', body);
  }

  agentWhoami(token: string): Promise<{ name: string }> {
    return this.request('POST', '/api/agents/whoami', { token });
  }

  agentRotate(name: string): Promise<{ agent: AgentView; token: string }> {
    return this.request('POST', '/api/agents/rotate', { name });
  }

  agentRemove(name: string): Promise<{ removed: string }> {
    return this.request('POST', '/api/agents/remove', { name });
  }

  agentUpdate(body: {
    name: string;
    allow?: string[];
    deny?: string[];
    record_arguments?: boolean;
  }): Promise<AgentView> {
    return this.request('POST', '/api/agents/update', body);
  }

  caStatus(): Promise<CaRolloverStatus> {
    return this.request('GET', '/api/ca');
  }

  caRotate(): Promise<CaRolloverStatus> {
    return this.request('POST', '/api/ca/rotate', {});
  }

  caFinish(force: boolean): Promise<FinishResult> {
    return this.request('POST', '/api/ca/finish', { force });
  }

  pending(): Promise<{ pending: PendingRequestJson[] }> {
    return this.request('GET', '/api/slave/pending');
  }

  approve(hostId: string, pairingCode: string): Promise<ApproveResponse> {
    return this.request('POST', '/api/slave/approve', { host_id: hostId, pairing_code: pairingCode });
  }

  deny(hostId: string, pairingCode: string): Promise<{ status: 'denied'; host_id: string }> {
    return this.request('POST', '/api/slave/deny', { host_id: hostId, pairing_code: pairingCode });
  }

  rotateJoinToken(): Promise<RotatedJoinTokenJson> {
    return this.request('POST', '/api/slave/join-token/rotate', {});
  }

  slaveHealth(): Promise<{ slaves: SlaveHealth[] }> {
    return this.request('GET', '/api/slave/health');
  }

  revoked(): Promise<{ revoked: RevokedJson[] }> {
    return this.request('GET', '/api/slave/revoked');
  }

  revoke(target: { host_id: string } | { all: true }, reason?: string): Promise<{ revoked: RevokedHost[] }> {
    return this.request('POST', '/api/slave/revoke', { ...target, ...(reason ? { reason } : {}) });
  }

  /** The audit trail: the newest `limit` rows matching, or the oldest after `after_id`. */
  audit(params: AuditParams = {}): Promise<AuditResponse> {
    return this.request('GET', `/api/audit${auditQueryString(params)}`);
  }

  /**
   * Follows the audit trail: `onEvent` gets each row after `params.after_id` (or, without it,
   * each row written from now on), as it is written, until `signal` aborts. Rejects when the
   * daemon cuts the stream or goes away.
   */
  async followAudit(
    params: AuditParams,
    onEvent: (event: AuditEventJson) => void,
    signal?: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    const stop = new AbortController();
    const forward = () => stop.abort();
    signal?.addEventListener('abort', forward);
    let failure: DianeError | undefined;
    try {
      await this.streamEvents(
        `/api/audit${auditQueryString({ ...params, limit: undefined, follow: 1 })}`,
        (type, data) => {
          if (failure) return;
          if (type === 'audit') onEvent(data as AuditEventJson);
          else if (type === 'error') {
            failure = new DianeError((data as { error?: string }).error ?? 'the audit stream failed');
            stop.abort();
          }
        },
        stop.signal,
        onOpen,
      );
    } catch (err) {
      // Refusals and "no daemon" say what they mean; a stream cut mid-way is the daemon leaving.
      if (err instanceof DianeError) throw err;
    } finally {
      signal?.removeEventListener('abort', forward);
    }
    if (failure) throw failure;
    if (!signal?.aborted) throw new DianeError('the daemon ended the audit stream (did it stop?)');
  }

  /**
   * Streams server-sent events from `path` until the daemon goes away or `signal` aborts.
   * `onOpen` runs once the daemon accepted the stream: from then on no event is missed.
   */
  streamEvents(
    path: string,
    onEvent: (type: string, data: unknown) => void,
    signal?: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socketPath, path, method: 'GET' }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (text.length < 64 * 1024) text += chunk;
          });
          res.on('end', () => {
            const refusal = `the daemon refused the event stream (HTTP ${res.statusCode})`;
            let body: { error?: unknown; code?: unknown } = {};
            try {
              body = JSON.parse(text) as typeof body;
            } catch {
              // Not JSON: the status says enough.
            }
            reject(
              new AdminRequestError(
                typeof body.error === 'string' ? body.error : refusal,
                res.statusCode ?? 500,
                typeof body.code === 'string' ? body.code : 'error',
              ),
            );
          });
          return;
        }
        onOpen?.();
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (text: string) => {
          buffer += text;
          for (;;) {
            const end = buffer.indexOf('\n\n');
            if (end < 0) break;
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) type = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data) onEvent(type, JSON.parse(data));
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
      });
      signal?.addEventListener('abort', () => {
        req.destroy();
        resolve();
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (signal?.aborted) return resolve();
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(this.noDaemon());
        else reject(err);
      });
      req.end();
    });
  }

  request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : undefined,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new Error('admin response too large'));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : {};
            } catch {
              reject(new DianeError(`the daemon sent an unreadable answer (${res.statusCode})`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const err = parsed as { error?: string; code?: string };
              reject(
                new AdminRequestError(
                  err.error ?? `HTTP ${res.statusCode}`,
                  res.statusCode ?? 500,
                  err.code ?? 'error',
                ),
              );
              return;
            }
            resolve(parsed as T);
          });
          res.on('error', reject);
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(this.noDaemon());
        else if (err.code === 'EACCES') {
          reject(
            new DianeError(`permission denied on ${this.socketPath}: the daemon belongs to another user`),
          );
        } else reject(err);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  noDaemon(): DianeError {
    return new DianeError(
      `No Diane daemon is running for DIANE_HOME=${this.home}. Start one with \`diane serve\` (or \`npm start\`).`,
      ExitCode.noDaemon,
      'no-daemon',
    );
  }
}

/** `?agent=...&limit=...` of the defined filters, or '' when there are none. */
function auditQueryString(params: AuditParams & { follow?: 1 }): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `?${text}` : '';
}
