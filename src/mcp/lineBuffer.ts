/**
 * Splits a byte stream into newline-terminated lines. Each chunk is scanned once and a line is
 * joined once, so a large message arriving in many pipe-sized chunks costs linear time (the SDK's
 * ReadBuffer copies everything buffered on every chunk, which is quadratic for a 1 MiB result).
 */
export class LineBuffer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** A line already refused for its size has not ended yet: its rest is not a line of its own. */
  private skipping = false;

  constructor(private readonly maxLineBytes: number) {}

  /**
   * Calls `onLine` for each complete line. A line over the limit is dropped whole, wherever the
   * chunks cut it, and the push that saw it throws once the lines around it were delivered.
   */
  push(chunk: Buffer, onLine: (line: string) => void): void {
    let refused = false;
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      if (this.pendingBytes + piece.length > this.maxLineBytes) {
        this.clear();
        refused = true;
        continue;
      }
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.clear();
      onLine(line.toString('utf8'));
    }
    if (start < chunk.length && !this.skipping) {
      const rest = chunk.subarray(start);
      this.pendingBytes += rest.length;
      this.pending.push(rest);
      if (this.pendingBytes > this.maxLineBytes) {
        this.clear();
        this.skipping = true;
        refused = true;
      }
    }
    if (refused) throw new Error(`message over ${this.maxLineBytes} bytes`);
  }

  clear(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.skipping = false;
  }
}
