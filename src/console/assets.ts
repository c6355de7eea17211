import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** Served as /static/console.css: the console's one stylesheet (no inline styles: CSP forbids them). */
export const CONSOLE_CSS = `
:root { --fg: #1d2330; --muted: #5b6475; --bg: #f6f7f9; --card: #fff; --line: #d9dde5;
  --accent: #1f5fbf; --ok: #1b7a3a; --bad: #b3261e; --warn: #8a5a00; --focus: #ffbf47; }
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
header.top { background: #18202f; color: #fff; padding: .6rem 1rem; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; align-items: center; }
header.top .brand { font-weight: 700; margin-right: .6rem; }
header.top nav { display: flex; flex-wrap: wrap; gap: .2rem .4rem; }
header.top nav a { color: #dfe6f3; text-decoration: none; padding: .3rem .6rem; border-radius: 4px; }
header.top nav a[aria-current="page"] { background: #33415c; color: #fff; }
header.top nav a:hover { text-decoration: underline; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .6rem; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin-bottom: 1rem; }
.scroll { position: relative; overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
table { border-collapse: collapse; width: 100%; min-width: 560px; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .85rem; color: var(--muted); font-weight: 600; white-space: nowrap; }
td.mono, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .85rem; word-break: break-all; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); } .badge.warn { color: var(--warn); } .badge.idle { color: var(--muted); }
.flash { padding: .6rem .8rem; border-radius: 6px; margin-bottom: 1rem; border: 1px solid; }
.flash.ok { background: #e8f5ec; border-color: var(--ok); } .flash.error { background: #fbeaea; border-color: var(--bad); }
form.inline { display: flex; flex-wrap: wrap; gap: .4rem; align-items: flex-end; margin: 0; }
label { display: block; font-size: .85rem; font-weight: 600; margin-bottom: .15rem; }
input[type="text"], input[type="search"], select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #8a93a5; border-radius: 4px; background: #fff; color: inherit; max-width: 100%; }
textarea { width: 100%; min-height: 8rem; font-family: ui-monospace, Menlo, Consolas, monospace; }
button, .button { font: inherit; padding: .35rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
button.danger, .button.danger { background: var(--bad); border-color: var(--bad); }
.field { margin-bottom: .6rem; }
.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: flex-end; margin-bottom: .8rem; }
pre.result { background: #0f1420; color: #e6edf7; padding: .8rem; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 640px) {
  html { font-size: 14px; }
  main { padding: .6rem; }
  header.top { padding: .5rem .6rem; }
  form.inline { flex-direction: column; align-items: stretch; }
  .filters { flex-direction: column; align-items: stretch; }
}
`;

/**
 * Served as /static/console.js: live updates. The console's event stream says when pairing
 * requests or audit rows changed; the element concerned re-reads its fragment through htmx.
 */
export const CONSOLE_JS = `(() => {
  if (!window.EventSource) return;
  const refresh = (id) => {
    const el = document.getElementById(id);
    if (el && window.htmx) window.htmx.trigger(el, 'refresh');
  };
  const events = new EventSource('/events');
  events.addEventListener('pairing', () => { refresh('pending'); refresh('hosts'); });
  events.addEventListener('audit', () => refresh('audit-trail'));
})();
`;

let htmx: Buffer | undefined;

/** htmx, from the npm package `htmx.org` (served as /static/htmx.min.js; no CDN). */
export function htmxScript(): Buffer {
  if (!htmx) {
    const require = createRequire(import.meta.url);
    htmx = readFileSync(require.resolve('htmx.org/dist/htmx.min.js'));
  }
  return htmx;
}
