import { NAME_PATTERN } from '../config/mcpServers.js';
import { PairingError } from './errors.js';

/** Names a slave may not take: they would read as something other than one machine. */
export const RESERVED_HOST_IDS: readonly string[] = ['master', 'local', 'localhost', 'admin', 'all'];

/**
 * Refuses a host id that is malformed, reserved, or already the name of something else
 * (`isNameTaken` says why). The id becomes a tool-name prefix, so it must be unambiguous.
 */
export function checkHostId(hostId: string, isNameTaken?: (hostId: string) => string | undefined): void {
  if (!NAME_PATTERN.test(hostId)) {
    throw new PairingError(
      400,
      'PAIRING_INVALID_HOST_ID',
      `${JSON.stringify(hostId.slice(0, 64))} is not a valid host id: use 1-32 lowercase letters, digits ` +
        'and hyphens, starting and ending with a letter or digit',
    );
  }
  if (RESERVED_HOST_IDS.includes(hostId)) {
    throw new PairingError(
      400,
      'PAIRING_RESERVED_HOST_ID',
      `"${hostId}" is a reserved name; choose another host id`,
    );
  }
  const taken = isNameTaken?.(hostId);
  if (taken !== undefined) {
    throw new PairingError(409, 'PAIRING_HOST_ID_TAKEN', `The host id "${hostId}" cannot be used: ${taken}`);
  }
}
