import { z } from 'zod';
import { RevocationError, type RevocationService } from '../cluster/revocation.js';
import type { SlaveRegistry } from '../cluster/slaveRegistry.js';
import type { MasterStore } from '../store/index.js';
import { AdminHttpError, type AdminServer, parseBody } from './adminServer.js';

const RevokeBody = z.union([
  z.object({ host_id: z.string().min(1).max(64), reason: z.string().max(500).optional() }).strict(),
  z.object({ all: z.literal(true), reason: z.string().max(500).optional() }).strict(),
]);

/** Admin endpoints for paired slaves: health, revocation and the revocation log. */
export function registerSlaveRoutes(
  admin: AdminServer,
  deps: { store: MasterStore; registry: SlaveRegistry; revocation: RevocationService },
): void {
  admin.handle('GET', '/api/slave/health', async () => ({ slaves: await deps.registry.health() }));
  admin.handle('GET', '/api/slave/revoked', async () => ({
    revoked: (await deps.store.revokedCredentials.list()).map((r) => ({
      host_id: r.hostId,
      cert_serial: r.certSerial,
      revoked_at: r.revokedAt.toISOString(),
      reason: r.reason ?? null,
    })),
  }));
  admin.handle('POST', '/api/slave/revoke', async ({ body }) => {
    const req = parseBody(RevokeBody, body);
    const reason = req.reason?.trim() || 'revoked by admin';
    try {
      if ('all' in req) return { revoked: await deps.revocation.revokeAll(reason) };
      return { revoked: [await deps.revocation.revoke(req.host_id, reason)] };
    } catch (err) {
      if (err instanceof RevocationError) throw new AdminHttpError(err.status, err.message, 'revocation');
      throw err;
    }
  });
}
