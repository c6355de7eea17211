/**
 * Text from upstreams and slaves (tool names, descriptions, results, versions) reaches the
 * admin's terminal. A slave must not be able to clear the screen, move the cursor or reorder
 * what the admin reads, so every character a terminal would act on is shown as an escape:
 * C0 controls but newline, carriage return and tab; DEL; C1 controls; and the Unicode
 * bidirectional controls (the "Trojan Source" set).
 */
function isDangerous(code: number): boolean {
  if (code < 0x20) return code !== 0x0a && code !== 0x0d && code !== 0x09;
  if (code >= 0x7f && code <= 0x9f) return true;
  return (
    code === 0x061c ||
    code === 0x200e ||
    code === 0x200f ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  );
}

export function escapeTerminalText(text: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isDangerous(code)) continue;
    const hex = code.toString(16);
    out += text.slice(from, i) + (code <= 0xff ? `\\x${hex.padStart(2, '0')}` : `\\u${hex.padStart(4, '0')}`);
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * JSON text for a terminal that stays valid JSON: the characters escapeTerminalText would rewrite
 * (as `\x..`, which is not JSON) are written as JSON's own `\u....` escapes instead. JSON.stringify
 * already escapes C0 controls; outside strings JSON text is ASCII, so only strings change.
 */
export function terminalSafeJson(value: unknown, indent?: number): string {
  const text = JSON.stringify(value, null, indent) ?? 'null';
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isDangerous(code)) continue;
    out += `${text.slice(from, i)}\\u${code.toString(16).padStart(4, '0')}`;
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * Routes everything a command writes to `stream` through escapeTerminalText. Installed for
 * every command but `diane mcp`, whose stdout is the MCP channel.
 */
export function guardTerminalOutput(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : chunk;
    return write(typeof text === 'string' ? escapeTerminalText(text) : text, ...rest);
  }) as typeof stream.write;
}
