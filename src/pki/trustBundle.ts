import { readFileSync, rmSync } from 'node:fs';
import { z } from 'zod';
import { fileExists, writeFileAtomic } from '../config/files.js';
import type { HomePaths } from '../config/paths.js';
import { DianeError, ExitCode } from '../errors.js';
import type { CertificateAuthority } from './authority.js';
import { certKeyFingerprint } from './fingerprint.js';
import { caFromPem } from './readCa.js';
import { open, type ScryptParameters, SealedBoxError, seal } from './sealedBox.js';

/**
 * The secrets every master of one cluster shares, moved between homes as one file sealed under a
 * passphrase (`diane ca export` / `diane ca import`): the slave CA (and, during a rollover, the
 * next CA and the cross certificate), the retired CA's certificate, the owner's agent token and
 * the pairing join token. Never a server certificate or key: each master issues its own from
 * the shared CA, with its own names. Never the database: slaves, revocations and pairing
 * requests are the store's.
 */
const MAX_PEM = 64 * 1024;
const Pem = (label: string) =>
  z
    .string()
    .max(MAX_PEM)
    .refine((s) => s.includes(`-----BEGIN ${label}-----`), { message: `expected a PEM ${label}` });
const Certificate = Pem('CERTIFICATE');
const PrivateKey = Pem('PRIVATE KEY');
/** Both tokens are 256 random bits in base64url (config/secretToken.ts). */
const Token = z.string().regex(/^[A-Za-z0-9_-]{32,128}$/, 'expected a token');

export const TRUST_BUNDLE_KIND = 'diane-master-trust';

const BundleSchema = z
  .object({
    kind: z.literal(TRUST_BUNDLE_KIND),
    ca: z.object({ cert: Certificate, key: PrivateKey }).strict(),
    next: z.object({ cert: Certificate, key: PrivateKey, cross: Certificate }).strict().optional(),
    retired_cert: Certificate.optional(),
    agent_token: Token.optional(),
    join_token: Token.optional(),
  })
  .strict();

export type TrustBundle = z.infer<typeof BundleSchema>;

/** How `ca-shared.json` marks a home whose CA other masters hold too. */
const SharedMarkerSchema = z.object({
  fingerprint: z.string().max(100),
  how: z.enum(['exported', 'imported']),
  at: z.string().max(64),
});

export type FileChange = 'written' | 'unchanged' | 'removed';

export interface ImportResult {
  fingerprint: string;
  nextFingerprint?: string;
  files: { path: string; change: FileChange }[];
}

export interface ExportResult {
  fingerprint: string;
  nextFingerprint?: string;
  /** Which optional secrets went in. */
  included: string[];
}

/** Reads the home's shared secrets, checks them, and seals them. The caller writes the text. */
export async function exportTrustBundle(
  paths: HomePaths,
  passphrase: string,
  options: { kdf?: ScryptParameters; now?: Date } = {},
): Promise<{ text: string; result: ExportResult }> {
  if (!fileExists(paths.caCert) && !fileExists(paths.caKey)) {
    throw new DianeError(
      `no slave CA in ${paths.home}: start the master once (\`diane serve\`) to create it, then export`,
      ExitCode.pki,
    );
  }
  const read = (path: string) => readFileSync(path, 'utf8');
  const optional = (path: string) => (fileExists(path) ? read(path) : undefined);
  const bundle: TrustBundle = {
    kind: TRUST_BUNDLE_KIND,
    ca: { cert: read(paths.caCert), key: read(paths.caKey) },
  };
  const current = await caFromPem(bundle.ca.cert, bundle.ca.key, { cert: paths.caCert, key: paths.caKey });
  let next: CertificateAuthority | undefined;
  // A half-written rollover is the daemon's to repair (loadCaSet) before anything copies it.
  if (fileExists(paths.caNextCert) && fileExists(paths.caNextKey) && fileExists(paths.caCross)) {
    bundle.next = { cert: read(paths.caNextCert), key: read(paths.caNextKey), cross: read(paths.caCross) };
    next = await caFromPem(bundle.next.cert, bundle.next.key, {
      cert: paths.caNextCert,
      key: paths.caNextKey,
    });
  } else if (fileExists(paths.caNextCert) || fileExists(paths.caNextKey)) {
    throw new DianeError(
      'a CA rollover on this home is incomplete on disk; start the master once (it repairs it), then export',
      ExitCode.pki,
    );
  }
  const retired = optional(paths.caRetiredCert);
  if (retired !== undefined) bundle.retired_cert = retired;
  const agentToken = optional(paths.token)?.trim();
  if (agentToken !== undefined) bundle.agent_token = agentToken;
  const joinToken = optional(paths.joinToken)?.trim();
  if (joinToken !== undefined) bundle.join_token = joinToken;
  const checked = BundleSchema.safeParse(bundle);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new DianeError(`cannot export: ${issue?.path.join('.')}: ${issue?.message}`, ExitCode.pki);
  }
  const text = await seal(JSON.stringify(checked.data), passphrase, {
    label: `Diane CA ${current.fingerprint}`,
    ...options,
  });
  return {
    text,
    result: {
      fingerprint: current.fingerprint,
      ...(next ? { nextFingerprint: next.fingerprint } : {}),
      included: [
        ...(bundle.next ? ['next CA (rollover under way)'] : []),
        ...(bundle.retired_cert ? ['retired CA certificate'] : []),
        ...(bundle.agent_token ? ['agent-token'] : []),
        ...(bundle.join_token ? ['join-token'] : []),
      ],
    },
  };
}

/** Opens a sealed bundle and checks everything in it; writes nothing. */
export async function openTrustBundle(
  text: string,
  passphrase: string,
): Promise<{ bundle: TrustBundle; current: CertificateAuthority; next?: CertificateAuthority }> {
  const { plaintext } = await open(text, passphrase);
  let json: unknown;
  try {
    json = JSON.parse(plaintext);
  } catch {
    throw new SealedBoxError(
      'the bundle opened but does not hold JSON; it was not written by `diane ca export`',
    );
  }
  const parsed = BundleSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SealedBoxError(`the bundle holds no usable CA (${issue?.path.join('.')}: ${issue?.message})`);
  }
  const bundle = parsed.data;
  const current = await caFromPem(bundle.ca.cert, bundle.ca.key, {
    cert: 'in the bundle',
    key: 'in the bundle',
  });
  for (const [what, pem] of [
    ['retired CA certificate', bundle.retired_cert],
    ['cross certificate', bundle.next?.cross],
  ] as const) {
    if (pem === undefined) continue;
    try {
      certKeyFingerprint(pem);
    } catch (err) {
      throw new SealedBoxError(`the bundle's ${what} cannot be parsed: ${(err as Error).message}`);
    }
  }
  const next = bundle.next
    ? await caFromPem(bundle.next.cert, bundle.next.key, { cert: 'in the bundle', key: 'in the bundle' })
    : undefined;
  return { bundle, current, ...(next ? { next } : {}) };
}

/**
 * Writes an opened bundle into a home. A home with no CA takes it; a home whose CA is the
 * bundle's, or the start or the end of a rollover of it, is brought up to date; any other CA is
 * replaced only with `force`, because every
 * slave paired with it would have to pair again. The daemon must not run on this home (the
 * caller checks the admin socket): it holds the CA set in memory and would not see the change.
 */
export function installTrustBundle(
  paths: HomePaths,
  opened: { bundle: TrustBundle; current: CertificateAuthority },
  options: { force: boolean; now?: Date },
): ImportResult {
  const { bundle, current } = opened;
  const homeFp = fingerprintOf(paths.caCert);
  const homeNextFp = fingerprintOf(paths.caNextCert);
  // The bundle continues this home's CA when it is the same CA, or a rollover of it that this
  // home saw start (its next CA) or did not see at all (its CA is the bundle's retired one).
  const retiredFp = bundle.retired_cert ? certKeyFingerprint(bundle.retired_cert) : undefined;
  const continues =
    homeFp === current.fingerprint ||
    homeNextFp === current.fingerprint ||
    (homeFp !== undefined && homeFp === retiredFp);
  if (homeFp !== undefined && !continues && !options.force) {
    throw new DianeError(
      `this home already has another slave CA (${homeFp}); the bundle's is ${current.fingerprint}. ` +
        'Importing would replace it, and every slave paired with this master would have to pair again. ' +
        'If that is what you want, run again with --force.',
      ExitCode.pki,
    );
  }
  if (homeFp === undefined && fileExists(paths.caKey)) {
    throw new DianeError(
      `${paths.caKey} exists without its certificate; look at the home before importing (or use --force)`,
      ExitCode.pki,
    );
  }

  const files: ImportResult['files'] = [];
  const put = (path: string, content: string, mode: number) => {
    const same = fileExists(path) && readFileSync(path, 'utf8') === content;
    if (!same) writeFileAtomic(path, content, mode);
    files.push({ path, change: same ? 'unchanged' : 'written' });
  };
  const remove = (path: string) => {
    if (!fileExists(path)) return;
    rmSync(path, { force: true });
    files.push({ path, change: 'removed' });
  };
  // The order keeps every intermediate state one that loadCaSet reads safely: the next
  // certificate goes before its key (a lone next key is an interrupted rotate, deleted), and is
  // written last (a next certificate without its key would read as an interrupted finish).
  remove(paths.caNextCert);
  if (!bundle.next) {
    remove(paths.caNextKey);
    remove(paths.caCross);
  }
  // Key first, as createCa does: a crash in between is a mismatch the next start reports.
  put(paths.caKey, bundle.ca.key, 0o600);
  put(paths.caCert, bundle.ca.cert, 0o644);
  if (bundle.next) {
    put(paths.caNextKey, bundle.next.key, 0o600);
    put(paths.caCross, bundle.next.cross, 0o644);
    put(paths.caNextCert, bundle.next.cert, 0o644);
  }
  if (bundle.retired_cert) put(paths.caRetiredCert, bundle.retired_cert, 0o644);
  else remove(paths.caRetiredCert);
  if (bundle.agent_token) put(paths.token, `${bundle.agent_token}\n`, 0o600);
  if (bundle.join_token) put(paths.joinToken, `${bundle.join_token}\n`, 0o600);
  markShared(paths, current.fingerprint, 'imported', options.now);
  return {
    fingerprint: current.fingerprint,
    ...(opened.bundle.next ? { nextFingerprint: certKeyFingerprint(opened.bundle.next.cert) } : {}),
    files,
  };
}

/** Records that this home's CA is held by other masters too (see HomePaths.caShared). */
export function markShared(
  paths: HomePaths,
  fingerprint: string,
  how: 'exported' | 'imported',
  now = new Date(),
): void {
  const marker: z.infer<typeof SharedMarkerSchema> = { fingerprint, how, at: now.toISOString() };
  writeFileAtomic(paths.caShared, `${JSON.stringify(marker)}\n`, 0o644);
}

/** Whether this home's CA was exported or imported: then other masters hold it too. */
export function isCaShared(paths: Pick<HomePaths, 'caShared'>): boolean {
  try {
    return SharedMarkerSchema.safeParse(JSON.parse(readFileSync(paths.caShared, 'utf8'))).success;
  } catch {
    return false;
  }
}

function fingerprintOf(certPath: string): string | undefined {
  if (!fileExists(certPath)) return undefined;
  try {
    return certKeyFingerprint(readFileSync(certPath, 'utf8'));
  } catch {
    // Unreadable: certainly not the bundle's CA.
    return 'unreadable';
  }
}
