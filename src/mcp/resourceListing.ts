import type { Resource, ResourceTemplateType as ResourceTemplate } from '@modelcontextprotocol/client';
import { definitionFacts } from './definitionFacts.js';
import type { RejectedItem } from './nameTable.js';
import { exposeUri } from './resourceUris.js';
import { UpstreamOrder } from './upstreamOrder.js';
import { exposeResourceObject } from './uriRewrite.js';

export interface ResourceListing {
  resources: readonly Resource[];
  resourceTemplates: readonly ResourceTemplate[];
  /** Resources and templates without a usable URI; exposedName holds the URI as given. */
  rejected: readonly RejectedItem[];
  /** Diane URI (or URI template) → the upstream it belongs to. */
  owners: ReadonlyMap<string, string>;
}

/** A resource or template of an upstream, under the URI agents see. */
export interface ChangedUri {
  uri: string;
  upstream: string;
}

interface Segment {
  items: readonly (Resource | ResourceTemplate)[];
  refusedEarlier: readonly RejectedItem[];
  resources: Resource[];
  templates: ResourceTemplate[];
  notAUri: RejectedItem[];
  /** `r<uri>` or `t<template>` → digest of the upstream's definition. */
  digests: Map<string, { uri: string; digest: number }>;
}

/**
 * The resources and resource templates agents see, as Diane URIs, updated one upstream at a time.
 * Exposed URIs carry their upstream's name, so upstreams never contend for one: an update touches
 * only its own segment. The lists are the segments in code-unit order of the upstream names.
 */
export class LiveResourceListing implements ResourceListing {
  private readonly segments = new Map<string, Segment>();
  private readonly order = new UpstreamOrder();
  private readonly ownerOf = new Map<string, string>();
  private lists?: { resources: Resource[]; templates: ResourceTemplate[]; rejected: RejectedItem[] };

  /** `transparent`: URIs pass unchanged (one trusted upstream, the `diane mcp` bridge). */
  constructor(private readonly transparent: boolean) {}

  get resources(): readonly Resource[] {
    return this.materialized().resources;
  }

  get resourceTemplates(): readonly ResourceTemplate[] {
    return this.materialized().templates;
  }

  get rejected(): readonly RejectedItem[] {
    return this.materialized().rejected;
  }

  get owners(): ReadonlyMap<string, string> {
    return this.ownerOf;
  }

  /** Replaces one upstream's resources and templates (one list, as its budget counts them). */
  set(
    upstream: string,
    items: readonly (Resource | ResourceTemplate)[],
    refusedEarlier: readonly RejectedItem[] = [],
  ): ChangedUri[] {
    const before = this.segments.get(upstream);
    if (before && sameList(before.items, items) && sameList(before.refusedEarlier, refusedEarlier)) return [];
    return this.replace(upstream, before, this.segmentOf(upstream, items, refusedEarlier));
  }

  delete(upstream: string): ChangedUri[] {
    const before = this.segments.get(upstream);
    return before ? this.replace(upstream, before, undefined) : [];
  }

  private segmentOf(
    upstream: string,
    items: readonly (Resource | ResourceTemplate)[],
    refusedEarlier: readonly RejectedItem[],
  ): Segment {
    const segment: Segment = {
      items,
      refusedEarlier,
      resources: [],
      templates: [],
      notAUri: [],
      digests: new Map(),
    };
    for (const item of items) {
      if ('uri' in item) {
        const exposed = this.transparent ? item : exposeResourceObject(upstream, item);
        if (!this.transparent && exposed === item) {
          segment.notAUri.push(notAUri(upstream, item.uri, item.name));
          continue;
        }
        segment.resources.push(exposed);
        segment.digests.set(`r${exposed.uri}`, { uri: exposed.uri, digest: definitionFacts(item).digest });
        continue;
      }
      const uriTemplate = this.transparent ? item.uriTemplate : exposeUri(upstream, item.uriTemplate);
      if (uriTemplate === undefined) {
        segment.notAUri.push(notAUri(upstream, item.uriTemplate, item.name));
        continue;
      }
      segment.templates.push({ ...item, uriTemplate });
      segment.digests.set(`t${uriTemplate}`, { uri: uriTemplate, digest: definitionFacts(item).digest });
    }
    return segment;
  }

  private replace(upstream: string, before: Segment | undefined, after: Segment | undefined): ChangedUri[] {
    const changed: ChangedUri[] = [];
    for (const [key, was] of before?.digests ?? []) {
      if (after?.digests.get(key)?.digest !== was.digest) changed.push({ uri: was.uri, upstream });
      if (!after?.digests.has(key) && this.ownerOf.get(was.uri) === upstream) this.ownerOf.delete(was.uri);
    }
    for (const [key, now] of after?.digests ?? []) {
      if (!before?.digests.has(key)) changed.push({ uri: now.uri, upstream });
      this.ownerOf.set(now.uri, upstream);
    }
    if (after) {
      this.segments.set(upstream, after);
      this.order.add(upstream);
    } else {
      this.segments.delete(upstream);
      this.order.delete(upstream);
    }
    this.lists = undefined;
    return changed;
  }

  private materialized(): { resources: Resource[]; templates: ResourceTemplate[]; rejected: RejectedItem[] } {
    if (!this.lists) {
      const lists = {
        resources: [] as Resource[],
        templates: [] as ResourceTemplate[],
        rejected: [] as RejectedItem[],
      };
      for (const upstream of this.order) {
        const segment = this.segments.get(upstream)!;
        lists.resources.push(...segment.resources);
        lists.templates.push(...segment.templates);
        lists.rejected.push(...segment.refusedEarlier);
      }
      for (const upstream of this.order) lists.rejected.push(...this.segments.get(upstream)!.notAUri);
      this.lists = lists;
    }
    return this.lists;
  }
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

function notAUri(upstream: string, uri: string, name: string): RejectedItem {
  return {
    exposedName: uri,
    upstream,
    originalName: name,
    reason: 'not-a-uri',
    detail: 'the URI has no scheme, so it cannot be given a Diane address',
  };
}
