import { request } from 'node:https';
import { DianeError } from '../errors.js';

export interface PinnedRequest {
  url: URL;
  method: 'GET' | 'POST';
  body?: unknown;
  /** The only CA trusted for this request: the master's, pinned at pairing. */
  caPem: string;
  timeoutMs?: number;
}

export interface JsonReply {
  status: number;
  body: Record<string, unknown>;
}

const MAX_REPLY_BYTES = 1024 * 1024;

/** A JSON request to the master over TLS verified against the pinned CA only. */
export function pinnedJsonRequest(req: PinnedRequest): Promise<JsonReply> {
  const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
  return new Promise((resolve, reject) => {
    const r = request(
      req.url,
      {
        method: req.method,
        ca: req.caPem,
        minVersion: 'TLSv1.3',
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
          : {},
        timeout: req.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) r.destroy(new Error('reply too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            resolve({ status: res.statusCode ?? 0, body });
          } catch {
            reject(new DianeError(`the master sent an unreadable reply (HTTP ${res.statusCode})`));
          }
        });
      },
    );
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.on('error', (err) => reject(new DianeError(`request to the master failed: ${err.message}`)));
    if (payload) r.write(payload);
    r.end();
  });
}
