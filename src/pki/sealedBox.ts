import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { z } from 'zod';
import { DianeError, ExitCode } from '../errors.js';

/**
 * A secret sealed under a passphrase: scrypt derives a 256-bit key from the passphrase and a
 * random salt, AES-256-GCM encrypts and authenticates. Every header field (format, version, KDF
 * parameters, salt, IV, the public label) is bound to the ciphertext as additional data, so a
 * file whose parameters were lowered or whose label was swapped fails like a wrong passphrase.
 */
export const SEALED_BOX_FORMAT = 'diane-sealed' as const;
export const SEALED_BOX_VERSION = 1 as const;

export interface ScryptParameters {
  /** CPU/memory cost, a power of two. */
  n: number;
  r: number;
  p: number;
}

export const SEALED_BOX_DEFAULTS = {
  /** 2^17 with r = 8: 128 MiB and a fraction of a second per try, OWASP's scrypt floor. */
  kdf: { n: 2 ** 17, r: 8, p: 1 } satisfies ScryptParameters,
  /** What an opened file may ask for: never weaker than this, never so costly it stalls a host. */
  minN: 2 ** 15,
  maxN: 2 ** 20,
  saltBytes: 16,
  ivBytes: 12,
  /** A sealed file larger than this is not one of ours. */
  maxFileBytes: 1024 * 1024,
  minPassphraseLength: 12,
  maxPassphraseLength: 1024,
} as const;

const base64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');

const EnvelopeSchema = z
  .object({
    format: z.literal(SEALED_BOX_FORMAT),
    version: z.literal(SEALED_BOX_VERSION),
    /** Readable without the passphrase: what the file holds (a CA fingerprint, for example). */
    label: z.string().max(256),
    created_at: z.string().max(64),
    kdf: z
      .object({
        name: z.literal('scrypt'),
        n: z
          .number()
          .int()
          .min(SEALED_BOX_DEFAULTS.minN)
          .max(SEALED_BOX_DEFAULTS.maxN)
          .refine((n) => (n & (n - 1)) === 0, 'n must be a power of two'),
        r: z.number().int().min(8).max(32),
        p: z.number().int().min(1).max(16),
        salt: base64(64),
      })
      .strict(),
    cipher: z
      .object({
        name: z.literal('aes-256-gcm'),
        iv: base64(32),
        tag: base64(32),
      })
      .strict(),
    ciphertext: base64(SEALED_BOX_DEFAULTS.maxFileBytes),
  })
  .strict();

export type SealedEnvelope = z.infer<typeof EnvelopeSchema>;

/** The file cannot be opened: wrong passphrase, altered, truncated, or not a sealed file. */
export class SealedBoxError extends DianeError {
  constructor(message: string) {
    super(message, ExitCode.pki, 'SEALED_BOX');
    this.name = 'SealedBoxError';
  }
}

export interface SealOptions {
  label: string;
  kdf?: ScryptParameters;
  now?: Date;
}

/** Seals `plaintext` and returns the envelope as JSON text (one object, newline-terminated). */
export async function seal(plaintext: string, passphrase: string, options: SealOptions): Promise<string> {
  checkPassphrase(passphrase, SEALED_BOX_DEFAULTS.minPassphraseLength);
  const params = options.kdf ?? SEALED_BOX_DEFAULTS.kdf;
  const salt = randomBytes(SEALED_BOX_DEFAULTS.saltBytes);
  const iv = randomBytes(SEALED_BOX_DEFAULTS.ivBytes);
  const header = {
    format: SEALED_BOX_FORMAT,
    version: SEALED_BOX_VERSION,
    label: options.label,
    created_at: (options.now ?? new Date()).toISOString(),
    kdf: { name: 'scrypt' as const, ...params, salt: salt.toString('base64') },
  };
  const key = await deriveKey(passphrase, salt, params);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(additionalData(header, iv.toString('base64')));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const envelope: SealedEnvelope = {
    ...header,
    cipher: { name: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64') },
    ciphertext: ciphertext.toString('base64'),
  };
  // Checked like a file read back, so that a file this function writes always opens.
  EnvelopeSchema.parse(envelope);
  key.fill(0);
  return `${JSON.stringify(envelope, null, 2)}\n`;
}

/** Reads the envelope without the passphrase (its label and date); throws on a malformed file. */
export function readEnvelope(text: string): SealedEnvelope {
  if (Buffer.byteLength(text, 'utf8') > SEALED_BOX_DEFAULTS.maxFileBytes) {
    throw new SealedBoxError(
      `the file is larger than ${SEALED_BOX_DEFAULTS.maxFileBytes} bytes; not a Diane bundle`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SealedBoxError('the file is not valid JSON (truncated or not a Diane bundle)');
  }
  const parsed = EnvelopeSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SealedBoxError(
      `the file is not a Diane bundle this version can read (${issue?.path.join('.') || 'top'}: ${issue?.message})`,
    );
  }
  return parsed.data;
}

/** Opens a sealed file; a wrong passphrase and any change to the file give the same error. */
export async function open(
  text: string,
  passphrase: string,
): Promise<{ envelope: SealedEnvelope; plaintext: string }> {
  checkPassphrase(passphrase, 1);
  const envelope = readEnvelope(text);
  const { kdf, cipher: c } = envelope;
  const iv = Buffer.from(c.iv, 'base64');
  const tag = Buffer.from(c.tag, 'base64');
  if (iv.length !== SEALED_BOX_DEFAULTS.ivBytes || tag.length !== 16) {
    throw new SealedBoxError('the file is damaged (bad IV or tag length)');
  }
  const key = await deriveKey(passphrase, Buffer.from(kdf.salt, 'base64'), kdf);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(additionalData(envelope, c.iv));
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([
      decipher.update(Buffer.from(envelope.ciphertext, 'base64')),
      decipher.final(),
    ]);
    return { envelope, plaintext: plain.toString('utf8') };
  } catch {
    throw new SealedBoxError(
      'wrong passphrase, or the file was altered (authentication failed); nothing was written',
    );
  } finally {
    key.fill(0);
  }
}

/** The header fields in a fixed order: JSON key order of the file itself does not matter. */
function additionalData(
  header: Pick<SealedEnvelope, 'format' | 'version' | 'label' | 'created_at' | 'kdf'>,
  iv: string,
): Buffer {
  const { kdf } = header;
  return Buffer.from(
    JSON.stringify([
      header.format,
      header.version,
      header.label,
      header.created_at,
      kdf.n,
      kdf.r,
      kdf.p,
      kdf.salt,
      iv,
    ]),
    'utf8',
  );
}

function deriveKey(passphrase: string, salt: Buffer, params: ScryptParameters): Promise<Buffer> {
  // scrypt needs 128 * n * r bytes; Node's default cap (32 MiB) is below the default cost.
  const maxmem = 256 * params.n * params.r;
  return new Promise((resolve, reject) =>
    scrypt(
      passphrase.normalize('NFC'),
      salt,
      32,
      { N: params.n, r: params.r, p: params.p, maxmem },
      (err, key) =>
        err ? reject(new SealedBoxError(`cannot derive the key: ${err.message}`)) : resolve(key),
    ),
  );
}

function checkPassphrase(passphrase: string, minLength: number): void {
  if (passphrase.length < minLength) {
    throw new DianeError(
      minLength > 1
        ? `the passphrase must be at least ${minLength} characters long`
        : 'an empty passphrase cannot open a bundle',
      ExitCode.usage,
    );
  }
  if (passphrase.length > SEALED_BOX_DEFAULTS.maxPassphraseLength) {
    throw new DianeError(
      `the passphrase is longer than ${SEALED_BOX_DEFAULTS.maxPassphraseLength} characters`,
      ExitCode.usage,
    );
  }
}
