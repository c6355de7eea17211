import type { IncomingMessage, ServerResponse } from 'node:http';
import { jsonDeeperThan, MAX_JSON_DEPTH } from './jsonDepth.js';

export type JsonBody = { ok: true; value: unknown } | { ok: false; status: 400 | 413; message: string };

/**
 * Reads and parses a JSON request body, refusing more than `limit` bytes before buffering them
 * and nesting deeper than `maxDepth` before parsing it.
 */
export async function readJsonBody(
  req: IncomingMessage,
  limit: number,
  maxDepth = MAX_JSON_DEPTH,
): Promise<JsonBody> {
  const tooLarge = { ok: false, status: 413, message: `request body over ${limit} bytes` } as const;
  if (Number(req.headers['content-length'] ?? 0) > limit) return tooLarge;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return tooLarge;
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return { ok: false, status: 400, message: 'request body is empty; expected JSON' };
  const bytes = Buffer.concat(chunks);
  if (jsonDeeperThan(bytes, maxDepth)) {
    return { ok: false, status: 400, message: `request body nests deeper than ${maxDepth} levels` };
  }
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) };
  } catch (err) {
    return { ok: false, status: 400, message: `request body is not valid JSON: ${(err as Error).message}` };
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
