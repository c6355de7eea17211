import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AdminServer } from '../../src/admin/adminServer.js';
import { silentLogger } from '../../src/log.js';

let dir: string;
let server: AdminServer;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'diane-admin-'));
  server = new AdminServer(join(dir, 'diane.sock'), silentLogger);
  await server.listen();
});

afterEach(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: join(dir, 'diane.sock'), method, path, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('AdminServer', () => {
  it('answers 503 "starting" until the daemon says it is ready, for known and unknown paths alike', async () => {
    server.handle('GET', '/api/info', () => ({ ok: true }));
    for (const path of ['/api/info', '/api/nothing']) {
      const early = await call('GET', path);
      expect(early.status).toBe(503);
      expect(early.json).toMatchObject({ code: 'starting', error: expect.stringMatching(/starting/) });
      expect(early.headers['retry-after']).toBe('1');
    }
    server.ready();
    expect(await call('GET', '/api/info')).toMatchObject({ status: 200, json: { ok: true } });
    expect(await call('GET', '/api/nothing')).toMatchObject({ status: 404, json: { code: 'not-found' } });
  });

  it('answers 400 to a body nested too deep, before any handler sees it', async () => {
    let called = false;
    server.handle('POST', '/api/x', () => {
      called = true;
      return {};
    });
    server.ready();
    const depth = 100_000;
    const reply = await call('POST', '/api/x', `${'['.repeat(depth)}${']'.repeat(depth)}`);
    expect(reply).toMatchObject({ status: 400, json: { code: 'bad-request' } });
    expect(String(reply.json.error)).toMatch(/deeper than 128/);
    expect(called).toBe(false);
  });
});
