import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, Option } from 'commander';
import { type AuditEventJson, auditEventToJson } from '../audit/index.js';
import { assertHomeTrusted } from '../config/homeTrust.js';
import { homePaths } from '../config/paths.js';
import { DianeError, ExitCode } from '../errors.js';
import { type AuditQuery, openSlaveAuditStore } from '../store/index.js';
import {
  type AuditColumn,
  type AuditCommandOptions,
  AuditPrinter,
  auditColumns,
  auditFilterOptions,
  stopSignal,
} from './auditCommand.js';
import { type GlobalOptions, homeFrom } from './common.js';

const POLL_INTERVAL_MS = 500;
const POLL_PAGE = 1000;

/** A row of the slave's trail in `--json` output: the agent is only what the master said. */
export type SlaveAuditEventJson = Omit<AuditEventJson, 'agent' | 'host'> & { master_agent: string | null };

function toSlaveJson(e: AuditEventJson): SlaveAuditEventJson {
  const { id, at, agent, host: _host, ...rest } = e;
  return { id, at, master_agent: agent, ...rest };
}

function slaveColumns(): AuditColumn<AuditEventJson>[] {
  return auditColumns()
    .filter((c) => c.header !== 'HOST')
    .map((c) => (c.header === 'AGENT' ? { ...c, header: 'MASTER AGENT' } : c));
}

/**
 * `diane slave audit`: this machine's own record of what its master had it run, read straight
 * from `slave-audit.db` (read-only), so that the owner can check it without the master. The
 * slave has no admin socket: `--follow` polls the file.
 */
export function registerSlaveAuditCommand(slave: Command): void {
  const audit = slave
    .command('audit')
    .description("what the master had this machine run, from this slave's own record (no master needed)")
    .addOption(
      new Option('--master-agent <name>', 'only calls the master said were made by this agent (unverified)'),
    );
  for (const option of auditFilterOptions()) audit.addOption(option);
  audit.action(async (opts: AuditCommandOptions & { masterAgent?: string }, cmd: Command) => {
    const paths = homePaths(homeFrom(cmd.optsWithGlobals<GlobalOptions>()));
    assertHomeTrusted(paths);
    if (!existsSync(paths.slaveAudit)) {
      throw new DianeError(
        `this home has no slave audit yet (${paths.slaveAudit}); \`diane slave start\` creates it`,
        ExitCode.failure,
        'no-audit',
      );
    }
    const filter: AuditQuery = {
      ...(opts.masterAgent === undefined ? {} : { agent: opts.masterAgent }),
      ...(opts.outcome === undefined ? {} : { outcome: opts.outcome }),
      ...(opts.kind === undefined ? {} : { kind: opts.kind }),
      ...(opts.since === undefined ? {} : { since: opts.since }),
      ...(opts.until === undefined ? {} : { until: opts.until }),
    };
    const store = openSlaveAuditStore(paths.slaveAudit, { readOnly: true });
    try {
      const printer = new AuditPrinter(slaveColumns(), Boolean(opts.json), toSlaveJson);
      let lastId = await store.auditEvents.maxId();
      const rows = await store.auditEvents.query({ ...filter, newest: true, limit: opts.limit + 1 });
      const more = rows.length > opts.limit;
      const first = (more ? rows.slice(1) : rows).map(auditEventToJson);
      if (first.length > 0 || (opts.follow && !opts.json)) printer.print(first);
      else if (!opts.json) process.stdout.write('No audit events.\n');
      if (more && !opts.json) {
        process.stderr.write('(older events not shown: raise --limit or use --since)\n');
      }
      if (!opts.follow) return;
      process.stderr.write('Following the slave audit (Ctrl-C to stop)...\n');
      const signal = stopSignal();
      while (!signal.aborted) {
        try {
          await sleep(POLL_INTERVAL_MS, undefined, { signal });
        } catch {
          break;
        }
        for (;;) {
          // Read the newest id first: every row up to it is covered by a query that comes back
          // short, so the next round need not look at the rows the filters left out again.
          const newest = await store.auditEvents.maxId();
          const page = await store.auditEvents.query({ ...filter, afterId: lastId, limit: POLL_PAGE });
          printer.print(page.map(auditEventToJson));
          if (page.length === POLL_PAGE) {
            lastId = page.at(-1)!.id;
            continue;
          }
          lastId = Math.max(newest, page.at(-1)?.id ?? 0, lastId);
          break;
        }
      }
    } finally {
      await store.close();
    }
  });
}
