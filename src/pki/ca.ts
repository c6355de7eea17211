import { fileExists } from '../config/files.js';
import type { CaFiles, CertificateAuthority } from './authority.js';
import { type CreateCaOptions, createCa } from './createCa.js';
import { PkiError } from './errors.js';
import { readCa } from './readCa.js';

/**
 * Loads the slave CA, or creates it when neither file exists (first start of a master).
 * When only one of the two files is there, something went wrong that a person must look at:
 * a new CA would silently orphan every paired slave.
 */
export async function loadOrCreateCa(options: CreateCaOptions): Promise<CertificateAuthority> {
  const hasCert = fileExists(options.certPath);
  const hasKey = fileExists(options.keyPath);
  if (!hasCert && !hasKey) return createCa(options);
  return loadCa(options);
}

/** Loads the slave CA; never creates one. */
export async function loadCa(files: CaFiles): Promise<CertificateAuthority> {
  const { certPath, keyPath } = files;
  const hasCert = fileExists(certPath);
  const hasKey = fileExists(keyPath);
  if (!hasCert && !hasKey) {
    throw new PkiError(
      `No slave CA found (expected ${certPath} and ${keyPath}); run the master once to create it`,
    );
  }
  if (hasCert !== hasKey) {
    const [present, missing] = hasCert ? [certPath, keyPath] : [keyPath, certPath];
    throw new PkiError(
      `The slave CA is incomplete: ${present} exists but ${missing} is missing. ` +
        `Restore ${missing} from a backup. Only if no slave was ever paired with this CA, delete ${present} ` +
        'to have a new CA created (every paired slave would have to pair again).',
    );
  }
  return readCa(files);
}
