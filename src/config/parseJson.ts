import { DianeError, ExitCode } from '../errors.js';

/**
 * JSON.parse for files people edit by hand: a syntax error names the file and the line and column
 * (V8 only reports a character offset), and a leading byte-order mark from Windows editors is
 * accepted.
 */
export function parseJsonFile(text: string, source: string): unknown {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch (err) {
    const detail = (err as Error).message;
    const where = syntaxErrorLocation(body, detail);
    const at = where === undefined ? '' : ` at line ${where.line}, column ${where.column}`;
    const reason = detail.replace(/\s*\(line \d+ column \d+\)$/, '').replace(/ in JSON at position \d+$/, '');
    throw new DianeError(`${source}: invalid JSON${at}: ${reason}`, ExitCode.config, 'CONFIG_INVALID');
  }
}

function syntaxErrorLocation(text: string, message: string): { line: number; column: number } | undefined {
  const reported = /\(line (\d+) column (\d+)\)/.exec(message);
  if (reported) return { line: Number(reported[1]), column: Number(reported[2]) };
  const position = /at position (\d+)/.exec(message);
  if (position) return lineAndColumn(text, Number(position[1]));
  if (/end of JSON input/.test(message)) return lineAndColumn(text, text.length);
  return undefined;
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lastNewline = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: offset - lastNewline };
}
