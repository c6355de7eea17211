/**
 * HTML the console writes. Everything shown comes from the daemon and, through it, from slaves
 * and MCP servers (host ids, tool names, descriptions, errors, results): none of it is trusted.
 * So there is one way to build markup, the `html` tag, and it passes every interpolated value
 * through {@link escapeHtml} unless the value is itself markup made by the tag.
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Text safe in element content and in quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

/** Markup built by {@link html}: the only values interpolated without escaping. */
export class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Interpolated = SafeHtml | string | number | boolean | null | undefined | readonly Interpolated[];

function render(value: Interpolated): string {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map((v: Interpolated) => render(v)).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(value);
}

/**
 * A tagged template: `html\`<td>${name}</td>\``. Strings, numbers and the members of arrays are
 * escaped; `SafeHtml` (the result of another `html`) is kept; null, undefined and false vanish.
 * Attribute values must be written in double quotes.
 */
export function html(strings: TemplateStringsArray, ...values: Interpolated[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** A URL path with query parameters, each encoded (the result still goes through `html`). */
export function href(path: string, params: Record<string, string | undefined> = {}): string {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') query.set(k, v);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
