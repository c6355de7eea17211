import { createHash } from 'node:crypto';
import type { AdminClient } from '../admin/adminClient.js';
import type { PendingRequestJson } from '../admin/pairingRoutes.js';
import type {
  AuditEventJson,
  CallResponse,
  PromptView,
  ReloadResponse,
  ResourceView,
  ServersResponse,
  ToolView,
} from '../admin/types.js';
import { AUDIT_OUTCOMES } from '../audit/auditEvent.js';
import type { Session } from './auth.js';
import { href, html, type SafeHtml } from './html.js';

export type SlaveHealthJson = Awaited<ReturnType<AdminClient['slaveHealth']>>['slaves'][number];
export type AgentJson = Awaited<ReturnType<AdminClient['agents']>>['agents'][number];
type ServerJson = ServersResponse['servers'][number];

export type PageName = 'hosts' | 'pairing' | 'servers' | 'catalogue' | 'activity';

const NAV: [PageName, string, string][] = [
  ['hosts', '/', 'Hosts'],
  ['pairing', '/pairing', 'Pairing'],
  ['servers', '/servers', 'Servers'],
  ['catalogue', '/catalogue', 'Catalogue'],
  ['activity', '/activity', 'Activity'],
];

/** htmx reads its settings here: no inline style element (CSP), no eval, no script tags in swaps. */
const HTMX_CONFIG = '{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}';

export interface LayoutOptions {
  title: string;
  active?: PageName;
  session?: Session;
  body: SafeHtml;
  /** Error pages leave the session's one-shot message for the page it was meant for. */
  keepFlash?: boolean;
}

export function layout(o: LayoutOptions): SafeHtml {
  const flash = o.keepFlash ? undefined : o.session?.flash;
  if (o.session && !o.keepFlash) o.session.flash = undefined;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content="${HTMX_CONFIG}">
<title>${o.title} · Diane console</title>
<link rel="stylesheet" href="/static/console.css">
<script src="/static/htmx.min.js" defer></script>
<script src="/static/console.js" defer></script>
</head>
<body>
<header class="top">
<span class="brand">Diane console</span>
${
  o.session
    ? html`<nav aria-label="Sections">${NAV.map(
        ([name, path, label]) =>
          html`<a href="${path}"${name === o.active ? html` aria-current="page"` : ''}>${label}</a>`,
      )}</nav>
<form method="post" action="/logout" class="inline">${csrfField(o.session)}<button type="submit" class="secondary">Log out</button></form>`
    : ''
}
</header>
<main id="main">
${flash ? html`<div class="flash ${flash.kind}" role="${flash.kind === 'error' ? 'alert' : 'status'}">${flash.text}</div>` : ''}
<h1>${o.title}</h1>
${o.body}
</main>
</body>
</html>
`;
}

export function csrfField(session: Session): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${session.csrf}">`;
}

/** The page of a request without a session, a spent login link or a wrong one. */
export function loginRequiredPage(reason: string): SafeHtml {
  return layout({
    title: 'Log in again',
    body: html`<section class="card"><p>${reason}</p>
<p>Run <code>diane console</code> again on the master and open the new link it prints. Each link logs in once.</p></section>`,
  });
}

export function errorPage(title: string, message: string, session?: Session): SafeHtml {
  return layout({
    title,
    session,
    keepFlash: true,
    body: html`<div class="flash error" role="alert">${message}</div>`,
  });
}

// ---------------------------------------------------------------- formatting

export function ago(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '-';
  return `${duration(now - t)} ago`;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function badge(kind: 'ok' | 'bad' | 'warn' | 'idle', text: string): SafeHtml {
  return html`<span class="badge ${kind}">${text}</span>`;
}

function table(caption: string, headers: string[], rows: SafeHtml[], empty: string): SafeHtml {
  if (rows.length === 0) return html`<p class="muted">${empty}</p>`;
  return html`<div class="scroll" role="region" aria-label="${caption}" tabindex="0"><table>
<caption class="visually-hidden">${caption}</caption>
<thead><tr>${headers.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
<tbody>${rows}</tbody></table></div>`;
}

// ---------------------------------------------------------------- hosts

export function hostStatus(s: SlaveHealthJson): 'connected' | 'disconnected' | 'revoked' {
  return s.enabled ? s.status : 'revoked';
}

function renewal(s: SlaveHealthJson): string {
  if (s.renewal_error) return `failing since ${s.renewal_error_at ?? '?'}: ${s.renewal_error}`;
  return s.renewal_pending ? 'issued, awaiting reconnect' : 'ok';
}

export function hostsFragment(slaves: SlaveHealthJson[], now: number): SafeHtml {
  const rows = slaves.map((s) => {
    const status = hostStatus(s);
    return html`<tr data-host="${s.host_id}">
<th scope="row" class="mono">${s.host_id}</th>
<td>${badge(status === 'connected' ? 'ok' : status === 'revoked' ? 'bad' : 'idle', status)}</td>
<td>${ago(s.last_heartbeat ?? s.last_seen, now)}</td>
<td>${s.status === 'connected' && s.connected_at ? duration(now - Date.parse(s.connected_at)) : '-'}</td>
<td>${s.tool_count}</td>
<td>${s.cert_expires_at}</td>
<td>${renewal(s)}</td>
<td class="mono">${s.remote_address ?? ''}</td>
<td>${
      s.enabled
        ? html`<a class="button danger" id="revoke-${idFor(s.host_id)}" href="${href('/hosts/revoke', { host: s.host_id })}">Revoke<span class="visually-hidden"> ${s.host_id}</span></a>`
        : ''
    }</td>
</tr>`;
  });
  return html`<div id="hosts" hx-get="/fragments/hosts" hx-trigger="refresh, every 3s" hx-swap="outerHTML">${table(
    'Paired hosts',
    [
      'Host',
      'Status',
      'Last heartbeat',
      'Link uptime',
      'Tools',
      'Certificate expires',
      'Renewal',
      'Remote',
      '',
    ],
    rows,
    'No paired hosts yet. Pair one from the Pairing page.',
  )}</div>`;
}

export function hostsPage(session: Session, slaves: SlaveHealthJson[], now: number): SafeHtml {
  return layout({
    title: 'Hosts',
    active: 'hosts',
    session,
    body: html`<section class="card" aria-live="polite">${hostsFragment(slaves, now)}</section>`,
  });
}

export function revokeConfirmPage(session: Session, host: SlaveHealthJson): SafeHtml {
  return layout({
    title: `Revoke ${host.host_id}?`,
    active: 'hosts',
    session,
    body: html`<section class="card">
<p>Revoking <strong class="mono">${host.host_id}</strong> cuts its live link at once, revokes its certificate
(serial <span class="mono">${host.cert_serial}</span>) and removes its tools. It must pair again to come back.</p>
<form method="post" action="/hosts/revoke">
${csrfField(session)}
<input type="hidden" name="host" value="${host.host_id}">
<div class="field"><label for="reason">Reason (kept in the revocation log, optional)</label>
<input type="text" id="reason" name="reason" maxlength="200" autocomplete="off"></div>
<button type="submit" class="danger">Yes, revoke ${host.host_id}</button>
<a class="button secondary" href="/">Cancel</a>
</form></section>`,
  });
}

// ---------------------------------------------------------------- pairing

/** A stable, attribute-safe id for an element about a host (host ids are untrusted text). */
export function idFor(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16);
}

/**
 * What the pending list looks like, minute by minute: the poll answers 204 (htmx leaves the page
 * alone) while this stays the same, so a code being typed is not swapped away under the cursor.
 */
export function pendingVersion(pending: PendingRequestJson[]): string {
  return idFor(
    ...pending.map(
      (p) => `${p.host_id} ${p.key_fingerprint} ${p.requested_at} ${Math.floor(p.age_seconds / 60)}`,
    ),
  );
}

export function pendingFragment(session: Session, pending: PendingRequestJson[], now: number): SafeHtml {
  const version = pendingVersion(pending);
  const rows = pending.map((p) => {
    const id = idFor(p.host_id, p.key_fingerprint);
    return html`<tr data-host="${p.host_id}">
<th scope="row" class="mono">${p.host_id}${p.re_pair ? html` ${badge('warn', 're-pair')}` : ''}</th>
<td class="mono">${p.source_address}</td>
<td class="mono">${p.key_fingerprint}</td>
<td>${duration(p.age_seconds * 1000)}</td>
<td>${duration(Math.max(0, Date.parse(p.expires_at) - now))}</td>
<td><form method="post" action="/pairing/approve" class="inline">
${csrfField(session)}<input type="hidden" name="host" value="${p.host_id}">
<input type="hidden" name="fingerprint" value="${p.key_fingerprint}">
<div><label for="code-${id}">Code shown on ${p.host_id}</label>
<input type="text" id="code-${id}" name="code" hx-preserve="true" required autocomplete="off" inputmode="numeric" placeholder="123-456" size="9" maxlength="16" value=""></div>
<button type="submit">Approve</button></form></td>
<td><form method="post" action="/pairing/deny" class="inline">
${csrfField(session)}<input type="hidden" name="host" value="${p.host_id}">
<input type="hidden" name="fingerprint" value="${p.key_fingerprint}">
<button type="submit" class="secondary">Deny<span class="visually-hidden"> ${p.host_id}</span></button></form></td>
</tr>`;
  });
  return html`<div id="pending" hx-get="${href('/fragments/pending', { v: version })}" hx-trigger="refresh, every 5s" hx-swap="outerHTML">${table(
    'Pending pairing requests',
    ['Host', 'Source', 'Key fingerprint', 'Age', 'Expires in', 'Approve', 'Deny'],
    rows,
    'No pending pairing requests. This list updates by itself.',
  )}</div>`;
}

export function pairingPage(
  session: Session,
  pending: PendingRequestJson[],
  now: number,
  pairCommand: string | undefined,
): SafeHtml {
  return layout({
    title: 'Pairing',
    active: 'pairing',
    session,
    body: html`<section class="card">
<p>Approve a request by typing the code the slave prints; compare its key fingerprint with the slave's too.
Requests that expire drop off by themselves.</p>
<div aria-live="polite">${pendingFragment(session, pending, now)}</div></section>
${pairCommand ? html`<section class="card"><h2>Pair a machine</h2><p>Run on the machine:</p><pre class="result">${pairCommand}</pre></section>` : ''}`,
  });
}

// ---------------------------------------------------------------- servers

function stateBadge(s: ServerJson): SafeHtml {
  const state = String(s.state);
  return badge(
    state === 'connected' ? 'ok' : state === 'backoff' || state === 'offline' ? 'bad' : 'warn',
    state,
  );
}

export function serversPage(session: Session, servers: ServersResponse): SafeHtml {
  const rows = servers.servers.map(
    (
      s,
    ) => html`<tr data-server="${s.name}"><th scope="row" class="mono">${s.name}</th><td>${s.kind}</td><td>${stateBadge(s)}</td>
<td>${s.toolCount}</td><td>${s.restarts}</td><td class="mono">${s.lastError ?? ''}</td><td>${s.nextRetryAt ?? ''}</td></tr>`,
  );
  const issues = (list: ServersResponse['configErrors'], what: string) =>
    table(
      what,
      ['Server', 'Field', 'Problem'],
      list.map(
        (e) =>
          html`<tr class="config-issue"><td class="mono">${e.server ?? ''}</td><td class="mono">${e.path}</td><td>${e.message}</td></tr>`,
      ),
      `No ${what.toLowerCase()}.`,
    );
  return layout({
    title: 'Servers',
    active: 'servers',
    session,
    body: html`<section class="card">
<form method="post" action="/servers/reload" class="inline">${csrfField(session)}
<button type="submit">Reload mcp-servers.json</button>
<span class="muted">Re-reads <span class="mono">${servers.configFile}</span>; only changed servers restart.</span></form>
</section>
<section class="card"><h2>MCP servers</h2>${table(
      'MCP servers',
      ['Server', 'Kind', 'State', 'Tools', 'Restarts', 'Last error', 'Next retry'],
      rows,
      'No MCP servers configured.',
    )}
${servers.disabled.length ? html`<p>Disabled: <span class="mono">${servers.disabled.join(', ')}</span></p>` : ''}</section>
<section class="card"><h2>Configuration errors</h2>${issues(servers.configErrors, 'Configuration errors')}
<h2>Configuration warnings</h2>${issues(servers.configWarnings, 'Configuration warnings')}</section>`,
  });
}

export function reloadSummary(r: ReloadResponse): string {
  const part = (label: string, list: string[]) => (list.length ? `${label}: ${list.join(', ')}` : '');
  const parts = [
    part('added', r.added),
    part('removed', r.removed),
    part('restarted', r.restarted),
    `${r.unchanged.length} unchanged`,
  ].filter(Boolean);
  const errors = r.configErrors.length
    ? ` ${r.configErrors.length} configuration error(s): ${r.configErrors.map((e) => `${e.path}: ${e.message}`).join('; ')}`
    : '';
  return `Reloaded (${parts.join('; ')}).${errors}`;
}

// ---------------------------------------------------------------- catalogue

export interface Catalogue {
  tools: ToolView[];
  prompts: PromptView[];
  resources: ResourceView[];
}

function matches(q: string, ...fields: (string | undefined)[]): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  return fields.some((f) => f?.toLowerCase().includes(needle));
}

function firstLine(text: string | undefined): string {
  const line = (text ?? '').split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

export function cataloguePage(session: Session, cat: Catalogue, q: string): SafeHtml {
  const tools = cat.tools.filter((t) => matches(q, t.name, t.host, t.server, t.description));
  const prompts = cat.prompts.filter((p) => matches(q, p.name, p.host, p.server, p.description));
  const resources = cat.resources.filter((r) => matches(q, r.uri, r.name, r.host, r.server));
  return layout({
    title: 'Catalogue',
    active: 'catalogue',
    session,
    body: html`<form method="get" action="/catalogue" class="filters" role="search">
<div><label for="q">Search names, hosts, servers and descriptions</label>
<input type="search" id="q" name="q" value="${q}" size="30"></div><button type="submit">Search</button>
${q ? html`<a href="/catalogue">Clear</a>` : ''}</form>
<section class="card"><h2>Tools (${tools.length})</h2>${table(
      'Tools',
      ['Tool', 'Host', 'Server', 'Original name', 'Description', ''],
      tools.map(
        (
          t,
        ) => html`<tr data-tool="${t.name}"><th scope="row" class="mono">${t.name}</th><td class="mono">${t.host}</td><td class="mono">${t.server}</td>
<td class="mono">${t.originalName}</td><td>${firstLine(t.description)}</td>
<td><a href="${href('/catalogue/try', { name: t.name })}">Try<span class="visually-hidden"> ${t.name}</span></a></td></tr>`,
      ),
      'No tools match.',
    )}</section>
<section class="card"><h2>Prompts (${prompts.length})</h2>${table(
      'Prompts',
      ['Prompt', 'Host', 'Server', 'Description'],
      prompts.map(
        (p) =>
          html`<tr><th scope="row" class="mono">${p.name}</th><td class="mono">${p.host}</td><td class="mono">${p.server}</td><td>${firstLine(p.description)}</td></tr>`,
      ),
      'No prompts match.',
    )}</section>
<section class="card"><h2>Resources (${resources.length})</h2>${table(
      'Resources',
      ['URI', 'Name', 'Host', 'Server', 'Type'],
      resources.map(
        (r) =>
          html`<tr><td class="mono">${r.uri}</td><td>${r.name}</td><td class="mono">${r.host}</td><td class="mono">${r.server}</td><td>${r.template ? 'template' : (r.mimeType ?? '')}</td></tr>`,
      ),
      'No resources match.',
    )}</section>`,
  });
}

export function tryToolPage(
  session: Session,
  tool: ToolView,
  args: string,
  outcome?: { result?: CallResponse; error?: string },
): SafeHtml {
  const result = outcome?.result;
  return layout({
    title: `Try ${tool.name}`,
    active: 'catalogue',
    session,
    body: html`<section class="card">
<p>Host <span class="mono">${tool.host}</span> · server <span class="mono">${tool.server}</span> · <span class="mono">${tool.originalName}</span></p>
<p>${tool.description ?? ''}</p>
<details><summary>Input schema</summary><pre class="result">${JSON.stringify(tool.definition.inputSchema ?? {}, null, 2)}</pre></details>
<form method="post" action="/catalogue/call">
${csrfField(session)}<input type="hidden" name="name" value="${tool.name}">
<div class="field"><label for="args">Arguments (a JSON object)</label>
<textarea id="args" name="args" spellcheck="false">${args}</textarea></div>
<button type="submit">Call ${tool.name}</button> <a href="/catalogue">Back to the catalogue</a>
</form></section>
${outcome?.error ? html`<div class="flash error" role="alert" id="call-error">${outcome.error}</div>` : ''}
${
  result
    ? html`<section class="card" id="call-result" aria-live="polite"><h2>Result ${result.isError ? badge('bad', 'tool error') : badge('ok', 'ok')}</h2>
${(result.content ?? []).map((c) =>
  c.type === 'text'
    ? html`<pre class="result">${c.text}</pre>`
    : html`<pre class="result">${JSON.stringify(c, null, 2)}</pre>`,
)}
${result.structuredContent ? html`<h2>Structured content</h2><pre class="result">${JSON.stringify(result.structuredContent, null, 2)}</pre>` : ''}
</section>`
    : ''
}`,
  });
}

// ---------------------------------------------------------------- activity

export interface AuditFilters {
  agent?: string;
  host?: string;
  outcome?: string;
}

const OUTCOMES: string[] = ['', ...AUDIT_OUTCOMES];

export function activityPage(
  session: Session,
  agents: AgentJson[],
  events: AuditEventJson[],
  filters: AuditFilters,
): SafeHtml {
  const outcomes =
    filters.outcome && !OUTCOMES.includes(filters.outcome) ? [...OUTCOMES, filters.outcome] : OUTCOMES;
  return layout({
    title: 'Activity',
    active: 'activity',
    session,
    body: html`<section class="card"><h2>Agents</h2>${table(
      'Agents',
      ['Agent', 'Mode', 'Allow', 'Deny', 'Records arguments', 'Last used'],
      agents.map(
        (
          a,
        ) => html`<tr><th scope="row" class="mono">${a.name}</th><td>${a.mode}</td><td class="mono">${a.allow.join(' ')}</td>
<td class="mono">${a.deny.join(' ')}</td><td>${a.record_arguments ? 'yes' : 'no'}</td><td>${a.last_used_at ?? '-'}</td></tr>`,
      ),
      'No agents besides the owner. Add one with diane agents add.',
    )}</section>
<section class="card"><h2>Audit trail (newest first, last 100)</h2>
<form method="get" action="/activity" class="filters">
<div><label for="f-agent">Agent</label><input type="text" id="f-agent" name="agent" value="${filters.agent ?? ''}" size="14"></div>
<div><label for="f-host">Host</label><input type="text" id="f-host" name="host" value="${filters.host ?? ''}" size="14"></div>
<div><label for="f-outcome">Outcome</label><select id="f-outcome" name="outcome">${outcomes.map(
      (o) =>
        html`<option value="${o}"${o === (filters.outcome ?? '') ? html` selected` : ''}>${o || 'any'}</option>`,
    )}</select></div>
<button type="submit">Filter</button></form>
${auditFragment(events, filters)}</section>`,
  });
}

/**
 * The audit table, refreshed live: the console's event stream (`/events`, fed by the daemon's
 * audit follow stream) triggers `refresh` on it when a row is written.
 */
export function auditFragment(events: AuditEventJson[], filters: AuditFilters): SafeHtml {
  return html`<div id="audit-trail" hx-get="${href('/fragments/audit', { ...filters })}" hx-trigger="refresh" hx-swap="outerHTML">${table(
    'Audit trail',
    ['Time', 'Agent', 'Kind', 'Name', 'Host', 'Server', 'Outcome', 'Duration', 'Error'],
    [...events].reverse().map(
      (e) => html`<tr><td class="mono">${e.at}</td><td class="mono">${e.agent ?? ''}</td><td>${e.kind}</td>
<td class="mono">${e.exposed_name ?? ''}</td><td class="mono">${e.host ?? ''}</td><td class="mono">${e.server ?? ''}</td>
<td>${badge(e.outcome === 'ok' ? 'ok' : 'bad', e.outcome)}</td><td>${e.duration_ms === null ? '' : `${e.duration_ms} ms`}</td>
<td>${e.error ?? ''}</td></tr>`,
    ),
    'No audit rows match.',
  )}</div>`;
}
