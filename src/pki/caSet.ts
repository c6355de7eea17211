import { readFileSync, renameSync, rmSync } from 'node:fs';
import { fileExists, writeFileAtomic } from '../config/files.js';
import type { CertificateAuthority } from './authority.js';
import { loadCa, loadOrCreateCa } from './ca.js';
import { type CreateCaOptions, createCa } from './createCa.js';
import { PkiError } from './errors.js';
import { encodePem } from './pem.js';
import { randomSerial } from './serial.js';
import { x509 } from './x509.js';

/**
 * The master's slave CAs. Outside a rollover there is one, `current`. During a rollover (`diane
 * ca rotate` until `diane ca finish`) there is also `next`: the master trusts both for client
 * certificates, issues from `next`, and keeps presenting a server certificate from `current`,
 * which every slave trusts. `cross` certifies the current CA's key with the next CA, so a slave
 * that pins the next CA's fingerprint at pairing can trust the current one through it.
 */
export interface CaSet {
  readonly current: CertificateAuthority;
  readonly next?: CertificateAuthority;
  readonly crossPem?: string;
}

export interface CaSetFiles {
  certPath: string;
  keyPath: string;
  nextCertPath: string;
  nextKeyPath: string;
  crossPath: string;
  retiredCertPath: string;
}

/** New certificates (pairing and renewal) come from the next CA during a rollover. */
export function issuingCa(set: CaSet): CertificateAuthority {
  return set.next ?? set.current;
}

/** The CAs a slave certificate may chain to, and that a slave should trust for the master. */
export function trustedCas(set: CaSet): CertificateAuthority[] {
  return set.next ? [set.current, set.next] : [set.current];
}

/**
 * Loads the CA set, creating the first CA on a new master. An interrupted `finish` (the next
 * key already moved into place, the next certificate not yet) is completed here: the files then
 * name exactly one possible outcome.
 */
export async function loadCaSet(files: CaSetFiles, options: Partial<CreateCaOptions> = {}): Promise<CaSet> {
  const hasCurrent = fileExists(files.certPath) && fileExists(files.keyPath);
  if (hasCurrent && fileExists(files.nextCertPath) && !fileExists(files.nextKeyPath)) {
    completeInterruptedFinish(files);
  }
  // createCa writes the key first: a lone next key is a `rotate` that died before its
  // certificate existed, so nothing was ever issued with it.
  if (hasCurrent && fileExists(files.nextKeyPath) && !fileExists(files.nextCertPath)) {
    rmSync(files.nextKeyPath, { force: true });
    rmSync(files.crossPath, { force: true });
  }
  const current = await loadOrCreateCa({ ...options, certPath: files.certPath, keyPath: files.keyPath });
  const hasNextCert = fileExists(files.nextCertPath);
  const hasNextKey = fileExists(files.nextKeyPath);
  if (!hasNextCert && !hasNextKey) return { current };
  const next = await loadCa({ certPath: files.nextCertPath, keyPath: files.nextKeyPath });
  const crossPem = fileExists(files.crossPath)
    ? readFileSync(files.crossPath, 'utf8')
    : await writeCross(files.crossPath, current, next);
  return { current, next, crossPem };
}

/** Starts a rollover: a new CA, trusted next to the current one, and the cross certificate. */
export async function startRollover(
  files: CaSetFiles,
  set: CaSet,
  options: Partial<CreateCaOptions> = {},
): Promise<CaSet> {
  if (set.next) throw new PkiError('A CA rollover is already under way; finish it first (`diane ca finish`)');
  const next = await createCa({ ...options, certPath: files.nextCertPath, keyPath: files.nextKeyPath });
  const crossPem = await writeCross(files.crossPath, set.current, next);
  return { current: set.current, next, crossPem };
}

/**
 * Ends a rollover: the next CA becomes the current one and the old one is retired. Its
 * certificate is kept (`slave-ca-retired-cert.pem`) so a slave that missed the rollover can be
 * told so; its key is deleted, so nothing can be signed with it any more. Each step is a rename
 * or an atomic write, in an order `loadCaSet` can complete after a crash.
 */
export function finishRollover(files: CaSetFiles, set: CaSet): CaSet {
  const next = set.next;
  if (!next) throw new PkiError('No CA rollover is under way (`diane ca rotate` starts one)');
  writeFileAtomic(files.retiredCertPath, set.current.certPem, 0o644);
  renameSync(files.nextKeyPath, files.keyPath);
  completeInterruptedFinish(files);
  return { current: next };
}

function completeInterruptedFinish(files: CaSetFiles): void {
  renameSync(files.nextCertPath, files.certPath);
  rmSync(files.crossPath, { force: true });
}

async function writeCross(
  path: string,
  current: CertificateAuthority,
  next: CertificateAuthority,
): Promise<string> {
  const pem = await crossCertify(current, next);
  writeFileAtomic(path, pem, 0o644);
  return pem;
}

/**
 * The current CA's name and key, certified by the next CA. It proves that whoever holds the next
 * CA's key vouches for the current CA; it is never used to build TLS chains.
 */
export async function crossCertify(
  current: CertificateAuthority,
  next: CertificateAuthority,
): Promise<string> {
  const nextKeyId = next.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: current.cert.subjectName,
    issuer: next.cert.subjectName,
    notBefore: current.cert.notBefore,
    notAfter: new Date(Math.min(current.notAfter.getTime(), next.notAfter.getTime())),
    publicKey: current.cert.publicKey,
    signingKey: next.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(current.cert.publicKey),
      nextKeyId
        ? new x509.AuthorityKeyIdentifierExtension(nextKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(next.cert.publicKey),
    ],
  });
  return encodePem(cert.rawData, 'CERTIFICATE');
}

/**
 * The CA set a running master uses, replaced whole by `diane ca rotate` and `diane ca finish`.
 * Services read it on every use, so a rollover applies to the next certificate they issue.
 */
export class SlaveCas {
  constructor(private set: CaSet) {}

  get(): CaSet {
    return this.set;
  }

  replace(set: CaSet): void {
    this.set = set;
  }

  issuing(): CertificateAuthority {
    return issuingCa(this.set);
  }

  trusted(): CertificateAuthority[] {
    return trustedCas(this.set);
  }
}

/** What a service that signs slave certificates needs: the CA to sign with right now. */
export interface IssuingCa {
  issuing(): CertificateAuthority;
}
