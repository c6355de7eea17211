/**
 * Upstream names in code-unit order, kept sorted as upstreams come and go (binary search, one
 * splice), so that every list the router serves is its upstreams' segments in this order without
 * sorting all of them again on each change.
 */
export class UpstreamOrder implements Iterable<string> {
  private readonly names: string[] = [];

  /** Where `name` is, or would be inserted. */
  rank(name: string): number {
    let low = 0;
    let high = this.names.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.names[mid]! < name) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  add(name: string): void {
    const at = this.rank(name);
    if (this.names[at] !== name) this.names.splice(at, 0, name);
  }

  delete(name: string): void {
    const at = this.rank(name);
    if (this.names[at] === name) this.names.splice(at, 1);
  }

  get size(): number {
    return this.names.length;
  }

  [Symbol.iterator](): Iterator<string> {
    return this.names[Symbol.iterator]();
  }
}
