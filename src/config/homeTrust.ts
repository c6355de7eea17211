import { realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DianeError, ExitCode } from '../errors.js';
import type { HomePaths } from './paths.js';

/**
 * What the home holds, by what an attacker gains from it. A secret lets its reader impersonate
 * Diane or its agents, so nobody else may read it. A config file decides what Diane runs or
 * whom it trusts, so nobody else may change it. Both must belong to the user running Diane.
 */
export type HomeFileKind = 'secret' | 'config';

export function homeFiles(paths: HomePaths): { path: string; kind: HomeFileKind }[] {
  const secret = (path: string) => ({ path, kind: 'secret' as const });
  const config = (path: string) => ({ path, kind: 'config' as const });
  return [
    secret(paths.token),
    secret(paths.joinToken),
    secret(paths.caKey),
    secret(paths.caNextKey),
    secret(paths.serverKey),
    secret(paths.slaveCredentials),
    // The database holds who is paired and what is revoked; its WAL holds recent writes of it.
    secret(paths.db),
    secret(`${paths.db}-wal`),
    secret(`${paths.db}-shm`),
    // What the master had this slave run, arguments included when recorded.
    secret(paths.slaveAudit),
    secret(`${paths.slaveAudit}-wal`),
    secret(`${paths.slaveAudit}-shm`),
    config(paths.mcpServers),
    config(paths.caCert),
    config(paths.caNextCert),
    config(paths.caCross),
    config(paths.caRetiredCert),
    // Decides whether `diane ca rotate` warns that other masters must import the new CA.
    config(paths.caShared),
    config(paths.serverCert),
    config(paths.socket),
    // `diane slave stop` signals the pid written here.
    config(paths.slavePid),
    config(paths.slaveStatus),
  ];
}

export interface TrustProblem {
  path: string;
  problem: string;
  /** The exact command that fixes it. */
  fix: string;
}

/**
 * Like ssh's StrictModes: Diane runs the commands in `mcp-servers.json` and hands out the
 * bearer token in `agent-token`, so a home someone else can write to is someone else's Diane.
 * Returns every problem at once, so that one run shows the whole fix. A missing home or file
 * is no problem: Diane creates it with the right mode.
 */
export function homeTrustProblems(paths: HomePaths, euid: number): TrustProblem[] {
  const home = existing(paths.home);
  if (!home) return [];
  const problems: TrustProblem[] = [];
  // Both paths: a symlinked home can be swapped from where the link lives, too.
  const parents = new Set([...ancestorsOf(paths.home), ...ancestorsOf(realpathSync(paths.home))]);
  for (const dir of parents) problems.push(...ancestorProblems(dir, euid));
  problems.push(...ownerProblems(paths.home, home, euid));
  if (home.mode & 0o022) {
    problems.push({
      path: paths.home,
      problem: `is writable by ${who(home.mode & 0o022)} (mode ${octal(home.mode)})`,
      fix: `chmod 700 ${quote(paths.home)}`,
    });
  }
  for (const { path, kind } of homeFiles(paths)) {
    const st = existing(path);
    if (!st) continue;
    problems.push(...ownerProblems(path, st, euid));
    const loose = kind === 'secret' ? st.mode & 0o066 : st.mode & 0o022;
    if (!loose) continue;
    const what =
      kind === 'secret' && loose & 0o044
        ? `is a secret readable by ${who(loose & 0o044)}`
        : `is writable by ${who(loose & 0o022)}`;
    problems.push({
      path,
      problem: `${what} (mode ${octal(st.mode)})`,
      fix: kind === 'secret' ? `chmod 600 ${quote(path)}` : `chmod go-w ${quote(path)}`,
    });
  }
  return problems;
}

/**
 * Refuses an untrusted home with every problem and its fix. Skipped where there are no Unix
 * owners and modes to check (Windows).
 */
export function assertHomeTrusted(paths: HomePaths): void {
  const euid = process.geteuid?.();
  if (euid === undefined) return;
  const problems = homeTrustProblems(paths, euid);
  if (problems.length === 0) return;
  const lines = problems.map((p) => `  - ${p.path} ${p.problem}\n    fix: ${p.fix}`);
  throw new DianeError(
    `refusing to use the Diane home ${paths.home}: other users could change what Diane runs or ` +
      `read its secrets (Diane checks its home like ssh's StrictModes).\n${lines.join('\n')}\n` +
      'Then run the command again.',
    ExitCode.config,
    'untrusted-home',
  );
}

/** A home under another user's directory, or under a directory anyone may rename entries in, is theirs. */
function ancestorProblems(dir: string, euid: number): TrustProblem[] {
  const st = existing(dir);
  if (!st) return [];
  const problems: TrustProblem[] = [];
  if (st.uid !== euid && st.uid !== 0) {
    problems.push({
      path: dir,
      problem: `(a parent of the home) belongs to uid ${st.uid}, who can replace the home`,
      fix: `set DIANE_HOME to a directory of your own, e.g. DIANE_HOME=~/.diane`,
    });
  }
  // The sticky bit (as on /tmp) stops others from renaming or deleting what is not theirs.
  if (st.mode & 0o022 && !(st.mode & 0o1000)) {
    problems.push({
      path: dir,
      problem: `(a parent of the home) is writable by ${who(st.mode & 0o022)} without the sticky bit (mode ${octal(st.mode)})`,
      fix: `chmod go-w ${quote(dir)}`,
    });
  }
  return problems;
}

function ownerProblems(path: string, st: Stats, euid: number): TrustProblem[] {
  if (st.uid === euid) return [];
  return [
    {
      path,
      problem: `belongs to uid ${st.uid}, not to uid ${euid} who runs Diane; someone else may have put it there`,
      fix: `check it, then: ${euid === 0 ? '' : 'sudo '}chown ${euid} ${quote(path)}   (or remove it)`,
    },
  ];
}

function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  let dir = dirname(resolve(path));
  for (;;) {
    out.push(dir);
    const parent = dirname(dir);
    if (parent === dir) return out;
    dir = parent;
  }
}

function existing(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DianeError(`cannot check ${path}: ${(err as Error).message}`, ExitCode.config);
  }
}

function who(bits: number): string {
  const group = (bits & 0o070) !== 0;
  const others = (bits & 0o007) !== 0;
  return group && others ? 'group and others' : group ? 'its group' : 'others';
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** Single quotes for a shell, so that a path with spaces pastes as one word. */
function quote(path: string): string {
  return /^[A-Za-z0-9_./~+-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
