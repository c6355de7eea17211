import { DianeError, ExitCode } from '../errors.js';

export type PairingErrorCode =
  | 'PAIRING_INVALID_HOST_ID'
  | 'PAIRING_RESERVED_HOST_ID'
  | 'PAIRING_HOST_ID_TAKEN'
  | 'PAIRING_CSR_REJECTED'
  | 'PAIRING_INVALID_CODE'
  | 'PAIRING_UNKNOWN_REQUEST'
  | 'PAIRING_NO_PENDING_REQUEST'
  | 'PAIRING_ALREADY_APPROVED'
  | 'PAIRING_ALREADY_DENIED'
  | 'PAIRING_EXPIRED'
  | 'PAIRING_KEY_ENROLLED'
  | 'PAIRING_KEY_REVOKED'
  | 'PAIRING_KEY_PENDING'
  | 'PAIRING_TOO_MANY_FROM_SOURCE'
  | 'PAIRING_JOIN_TOKEN_REQUIRED'
  | 'PAIRING_JOIN_TOKEN_INVALID'
  | 'PAIRING_JOIN_TOKEN_OFF';

/**
 * A pairing operation refused for a reason the caller can act on. `status` is the HTTP status
 * both the cluster listener (slave side) and the admin API answer with; `code` is stable for
 * scripts and tests, the message is for people.
 */
export class PairingError extends DianeError {
  declare readonly code: PairingErrorCode;

  constructor(
    readonly status: 400 | 401 | 404 | 409 | 410 | 429,
    code: PairingErrorCode,
    message: string,
  ) {
    super(message, status === 410 ? ExitCode.pairingExpired : ExitCode.failure, code);
    this.name = 'PairingError';
  }
}
