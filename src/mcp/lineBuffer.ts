/**
 * Splits a byte stream into newline-terminated lines. Each chunk is scanned once and a line is
 * joined once, so a large message arriving in many pipe-sized chunks costs linear time (the SDK's
 * ReadBuffer copies everything buffered on every chunk, which is quadratic for a 1 MiB result).
 */
export class LineBuffer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Calls `onLine` for each complete line; throws when a line grows past the limit. */
  push(chunk: Buffer, onLine: (line: string) => void): void {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.pendingBytes + piece.length > this.maxLineBytes) {
        this.clear();
        throw new Error(`message over ${this.maxLineBytes} bytes`);
      }
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.clear();
      onLine(line.toString('utf8'));
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.maxLineBytes) {
        this.clear();
        throw new Error(`message over ${this.maxLineBytes} bytes`);
      }
      this.pending.push(rest);
    }
  }

  clear(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }
}
