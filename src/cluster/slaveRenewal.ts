import { createPublicKey, X509Certificate } from 'node:crypto';
import { ProtocolError, type Server } from '@modelcontextprotocol/server';
import { makeCsr } from '../pki/index.js';
import {
  FINAL_RENEWAL_REFUSALS,
  RENEW_METHOD,
  RENEWAL_REFUSED_CODE,
  type RenewalRefusal,
  RenewalRefusedDataSchema,
  RenewResultSchema,
} from './renewalWire.js';
import type { SlaveCredentials } from './slaveCredentials.js';

/** When and how often the slave renews its certificate. */
export interface RenewalSchedule {
  /** Renewal falls at a random point between these fractions of the certificate's lifetime. */
  earliestFraction: number;
  latestFraction: number;
  /** A failed renewal is retried after a full-jitter backoff between these bounds… */
  retryBaseMs: number;
  retryCapMs: number;
  /** …but never later than this fraction of the time the certificate has left. */
  retryMaxFractionOfRemaining: number;
  /** How long the master has to answer one renewal request. */
  requestTimeoutMs: number;
}

/**
 * About two thirds, jittered downwards: a fleet paired in one afternoon does not renew in one
 * second, and a slave that was offline past two thirds finds itself due as soon as it is back.
 */
export const DEFAULT_RENEWAL_SCHEDULE: RenewalSchedule = Object.freeze({
  earliestFraction: 0.6,
  latestFraction: 2 / 3,
  retryBaseMs: 2000,
  retryCapMs: 15 * 60_000,
  retryMaxFractionOfRemaining: 0.1,
  requestTimeoutMs: 30_000,
});

export function renewalDueAt(
  creds: Pick<SlaveCredentials, 'issued_at' | 'expires_at'>,
  schedule: RenewalSchedule,
  random: () => number = Math.random,
): Date {
  const issued = Date.parse(creds.issued_at);
  const lifetime = Date.parse(creds.expires_at) - issued;
  const fraction =
    schedule.earliestFraction + random() * (schedule.latestFraction - schedule.earliestFraction);
  return new Date(issued + Math.max(0, lifetime) * fraction);
}

/** The master said no; `final` means asking again cannot help (the link is being cut). */
export class RenewalRefused extends Error {
  readonly final: boolean;
  constructor(
    readonly reason: RenewalRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'RenewalRefused';
    this.final = FINAL_RENEWAL_REFUSALS.has(reason);
  }
}

/**
 * One renewal over the link: a fresh key and CSR made here (the key never leaves this machine),
 * the CSR sent as `diane/renewCertificate` on the link's MCP server, and the answer checked to
 * carry that key. Returns the new credentials; writing them is the caller's job.
 */
export async function requestRenewal(
  server: Server,
  creds: SlaveCredentials,
  timeoutMs: number,
): Promise<SlaveCredentials> {
  const { csrPem, keyPem } = await makeCsr(creds.host_id);
  let result: { client_cert: string; issued_at: string; expires_at: string };
  try {
    result = await server.request({ method: RENEW_METHOD, params: { csr: csrPem } }, RenewResultSchema, {
      timeout: timeoutMs,
    });
  } catch (err) {
    if (err instanceof ProtocolError && err.code === RENEWAL_REFUSED_CODE) {
      const data = RenewalRefusedDataSchema.safeParse(err.data);
      if (data.success) throw new RenewalRefused(data.data.reason, err.message);
    }
    throw err;
  }
  const cert = new X509Certificate(result.client_cert);
  const mine = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(mine)) {
    throw new Error('the master answered with a certificate for another key');
  }
  return {
    ...creds,
    client_cert: result.client_cert,
    client_key: keyPem,
    issued_at: result.issued_at,
    expires_at: result.expires_at,
  };
}
