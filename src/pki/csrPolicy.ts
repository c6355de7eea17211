import type { KeyObject } from 'node:crypto';
import type { x509 } from './x509.js';

/*
 * What a slave may ask for: its key and its name, nothing else. Each check returns the reason for
 * refusing, in words for the admin and the slave's operator, or null when the CSR passes.
 */

export type SlaveKeyType = 'p256' | 'ed25519' | 'rsa';

export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 8192;
const ACCEPTED_KEYS = `accepted keys are EC P-256, Ed25519, or RSA ${RSA_MIN_BITS}-${RSA_MAX_BITS} bits`;

export type KeyVerdict =
  | { ok: true; keyType: SlaveKeyType; rsaBits?: number }
  | { ok: false; reason: string };

export function checkKey(key: KeyObject): KeyVerdict {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ed25519') return { ok: true, keyType: 'ed25519' };
  if (type === 'ec') {
    if (details.namedCurve === 'prime256v1') return { ok: true, keyType: 'p256' };
    return {
      ok: false,
      reason: `its key is on the EC curve ${details.namedCurve ?? 'unknown'}; ${ACCEPTED_KEYS}`,
    };
  }
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS) return { ok: true, keyType: 'rsa', rsaBits: bits };
    return { ok: false, reason: `its key is RSA ${bits} bits; ${ACCEPTED_KEYS}` };
  }
  return { ok: false, reason: `its key type is ${type ?? 'unknown'}; ${ACCEPTED_KEYS}` };
}

/**
 * A subject as the CSR's author wrote it, made safe to show: the reason ends up on an admin's
 * terminal, so control characters (escape sequences) and other non-ASCII are shown as \u{..},
 * and a huge name is cut short.
 */
function shown(name: x509.Name): string {
  const text = name.toString();
  const cut = text.length > 120 ? `${text.slice(0, 120)}...` : text;
  return `"${cut.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)}"`;
}

/** The subject must be exactly one RDN holding exactly one attribute, CN=<expected host id>. */
export function checkSubject(name: x509.Name, expectedHostId: string): string | null {
  const expected = `"CN=${expectedHostId}"`;
  const rdns = name.toJSON();
  if (rdns.length === 0) return `its subject is empty; it must be exactly ${expected}`;
  const attributes = rdns.flatMap((rdn) => Object.values(rdn).flat());
  if (attributes.length !== 1) {
    return `its subject ${shown(name)} has ${attributes.length} attributes; it must be exactly ${expected}`;
  }
  // One attribute among several RDNs: the others are empty sets, which no tool writes on purpose.
  if (rdns.length !== 1) return `its subject ${shown(name)} has an empty RDN; it must be exactly ${expected}`;
  const cn = rdns[0]!.CN;
  if (!cn) return `its subject ${shown(name)} has no CN; it must be exactly ${expected}`;
  if (cn[0] !== expectedHostId) {
    return `its subject is ${shown(name)} but this host pairs as "${expectedHostId}"; it must be exactly ${expected}`;
  }
  return null;
}

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const EXTENSION_NAMES: Record<string, string> = {
  '2.5.29.14': 'subjectKeyIdentifier',
  '2.5.29.15': 'keyUsage',
  '2.5.29.17': 'subjectAltName',
  '2.5.29.19': 'basicConstraints',
  '2.5.29.37': 'extendedKeyUsage',
};
const ATTRIBUTE_NAMES: Record<string, string> = {
  [EXTENSION_REQUEST]: 'extensionRequest',
  '1.2.840.113549.1.9.7': 'challengePassword',
};

/**
 * The master decides every extension of a slave certificate from a fixed template, so a CSR that
 * asks for any (even harmless ones) is refused rather than quietly trimmed: it was not made by
 * `diane slave pair`, and the admin should know.
 */
export function checkAttributes(csr: x509.Pkcs10CertificateRequest): string | null {
  let attributes: readonly x509.Attribute[];
  try {
    // Parsed on first read, extensions included: a malformed one throws here, not in the
    // parser, and must be a refusal like any other rather than an error of the master.
    attributes = csr.attributes;
  } catch {
    return 'its attributes cannot be read; a CSR must carry none';
  }
  if (attributes.some((a) => a.type === EXTENSION_REQUEST)) {
    const requested =
      csr.extensions.map((e) => EXTENSION_NAMES[e.type] ?? e.type).join(', ') || 'none listed';
    return `it requests certificate extensions (${requested}); the master sets all extensions itself, a CSR must request none`;
  }
  if (attributes.length > 0) {
    const names = attributes.map((a) => ATTRIBUTE_NAMES[a.type] ?? a.type).join(', ');
    return `it carries attributes (${names}); a CSR must carry none`;
  }
  return null;
}
