import { readdirSync, readFileSync } from 'node:fs';

interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses. */
function readStat(pid: number | string): ProcStat | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = raw.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = raw
    .slice(close + 2)
    .trim()
    .split(' ');
  const state = fields[0] ?? '';
  const ppid = Number(fields[1]);
  return { pid: Number(pid), ppid, state };
}

/** All living descendants of `pid` (children, grandchildren, ...), from /proc. Linux only. */
export function descendantPids(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(name);
    if (!stat || stat.state === 'Z' || stat.state === 'X') continue;
    const list = children.get(stat.ppid);
    if (list) list.push(stat.pid);
    else children.set(stat.ppid, [stat.pid]);
  }
  const result: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    for (const child of children.get(next) ?? []) {
      if (result.includes(child)) continue;
      result.push(child);
      queue.push(child);
    }
  }
  return result;
}

/** True while `pid` exists and is not a zombie (a zombie has exited, it only awaits reaping). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = readStat(pid);
  // No stat: not Linux (trust kill), or the process vanished between the two looks.
  if (stat === undefined) return process.platform !== 'linux';
  return stat.state !== 'Z' && stat.state !== 'X';
}

/** The lines of a FIXTURE_EVENTS file ([] while it does not exist). */
export function readEvents(file: string): string[] {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return raw.split('\n').filter((line) => line.length > 0);
}

/** The pids of every `start <pid> ...` line of a FIXTURE_EVENTS file, in order. */
export function pidsFromEvents(file: string): number[] {
  const pids: number[] = [];
  for (const line of readEvents(file)) {
    const match = /^start (\d+)\b/.exec(line);
    if (match) pids.push(Number(match[1]));
  }
  return pids;
}
