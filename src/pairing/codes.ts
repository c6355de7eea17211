import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

const CODE_SHAPE = /^([0-9]{3})-?([0-9]{3})$/;

/**
 * `123-456` for both `123456` and `123-456` (surrounding blanks from a copy and paste are
 * dropped); undefined for anything else, so that no other spelling can ever match.
 */
export function normalizePairingCode(input: string): string | undefined {
  const match = CODE_SHAPE.exec(input.trim());
  return match ? `${match[1]}-${match[2]}` : undefined;
}

/** A fresh code that `isTaken` does not refuse; codes are few, so collisions are retried. */
export function newPairingCode(isTaken: (code: string) => boolean): string {
  for (;;) {
    const digits = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const code = `${digits.slice(0, 3)}-${digits.slice(3)}`;
    if (!isTaken(code)) return code;
  }
}

/** Both arguments normalised; timing does not tell how many leading characters matched. */
export function pairingCodesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** 128 random bits: the slave's only handle on its request, so it must not be guessable. */
export function newRequestId(): string {
  return randomBytes(16).toString('base64url');
}

/** What the store keeps instead of the id, so that reading the database does not reveal it. */
export function hashRequestId(requestId: string): string {
  return createHash('sha256').update(requestId).digest('hex');
}
