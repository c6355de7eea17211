import { DianeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MasterStore } from '../store/index.js';
import type { SlaveRegistry } from './slaveRegistry.js';
import { CloseCode } from './webSocketTransport.js';

export class RevocationError extends DianeError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, 1, 'revocation');
  }
}

export interface RevokedHost {
  host_id: string;
  cert_serial: string;
}

/**
 * Revoking a slave: its serial goes on the revocation list, the host is disabled (both in one
 * transaction), then its live link is closed at once with close code 4403, which takes its tools
 * away from agents. A revoked slave comes back only by pairing again with a new key.
 */
export class RevocationService {
  constructor(
    private readonly store: MasterStore,
    private readonly registry: Pick<SlaveRegistry, 'removeHost'>,
    private readonly logger: Logger,
  ) {}

  async revoke(hostId: string, reason: string): Promise<RevokedHost> {
    // Read inside the transaction, so that the serial revoked is the one current at that moment
    // even if another master re-pairs or renews the host meanwhile.
    const row = await this.store.transaction(async (tx) => {
      const row = await tx.slaveServers.getByHostId(hostId);
      if (!row) throw new RevocationError(`no paired host named ${hostId}`, 404);
      if (!row.enabled && (await tx.revokedCredentials.getBySerial(row.certSerial))) {
        throw new RevocationError(`${hostId} is already revoked`, 409);
      }
      await tx.revokedCredentials.revoke({
        hostId,
        certSerial: row.certSerial,
        reason,
        keyFingerprint: row.keyFingerprint,
      });
      await tx.slaveServers.setEnabled(hostId, false);
      return row;
    });
    this.logger.warn({ host: hostId, serial: row.certSerial, reason }, 'slave revoked');
    await this.registry.removeHost(hostId, CloseCode.revoked, 'credentials revoked');
    return { host_id: hostId, cert_serial: row.certSerial };
  }

  async revokeAll(reason: string): Promise<RevokedHost[]> {
    const rows = await this.store.transaction(async (tx) => {
      const rows = (await tx.slaveServers.list()).filter((r) => r.enabled);
      for (const row of rows) {
        await tx.revokedCredentials.revoke({
          hostId: row.hostId,
          certSerial: row.certSerial,
          reason,
          keyFingerprint: row.keyFingerprint,
        });
        await tx.slaveServers.setEnabled(row.hostId, false);
      }
      return rows;
    });
    await Promise.all(
      rows.map((r) => this.registry.removeHost(r.hostId, CloseCode.revoked, 'credentials revoked')),
    );
    if (rows.length) this.logger.warn({ hosts: rows.map((r) => r.hostId), reason }, 'all slaves revoked');
    return rows.map((r) => ({ host_id: r.hostId, cert_serial: r.certSerial }));
  }
}
