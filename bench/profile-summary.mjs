#!/usr/bin/env node
// Summarises V8 .cpuprofile files (from `node --cpu-prof`, e.g. `BENCH_CPU_PROF=/tmp/prof npm
// run bench`): self time summed by function + script, and by package (the node_modules package,
// `src` for Diane's own dist/ code, `node:` for Node internals).
//
//   node bench/profile-summary.mjs <file.cpuprofile>... [--top N] [--timeline]
//                                  [--from S] [--to S] [--calls N] [--inclusive REGEX]...
//
// --timeline prints the busy share of every second, to find the measured window; --from/--to keep
// the samples between those seconds after the profile's start (startup and shutdown out);
// --calls N adds each figure as microseconds per call. --inclusive REGEX (repeatable) adds the
// time of every sample with a frame whose "function  script" matches REGEX anywhere on its stack:
// what a piece of code costs with all it calls (e.g. `--inclusive 'dist/metrics/'`).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
let top = 30;
let fromS = 0;
let toS = Number.POSITIVE_INFINITY;
let calls;
let timeline = false;
const files = [];
const inclusive = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else if (args[i] === '--from') fromS = Number(args[++i]);
  else if (args[i] === '--to') toS = Number(args[++i]);
  else if (args[i] === '--calls') calls = Number(args[++i]);
  else if (args[i] === '--timeline') timeline = true;
  else if (args[i] === '--inclusive') inclusive.push(new RegExp(args[++i]));
  else files.push(args[i]);
}
if (files.length === 0) {
  process.stderr.write('usage: node bench/profile-summary.mjs <file.cpuprofile>... [--top N]\n');
  process.exit(2);
}

function packageOf(url) {
  if (!url) return '(native/vm)';
  if (url.startsWith('node:')) return 'node: internals';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.includes('/dist/')) return 'diane dist/';
  return url.replace(/^file:\/\//, '');
}

function shortUrl(url) {
  if (!url) return '';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

function pct(part, whole) {
  return `${((100 * part) / whole).toFixed(1).padStart(5)}%`;
}

/** Milliseconds, and with --calls also microseconds per call. */
function amount(us) {
  const ms = `${(us / 1000).toFixed(0).padStart(7)} ms`;
  return calls ? `${ms} ${(us / calls).toFixed(1).padStart(7)} µs/call` : ms;
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const idleIds = new Set(
    profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id),
  );
  const busyPerSecond = [];
  // timeDeltas[i] is the time before samples[i]; attribute it to that sample's node.
  let at = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    const second = Math.floor(at / 1e6);
    if (!idleIds.has(id)) busyPerSecond[second] = (busyPerSecond[second] ?? 0) + delta;
    if (at < fromS * 1e6 || at > toS * 1e6) continue;
    self.set(id, (self.get(id) ?? 0) + delta);
  }
  if (timeline) {
    process.stdout.write(`\n${file}: busy share per second\n`);
    for (let sec = 0; sec < busyPerSecond.length; sec++) {
      process.stdout.write(`  ${String(sec).padStart(4)} s ${pct(busyPerSecond[sec] ?? 0, 1e6)}\n`);
    }
  }
  const byFunction = new Map();
  const byPackage = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const { callFrame } = byId.get(id);
    total += us;
    if (callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const key = `${callFrame.functionName || '(anonymous)'}  ${shortUrl(callFrame.url)}${callFrame.url ? `:${callFrame.lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const pkg = packageOf(callFrame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const busy = total - idle;
  process.stdout.write(
    `\n${file}\n  sampled ${(total / 1e6).toFixed(2)} s, busy ${amount(busy).trim()} (idle ${pct(idle, total)})\n`,
  );
  process.stdout.write('\n  self time by package (share of busy time)\n');
  for (const [pkg, us] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    process.stdout.write(`  ${pct(us, busy)}  ${amount(us)}  ${pkg}\n`);
  }
  process.stdout.write(`\n  top ${top} functions by self time (share of busy time)\n`);
  for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`  ${pct(us, busy)}  ${amount(us)}  ${key}\n`);
  }
  if (inclusive.length === 0) continue;
  const parentOf = new Map();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  const frameKey = (n) => `${n.callFrame.functionName || '(anonymous)'}  ${shortUrl(n.callFrame.url)}`;
  process.stdout.write('\n  inclusive time (share of busy time)\n');
  for (const pattern of inclusive) {
    let us = 0;
    for (const [id, t] of self) {
      for (let at = id; at !== undefined; at = parentOf.get(at)) {
        if (pattern.test(frameKey(byId.get(at)))) {
          us += t;
          break;
        }
      }
    }
    process.stdout.write(`  ${pct(us, busy)}  ${amount(us)}  ${pattern.source}\n`);
  }
}
