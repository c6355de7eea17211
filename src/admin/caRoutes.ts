import { z } from 'zod';
import { CaRolloverError, type CaRolloverService } from '../cluster/caRollover.js';
import { AdminHttpError, type AdminServer, parseBody } from './adminServer.js';

const FinishBody = z.object({ force: z.boolean().optional() }).strict();

/** Admin endpoints of the CA lifecycle: status, start and finish of a rollover. */
export function registerCaRoutes(admin: AdminServer, rollover: CaRolloverService): void {
  admin.handle('GET', '/api/ca', () => rollover.status());
  admin.handle('POST', '/api/ca/rotate', () => wrap(() => rollover.rotate()));
  admin.handle('POST', '/api/ca/finish', ({ body }) => {
    const req = parseBody(FinishBody, body);
    return wrap(() => rollover.finish({ force: req.force === true }));
  });
}

async function wrap<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CaRolloverError) throw new AdminHttpError(err.status, err.message, 'ca-rollover');
    throw err;
  }
}
