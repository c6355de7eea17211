/** PEM text for DER bytes: 64-column base64 between BEGIN/END lines, ending with a newline. */
export function encodePem(der: Uint8Array | ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export type PemParseResult = { ok: true; label: string; der: Uint8Array } | { ok: false; problem: string };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Parses text that must be exactly one PEM block and nothing else but surrounding whitespace.
 * Node's and OpenSSL's readers skip stray text and take the first block, which would let a second
 * block or a prefix slip past whoever looked at the text; here that is a problem, described in
 * words a person can act on.
 */
export function parseSinglePem(text: string): PemParseResult {
  const blocks = text.match(/-----BEGIN /g)?.length ?? 0;
  if (blocks === 0) return { ok: false, problem: 'it is not PEM (no -----BEGIN line)' };
  if (blocks > 1) return { ok: false, problem: `it holds ${blocks} PEM blocks, exactly one is allowed` };
  const trimmed = text.trim();
  const begin = /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n/.exec(trimmed);
  if (!begin)
    return { ok: false, problem: 'there is text before the PEM block, or its BEGIN line is malformed' };
  const label = begin[1]!;
  const endLine = `-----END ${label}-----`;
  const endAt = trimmed.indexOf('-----END ');
  if (endAt < 0) return { ok: false, problem: 'the PEM block has no END line' };
  if (!trimmed.startsWith(endLine, endAt)) {
    return { ok: false, problem: `the PEM END line does not match "-----BEGIN ${label}-----"` };
  }
  if (endAt + endLine.length !== trimmed.length) {
    return { ok: false, problem: 'there is text after the PEM block' };
  }
  const b64 = trimmed.slice(begin[0].length, endAt).replace(/\s+/g, '');
  if (b64.length === 0 || !BASE64.test(b64)) {
    return { ok: false, problem: 'the body of the PEM block is not plain base64' };
  }
  return { ok: true, label, der: new Uint8Array(Buffer.from(b64, 'base64')) };
}
