/**
 * An error meant for a person: its message is printed as is (no stack trace) and the process
 * exits with `exitCode`. Anything else that reaches the top level is a bug and is printed in full.
 */
export class DianeError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly code = 'DIANE_ERROR',
  ) {
    super(message);
    this.name = 'DianeError';
  }
}

/** Exit codes scripts can rely on. */
export const ExitCode = {
  failure: 1,
  usage: 2,
  noDaemon: 3,
  store: 4,
  /** Bad configuration, including a home Diane refuses to trust (config/homeTrust.ts). */
  config: 5,
  pki: 6,
  /** `diane slave start` gives up because the master revoked this slave's certificate. */
  revoked: 10,
  /** `diane slave start` gives up because this slave's certificate has expired. */
  certExpired: 11,
  pairingDenied: 12,
  pairingExpired: 13,
  /** `diane slave start` gives up because the master's CA is no longer one this slave trusts. */
  masterCaChanged: 14,
} as const;
