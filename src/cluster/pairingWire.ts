import { z } from 'zod';

/**
 * The pairing endpoints as both sides see them: the master's cluster listener and the slave's
 * `diane slave pair`. Change them here, together.
 */
export const PAIR_PATH = '/api/slave/pair';

export const MAX_PAIR_BODY_BYTES = 32 * 1024;

/** The join token travels in the body, which TLS protects, never in a URL that could be logged. */
export const PairBody = z
  .object({
    host_id: z.string().min(1).max(64),
    csr: z.string().min(1).max(MAX_PAIR_BODY_BYTES),
    join_token: z.string().min(1).max(256).optional(),
  })
  .strict();

export type PairBody = z.infer<typeof PairBody>;

/** 16 random bytes in base64url: the slave's handle for polling, `${PAIR_PATH}/<id>`. */
export const REQUEST_ID = /^[A-Za-z0-9_-]{22}$/;

/**
 * `GET` during a CA rollover: the CAs the master trusts and the cross certificate that links the
 * presented one to the next one, so `slave pair --ca-fingerprint` accepts either CA. Nothing in
 * it needs to be secret or trusted as sent: the slave checks the signatures against its pin.
 */
export const PAIR_TRUST_PATH = '/api/slave/trust';

export const PairTrustReply = z.object({
  ca_certs: z
    .array(z.string().max(32 * 1024))
    .min(1)
    .max(2),
  cross_certs: z.array(z.string().max(32 * 1024)).max(1),
});
export type PairTrustReply = z.infer<typeof PairTrustReply>;
