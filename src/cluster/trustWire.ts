import { z } from 'zod';
import { MAX_CERT_CHARS } from './renewalWire.js';

/**
 * The wire contract of CA rollover over the link, imported by both ends.
 *
 * The slave asks `diane/trust` when a link opens and whenever the master announces
 * `notifications/diane/trust_changed`. The answer is authenticated by the link itself: mutual TLS
 * verified against the CAs the slave already trusts. So a slave learns the next CA from the old
 * chain, and the old CA stops being trusted only when the master says so over a link the slave
 * verified.
 */
export const TRUST_METHOD = 'diane/trust';
export const TRUST_CHANGED_NOTIFICATION = 'notifications/diane/trust_changed';

/** Current and next: a rollover never has more than two CAs at once. */
export const MAX_TRUSTED_CAS = 2;

const PemCertificate = z
  .string()
  .max(MAX_CERT_CHARS * 2)
  .refine((s) => s.includes('-----BEGIN CERTIFICATE-----'), { message: 'expected a PEM certificate' });

export const TrustParamsSchema = z.object({}).strict();

export const TrustResultSchema = z.object({
  /** The CAs whose certificates the master accepts and whose server certificate it may present. */
  ca_certs: z.array(PemCertificate).min(1).max(MAX_TRUSTED_CAS),
  /** Key fingerprint of the CA that signs new certificates; a slave on another one renews now. */
  issuing_ca_fingerprint: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});
export type TrustResult = z.infer<typeof TrustResultSchema>;
