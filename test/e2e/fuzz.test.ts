import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/home.js';

/**
 * The short mode of `npm run fuzz`: a few hundred generated inputs per surface against a real
 * master (config parsing, pairing endpoint, /mcp, the slave link), with a fixed seed so that a
 * failure here can be replayed with `node fuzz/fuzz.mjs --seed 20261129 --inputs 400`.
 */
describe('fuzzing, short mode', () => {
  it('crashes nothing, hangs nothing, and leaves the master healthy', () => {
    const run = spawnSync(
      process.execPath,
      [join(repoRoot, 'fuzz', 'fuzz.mjs'), '--inputs', '400', '--seed', '20261129'],
      {
        cwd: repoRoot,
        encoding: 'utf8',
        timeout: 240_000,
      },
    );
    const report = JSON.parse(run.stdout || '{"figures":[],"failures":["no report"]}');
    expect(report.failures).toEqual([]);
    expect(run.status).toBe(0);
    expect(report.figures.map((f: { surface: string; inputs: number }) => [f.surface, f.inputs])).toEqual([
      ['config', 400],
      ['pair', 400],
      ['mcp', 400],
      ['link', 400],
    ]);
  }, 300_000);
});
