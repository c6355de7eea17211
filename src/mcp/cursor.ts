import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';

/**
 * Opaque list cursors: the offset of the next page, tagged with the list it belongs to. A list
 * that changes between pages may shift under the cursor; agents re-list on `list_changed`.
 */
export function encodeCursor(list: string, offset: number): string {
  return Buffer.from(JSON.stringify({ l: list, o: offset }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, list: string): number {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      l?: unknown;
      o?: unknown;
    };
    if (value.l === list && typeof value.o === 'number' && Number.isSafeInteger(value.o) && value.o >= 0) {
      return value.o;
    }
  } catch {
    // Falls through to the error below.
  }
  throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Invalid cursor');
}
