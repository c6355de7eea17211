import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { DianeError, ExitCode } from '../errors.js';
import { assertHomeTrusted } from './homeTrust.js';

/**
 * `DIANE_HOME` wins so that every instance (tests included) can be kept apart; a leading `~/` is
 * expanded because service managers pass the variable without a shell to expand it.
 */
export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  const userHome = env.HOME || homedir();
  const configured = env.DIANE_HOME;
  if (!configured) return join(userHome, '.diane');
  if (configured === '~') return userHome;
  if (configured.startsWith('~/')) return join(userHome, configured.slice(2));
  return resolve(configured);
}

export interface HomePaths {
  readonly home: string;
  readonly db: string;
  readonly socket: string;
  readonly caCert: string;
  readonly caKey: string;
  /** The next CA during a rollover (`diane ca rotate` until `diane ca finish`). */
  readonly caNextCert: string;
  readonly caNextKey: string;
  /** During a rollover: the current CA's key certified by the next CA (for the pairing pin). */
  readonly caCross: string;
  /** The CA retired by the last finished rollover; its key is deleted. */
  readonly caRetiredCert: string;
  /**
   * Written by `diane ca export` and `diane ca import`: this CA is shared with other masters, so a
   * rollover here must be exported to them again (`diane ca rotate` warns).
   */
  readonly caShared: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly slaveCredentials: string;
  readonly mcpServers: string;
  readonly token: string;
  /** The pairing join token, when the master requires one (pairing/joinToken.ts). */
  readonly joinToken: string;
  readonly slavePid: string;
  readonly slaveStatus: string;
  /** The slave's own audit trail of what its master had it run. */
  readonly slaveAudit: string;
}

export function homePaths(home: string): HomePaths {
  const root = resolve(home);
  return {
    home: root,
    db: join(root, 'diane.db'),
    socket: join(root, 'diane.sock'),
    caCert: join(root, 'slave-ca-cert.pem'),
    caKey: join(root, 'slave-ca-key.pem'),
    caNextCert: join(root, 'slave-ca-next-cert.pem'),
    caNextKey: join(root, 'slave-ca-next-key.pem'),
    caCross: join(root, 'slave-ca-cross-cert.pem'),
    caRetiredCert: join(root, 'slave-ca-retired-cert.pem'),
    caShared: join(root, 'ca-shared.json'),
    serverCert: join(root, 'server-cert.pem'),
    serverKey: join(root, 'server-key.pem'),
    slaveCredentials: join(root, 'slave-credentials.json'),
    mcpServers: join(root, 'mcp-servers.json'),
    token: join(root, 'agent-token'),
    joinToken: join(root, 'join-token'),
    slavePid: join(root, 'slave.pid'),
    slaveStatus: join(root, 'slave-status.json'),
    slaveAudit: join(root, 'slave-audit.db'),
  };
}

/**
 * Creates the home directory if missing and returns whether it did, then refuses a home others
 * could tamper with (see homeTrust.ts). The explicit chmod is needed because mkdir's mode is
 * filtered through the umask. An existing directory keeps its mode unless others can write to
 * it: a 0755 home may be the user's choice, and a bad mode is refused, never silently changed.
 */
export function ensureHome(home: string): boolean {
  const root = resolve(home);
  let created: string | undefined;
  try {
    created = mkdirSync(root, { recursive: true, mode: 0o700 });
    if (created !== undefined) chmodSync(root, 0o700);
  } catch (err) {
    throw new DianeError(
      `cannot create the Diane home directory ${root}: ${(err as Error).message}`,
      ExitCode.config,
    );
  }
  if (!statSync(root).isDirectory()) {
    throw new DianeError(`${root} exists but is not a directory (set DIANE_HOME elsewhere)`, ExitCode.config);
  }
  assertHomeTrusted(homePaths(root));
  return created !== undefined;
}
