import { DianeError, ExitCode } from '../errors.js';

/** The CA or a certificate on disk cannot be used as it is; a person has to look at the files. */
export class PkiError extends DianeError {
  constructor(message: string) {
    super(message, ExitCode.pki, 'PKI_ERROR');
    this.name = 'PkiError';
  }
}

/**
 * A certificate signing request that the master refuses to sign. `reason` is shown to the admin
 * and sent back to the slave, so it says what was wrong, not how the parser failed.
 */
export class CsrRejectedError extends DianeError {
  constructor(readonly reason: string) {
    super(`Certificate signing request rejected: ${reason}`, ExitCode.pki, 'CSR_REJECTED');
    this.name = 'CsrRejectedError';
  }
}
