import { z } from 'zod';
import type { PairingEvent, PairingService, PendingRequestView } from '../pairing/index.js';
import { PairingError } from '../pairing/index.js';
import { AdminHttpError, type AdminServer, parseBody } from './adminServer.js';

const Decision = z.object({
  host_id: z.string().min(1).max(64),
  pairing_code: z.string().min(1).max(16),
});

export interface PendingRequestJson {
  host_id: string;
  pairing_code: string;
  source_address: string;
  key_fingerprint: string;
  requested_at: string;
  expires_at: string;
  age_seconds: number;
  re_pair: boolean;
}

export function pendingToJson(p: PendingRequestView, now: Date): PendingRequestJson {
  return {
    host_id: p.hostId,
    pairing_code: p.pairingCode,
    source_address: p.sourceAddress,
    key_fingerprint: p.keyFingerprint,
    requested_at: p.requestedAt.toISOString(),
    expires_at: p.expiresAt.toISOString(),
    age_seconds: Math.max(0, Math.round((now.getTime() - p.requestedAt.getTime()) / 1000)),
    re_pair: p.rePair,
  };
}

const SSE_KEEPALIVE_MS = 15_000;

export interface JoinTokenRotation {
  /** Writes a new join token to the home and returns it. */
  writeNew: () => string;
  /** The pair command `diane info` prints, with the token now in force. */
  pairCommand: () => string;
}

export interface RotatedJoinTokenJson {
  join_token: string;
  pair_command: string;
}

/** Admin endpoints of pairing: list, approve, deny, a live event stream (SSE), join-token rotation. */
export function registerPairingRoutes(
  admin: AdminServer,
  pairing: PairingService,
  joinToken: JoinTokenRotation,
): void {
  admin.handle('POST', '/api/slave/join-token/rotate', async (): Promise<RotatedJoinTokenJson> => {
    const token = await asAdminError(async () => pairing.rotateJoinToken(joinToken.writeNew));
    return { join_token: token, pair_command: joinToken.pairCommand() };
  });
  admin.handle('GET', '/api/slave/pending', async () => {
    const pending = await pairing.listPending();
    const now = new Date();
    return { pending: pending.map((p) => pendingToJson(p, now)) };
  });
  admin.handle('POST', '/api/slave/approve', async ({ body }) => {
    const d = parseBody(Decision, body);
    const approved = await asAdminError(() => pairing.approve(d.host_id, d.pairing_code));
    return {
      status: 'approved',
      host_id: approved.hostId,
      cert_serial: approved.certSerial,
      expires_at: approved.certExpiresAt.toISOString(),
      re_pair: approved.rePair,
    };
  });
  admin.handle('POST', '/api/slave/deny', async ({ body }) => {
    const d = parseBody(Decision, body);
    const denied = await asAdminError(async () => pairing.deny(d.host_id, d.pairing_code));
    return { status: 'denied', host_id: denied.hostId };
  });
  admin.handle('GET', '/api/slave/events', ({ raw, res }) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    const send = (event: PairingEvent) => {
      res.write(`event: ${event.type}\ndata: ${JSON.stringify(eventToJson(event))}\n\n`);
    };
    const unsubscribe = pairing.subscribe(send);
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
    raw.socket.once('close', () => {
      clearInterval(keepalive);
      unsubscribe();
    });
    return undefined;
  });
}

function eventToJson(e: PairingEvent): Record<string, unknown> {
  return {
    type: e.type,
    host_id: e.hostId,
    pairing_code: e.pairingCode,
    key_fingerprint: e.keyFingerprint,
    at: e.at,
  };
}

async function asAdminError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PairingError) throw new AdminHttpError(err.status, err.message, err.code);
    throw err;
  }
}
