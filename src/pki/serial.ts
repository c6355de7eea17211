import { randomBytes } from 'node:crypto';
import { PkiError } from './errors.js';

/*
 * Serial number format, used as the lookup key for certificates in the store:
 * lowercase hex of the DER INTEGER's content octets for a positive serial, i.e. no leading zero
 * bytes except the single 00 that DER needs when the first byte would otherwise have its top bit
 * set. Always an even number of digits. Example: 0x85 0x01 → "008501"; 0x05 0x01 → "0501".
 * Sources disagree on the rest (Node's `serialNumber` is uppercase and drops the 00,
 * @peculiar/x509 drops it too), so every serial goes through `normalizeSerial` before use.
 */

/** Turns any hex spelling of a positive serial (any case, colons, leading zeros) into the format. */
export function normalizeSerial(hex: string): string {
  const digits = hex.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(digits)) throw new PkiError(`Not a hexadecimal serial number: "${hex}"`);
  let s = digits.replace(/^0+/, '');
  if (s.length === 0) return '00';
  if (s.length % 2 === 1) s = `0${s}`;
  return Number.parseInt(s[0]!, 16) >= 8 ? `00${s}` : s;
}

/** The serial of a parsed certificate (@peculiar/x509, node:crypto, or `tls` peer), normalised. */
export function serialOf(cert: { readonly serialNumber: string }): string {
  return normalizeSerial(cert.serialNumber);
}

/**
 * A fresh serial: 128 random bits with the top bit cleared so that it is positive, as RFC 5280
 * requires, and never zero.
 */
export function randomSerial(): string {
  for (;;) {
    const bytes = randomBytes(16);
    bytes[0]! &= 0x7f;
    if (bytes.some((b) => b !== 0)) return normalizeSerial(bytes.toString('hex'));
  }
}
