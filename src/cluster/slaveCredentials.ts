import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from '../config/files.js';
import { DianeError, ExitCode } from '../errors.js';

const Pem = (label: string) =>
  z.string().refine((s) => s.includes(`-----BEGIN ${label}-----`), { message: `expected a PEM ${label}` });

/** More masters than this is a mistake in the list, not a cluster. */
export const MAX_MASTERS = 16;

export const SlaveCredentialsSchema = z.object({
  host_id: z.string().min(1),
  /** The master this host paired with (https origin). */
  master_url: z.string().url(),
  /** Its link URL; kept so that an older Diane can still read the file. */
  ws_url: z.string().url(),
  /**
   * Every master the slave may link to (https origins), in dial order; files written before
   * several masters existed have none, and mean `[master_url]` dialed at `ws_url`.
   */
  masters: z.array(z.string().url().max(2048)).min(1).max(MAX_MASTERS).optional(),
  client_cert: Pem('CERTIFICATE'),
  client_key: Pem('PRIVATE KEY'),
  ca_cert: Pem('CERTIFICATE'),
  issued_at: z.string(),
  expires_at: z.string(),
});

export type SlaveCredentials = z.infer<typeof SlaveCredentialsSchema>;

/** The slave's identity after pairing; holds its private key, so 0600 and written atomically. */
export function saveSlaveCredentials(path: string, creds: SlaveCredentials): void {
  writeFileAtomic(path, `${JSON.stringify(SlaveCredentialsSchema.parse(creds), null, 2)}\n`, 0o600);
}

export function loadSlaveCredentials(path: string): SlaveCredentials {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DianeError(
        `no slave credentials at ${path}: pair first with \`diane slave pair --master=https://HOST:8765 --host-id=NAME\``,
        ExitCode.config,
      );
    }
    throw new DianeError(`cannot read ${path}: ${(err as Error).message}`, ExitCode.config);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DianeError(`${path} is not valid JSON; pair again to replace it`, ExitCode.config);
  }
  const parsed = SlaveCredentialsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DianeError(
      `${path}: ${issue?.path.join('.')}: ${issue?.message}; pair again to replace it`,
      ExitCode.config,
    );
  }
  return parsed.data;
}
