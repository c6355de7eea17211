import { z } from 'zod';

/**
 * The wire contract of certificate renewal over the link, imported by both ends.
 *
 * Why an MCP request and not a side channel: the link already is the mutual-TLS channel that
 * authenticates the slave by its current certificate, and the master's end of it knows which
 * host the link belongs to (the hub's certificate check named it). A request on it needs no
 * second listener, no second authentication and no host id in the message. The slave is the MCP
 * server on the link, so this is a server-to-client request: the slave's SDK `Server` sends it,
 * the master's SDK `Client` answers it with a handler registered for this non-spec method.
 *
 * Only the CSR crosses: the new private key never leaves the slave.
 */
export const RENEW_METHOD = 'diane/renewCertificate';

/** A P-256 CSR is under 1 KiB in PEM; anything near this is not one of ours. */
export const MAX_CSR_CHARS = 16 * 1024;
/** An issued certificate is about 1 KiB in PEM. */
export const MAX_CERT_CHARS = 16 * 1024;

export const RenewParamsSchema = z.object({
  csr: z.string().min(1).max(MAX_CSR_CHARS),
});
export type RenewParams = z.infer<typeof RenewParamsSchema>;

const IsoTime = z.string().max(40).datetime({ offset: true });

export const RenewResultSchema = z.object({
  client_cert: z
    .string()
    .max(MAX_CERT_CHARS)
    .refine((s) => s.includes('-----BEGIN CERTIFICATE-----'), { message: 'expected a PEM certificate' }),
  issued_at: IsoTime,
  expires_at: IsoTime,
});
export type RenewResult = z.infer<typeof RenewResultSchema>;

/**
 * A refusal is a JSON-RPC error with this code (in the range JSON-RPC leaves to implementations)
 * and `data.reason`, so the slave can tell "the master said no" from a broken link.
 */
export const RENEWAL_REFUSED_CODE = -32041;

export const RENEWAL_REFUSALS = [
  'unknown-host',
  'disabled',
  'revoked',
  'not-current',
  'expired',
  'csr-rejected',
  'key-reused',
] as const;
export type RenewalRefusal = (typeof RENEWAL_REFUSALS)[number];

export const RenewalRefusedDataSchema = z.object({ reason: z.enum(RENEWAL_REFUSALS) });

/** Refusals after which asking again cannot help: the link is cut and re-pairing is the way. */
export const FINAL_RENEWAL_REFUSALS: ReadonlySet<RenewalRefusal> = new Set([
  'unknown-host',
  'disabled',
  'revoked',
  'not-current',
  'expired',
]);
