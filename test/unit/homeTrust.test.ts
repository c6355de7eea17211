import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertHomeTrusted, homeTrustProblems } from '../../src/config/homeTrust.js';
import { ensureHome, homePaths } from '../../src/config/paths.js';
import { loadOrCreateAgentToken } from '../../src/daemon/agentToken.js';
import { DianeError, ExitCode } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';

const euid = process.geteuid!();
/** nobody: "someone else" for files planted in the home. */
const OTHER_UID = 65534;
const asRoot = euid === 0;

let base: string;
let home: string;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'diane-trust-'));
  chmodSync(base, 0o700);
  home = join(base, 'home');
  mkdirSync(home, { mode: 0o700 });
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

const problems = () => homeTrustProblems(homePaths(home), euid);

function refusal(): DianeError {
  try {
    assertHomeTrusted(homePaths(home));
  } catch (err) {
    return err as DianeError;
  }
  throw new Error('the home was trusted');
}

describe('home trust (StrictModes)', () => {
  it('trusts a fresh home and one Diane filled itself', () => {
    expect(problems()).toEqual([]);
    loadOrCreateAgentToken(homePaths(home).token);
    openStore(homePaths(home).db).close();
    writeFileSync(homePaths(home).mcpServers, '{"mcpServers":{}}\n', { mode: 0o644 });
    expect(problems()).toEqual([]);
  });

  it('trusts a missing home (it is created 0700)', () => {
    rmSync(home, { recursive: true });
    expect(problems()).toEqual([]);
    ensureHome(home);
    expect(statSync(home).mode & 0o777).toBe(0o700);
  });

  it('refuses a world-writable home, with the chmod that fixes it', () => {
    chmodSync(home, 0o777);
    const err = refusal();
    expect(err).toBeInstanceOf(DianeError);
    expect(err.exitCode).toBe(ExitCode.config);
    expect(err.message).toContain(`fix: chmod 700 ${home}`);
    expect(() => ensureHome(home)).toThrow(/writable by group and others/);
    // Refused, never silently changed.
    expect(statSync(home).mode & 0o777).toBe(0o777);
  });

  it('refuses a group-writable home', () => {
    chmodSync(home, 0o770);
    expect(problems().map((p) => p.fix)).toEqual([`chmod 700 ${home}`]);
  });

  it('accepts a 0755 home: others may look, not change', () => {
    chmodSync(home, 0o755);
    expect(problems()).toEqual([]);
  });

  it('refuses a group-writable mcp-servers.json', () => {
    const file = homePaths(home).mcpServers;
    writeFileSync(file, '{"mcpServers":{}}\n');
    chmodSync(file, 0o664);
    const found = problems();
    expect(found).toHaveLength(1);
    expect(found[0]!.problem).toContain('writable by its group');
    expect(found[0]!.fix).toBe(`chmod go-w ${file}`);
  });

  it('refuses a 0644 agent-token and does not use it', () => {
    const file = homePaths(home).token;
    writeFileSync(file, `${'a'.repeat(43)}\n`, { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(problems().map((p) => p.fix)).toEqual([`chmod 600 ${file}`]);
    expect(refusal().message).toContain('is a secret readable by group and others');
    expect(() => loadOrCreateAgentToken(file)).toThrow(/readable or writable by others/);
  });

  it.each([
    'join-token',
    'slave-ca-key.pem',
    'server-key.pem',
    'slave-credentials.json',
    'diane.db',
    'diane.db-wal',
    'diane.db-shm',
  ])('refuses a secret (%s) readable by others', (name) => {
    const file = join(home, name);
    writeFileSync(file, 'x');
    chmodSync(file, 0o604);
    expect(problems()).toEqual([expect.objectContaining({ path: file, fix: `chmod 600 ${file}` })]);
  });

  // Worker threads cannot set the umask (Stryker runs the unit tests in threads); `npm test` runs
  // this in forked processes, and test/e2e/homeTrust.test.ts checks the same in a real master.
  it.runIf(isMainThread)(
    'creates the database and its -wal/-shm files 0600 even under a permissive umask',
    () => {
      const previous = process.umask(0o000);
      try {
        const store = openStore(homePaths(home).db);
        store.db.exec('CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);');
        for (const suffix of ['', '-wal', '-shm'])
          expect(statSync(`${homePaths(home).db}${suffix}`).mode & 0o777).toBe(0o600);
        store.close();
      } finally {
        process.umask(previous);
      }
      expect(problems()).toEqual([]);
    },
  );

  it.runIf(asRoot)('refuses a file owned by someone else, even with a strict mode', () => {
    const file = homePaths(home).mcpServers;
    writeFileSync(file, '{"mcpServers":{}}\n', { mode: 0o600 });
    chownSync(file, OTHER_UID, OTHER_UID);
    const found = problems();
    expect(found).toHaveLength(1);
    expect(found[0]!.problem).toContain(`belongs to uid ${OTHER_UID}`);
    expect(found[0]!.fix).toContain(`chown ${euid} ${file}`);
  });

  it.runIf(asRoot)('refuses an agent-token written by someone else and does not use it', () => {
    const file = homePaths(home).token;
    writeFileSync(file, `${'b'.repeat(43)}\n`, { mode: 0o600 });
    chownSync(file, OTHER_UID, OTHER_UID);
    expect(problems()).toHaveLength(1);
    expect(() => loadOrCreateAgentToken(file)).toThrow(/belongs to uid 65534/);
  });

  it.runIf(asRoot)('refuses a home owned by someone else', () => {
    chownSync(home, OTHER_UID, OTHER_UID);
    expect(problems().map((p) => p.path)).toEqual([home]);
  });

  it.runIf(asRoot)('refuses a home under a directory of another user', () => {
    chownSync(base, OTHER_UID, OTHER_UID);
    expect(problems()).toEqual([expect.objectContaining({ path: base })]);
  });

  it('refuses a home under a directory anyone may rename entries in, but not under /tmp-like sticky ones', () => {
    chmodSync(base, 0o777);
    expect(problems()).toEqual([expect.objectContaining({ path: base, fix: `chmod go-w ${base}` })]);
    chmodSync(base, 0o1777);
    expect(problems()).toEqual([]);
  });

  it('lists every problem at once', () => {
    chmodSync(home, 0o777);
    writeFileSync(homePaths(home).token, 'x', { mode: 0o644 });
    chmodSync(homePaths(home).token, 0o644);
    writeFileSync(homePaths(home).mcpServers, '{}', { mode: 0o666 });
    chmodSync(homePaths(home).mcpServers, 0o666);
    expect(problems()).toHaveLength(3);
  });
});
