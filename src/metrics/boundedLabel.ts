/**
 * The values one label may take, capped: the first `max` distinct values are kept as they are
 * (for the life of the process, so a series never changes its name), later ones become the
 * `other` value. Values given up front (`local`) always count as kept.
 */
export class BoundedLabel {
  private readonly kept = new Set<string>();

  constructor(
    private readonly max: number,
    readonly other: string,
    always: readonly string[] = [],
  ) {
    for (const value of always) this.kept.add(value);
  }

  value(raw: string): string {
    if (this.kept.has(raw)) return raw;
    if (this.kept.size >= this.max) return this.other;
    this.kept.add(raw);
    return raw;
  }

  /** How many distinct values are kept (the fold-over value not counted). */
  get size(): number {
    return this.kept.size;
  }
}

/** The capped `host` and `server` labels of one process, shared by all its metrics. */
export class LabelCaps {
  readonly host: BoundedLabel;
  readonly server: BoundedLabel;

  constructor(settings: { maxHostLabels: number; maxServerLabels: number; otherLabel: string }) {
    this.host = new BoundedLabel(settings.maxHostLabels, settings.otherLabel, ['local']);
    this.server = new BoundedLabel(settings.maxServerLabels, settings.otherLabel);
  }

  /** A host past the cap takes its servers with it: `_other` hosts have `_other` servers. */
  hostAndServer(host: string, server: string): { host: string; server: string } {
    const h = this.host.value(host);
    return { host: h, server: h === this.host.other ? this.server.other : this.server.value(server) };
  }
}
