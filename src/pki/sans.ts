import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { PkiError } from './errors.js';
import type { x509 } from './x509.js';

/** Names every master certificate carries, so local clients work whatever else is configured. */
const ALWAYS = ['localhost', '127.0.0.1', '::1'];

const DNS_NAME = /^(?:\*\.)?[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

export interface SanEntry {
  type: 'dns' | 'ip';
  value: string;
}

/** An IP in one spelling (IPv6 compressed, lowercase), so that set comparison is exact. */
function canonicalIp(ip: string): string | null {
  if (isIP(ip) === 4) return ip;
  if (isIP(ip) !== 6) return null;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return null; // e.g. a zone id (fe80::1%eth0), which has no meaning in a certificate
  }
}

/** Classifies a host as IP or DNS name and spells it canonically; null when it is neither. */
export function toSanEntry(host: string): SanEntry | null {
  const trimmed = host.trim();
  const ip = canonicalIp(trimmed);
  if (ip) return { type: 'ip', value: ip };
  const dns = trimmed.toLowerCase().replace(/\.$/, '');
  return DNS_NAME.test(dns) ? { type: 'dns', value: dns } : null;
}

export function sanKey(entry: SanEntry): string {
  return `${entry.type}:${entry.value}`;
}

/** The SANs the master's server certificate should have, sorted and without duplicates. */
export function wantedSans(hosts: readonly string[]): SanEntry[] {
  const entries = new Map<string, SanEntry>();
  const add = (entry: SanEntry) => entries.set(sanKey(entry), entry);
  for (const host of ALWAYS) add(toSanEntry(host)!);
  // The machine's own name is a convenience; one that is not a valid DNS name is left out
  // rather than stopping the master.
  const own = toSanEntry(hostname());
  if (own) add(own);
  for (const host of hosts) {
    const entry = toSanEntry(host);
    if (!entry) throw new PkiError(`"${host}" is neither an IP address nor a valid DNS name`);
    add(entry);
  }
  return [...entries.values()].sort((a, b) => sanKey(a).localeCompare(sanKey(b)));
}

/** The SANs of a certificate in the same spelling; other name types are kept so they differ. */
export function certificateSans(san: x509.SubjectAlternativeNameExtension | null): string[] {
  if (!san) return [];
  return san.names.items
    .map((name) => {
      const entry = name.type === 'dns' || name.type === 'ip' ? toSanEntry(name.value) : null;
      return entry && entry.type === name.type ? sanKey(entry) : `${name.type}:${name.value}`;
    })
    .sort((a, b) => a.localeCompare(b));
}
