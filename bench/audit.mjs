#!/usr/bin/env node
// The audit trail's own cost, without the noise of a whole call path: how long `record` takes on
// the caller's path, and how much CPU the batched writes cost per row (WAL SQLite, the real
// indexes). Run with `npm run bench:audit` (builds first). It measures; it asserts nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, DEFAULT_AUDIT_SETTINGS } from '../dist/audit/index.js';
import { silentLogger } from '../dist/log.js';
import { openStore } from '../dist/store/index.js';

const N = Number(process.env.BENCH_AUDIT_EVENTS ?? 50_000);
const dir = mkdtempSync(join(tmpdir(), 'diane-bench-audit-'));
const store = openStore(join(dir, 'diane.db'));
const audit = new AuditLog(store, DEFAULT_AUDIT_SETTINGS, silentLogger);
const event = (i) => ({
  agent: 'owner',
  kind: 'tools/call',
  exposedName: 'workstation_filesystem_read_file',
  host: 'workstation',
  server: 'workstation',
  originalName: 'filesystem_read_file',
  durationMs: 1.2,
  outcome: 'ok',
  bytesIn: 30,
  bytesOut: 800,
  callId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
});
let start = process.hrtime.bigint();
for (let i = 0; i < N; i++) audit.record(event(i));
const recordUs = Number(process.hrtime.bigint() - start) / N / 1000;
start = process.hrtime.bigint();
audit.flush();
const writeUs = Number(process.hrtime.bigint() - start) / N / 1000;
audit.close();
store.close();
rmSync(dir, { recursive: true, force: true });
console.log(`audit: ${N} events`);
console.log(`  record (on the call path): ${recordUs.toFixed(2)} µs per event`);
console.log(`  batched write (off it):    ${writeUs.toFixed(2)} µs of CPU per row`);
