import { z } from 'zod';

/**
 * The wire contract between masters on the bus (NATS), imported by both ends: subjects, the
 * presence bucket, message schemas with size limits, and error codes. Every message is one JSON
 * object; a message larger than the server's payload limit is sent in parts (busFrames.ts).
 *
 * A master never trusts another master's message shape: each is parsed here before use. Masters
 * do trust each other's word (they share the store and the NATS account), so nothing here is an
 * authorisation check.
 */

export const BUS_WIRE_VERSION = 1;

/** Subject tokens and bucket names: what NATS allows in both, lowercase for master ids. */
export const PREFIX_PATTERN = /^[a-zA-Z0-9_-]{1,32}$/;
export const MASTER_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;

/** The longest error or progress text on the wire; longer ones are cut by the sender. */
export const MAX_TEXT = 8192;

/** Cuts a text to what the schemas accept, so that a long message does not lose the whole reply. */
export function clipText(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}

/** The largest whole message, after its parts are put together (a catalogue, a tool result). */
export const MAX_ASSEMBLED_BYTES = 64 * 1024 * 1024;

export const busSubjects = (prefix: string) => ({
  /** Forwarded calls to the master `id`; the reply subject is the caller's stream for the call. */
  call: (id: string) => `${prefix}.master.${id}.call`,
  /** Cancellations and answers to server-to-agent requests, from callers to the master `id`. */
  control: (id: string) => `${prefix}.master.${id}.ctl`,
  /** Notices to the master `id` about hosts whose link it holds: subscription leases, roots. */
  hostNotices: (id: string) => `${prefix}.master.${id}.hosts`,
  /** Catalogue requests to the master `id` for a host whose link it holds. */
  catalog: (id: string) => `${prefix}.master.${id}.catalog`,
  /** Log messages and resource updates of a host's link, published by its holder. */
  hostEvents: (hostId: string) => `${prefix}.host.${hostId}.events`,
  /** Every host's events, for the one subscription of a master. */
  allHostEvents: `${prefix}.host.*.events`,
  /** Revocations, re-pairs and disabled hosts: every master cuts the links it holds. */
  linkEvents: `${prefix}.cluster.links`,
  /** The base of a master's reply subjects (`<base>.<token>`, one token per call or fetch). */
  inbox: (id: string, nonce: string) => `${prefix}.inbox.${id}.${nonce}`,
});

/** JetStream KV bucket names allow `[a-zA-Z0-9_-]`, no dots. */
export const presenceBucket = (prefix: string) => `${prefix}-presence`;

// ---- presence: hostId → the master that holds its link ----

export const PresenceEntrySchema = z
  .object({
    v: z.literal(BUS_WIRE_VERSION),
    master: z.string().regex(MASTER_ID_PATTERN),
    /** When the link came up (ISO time): of two masters that claim a host, the later link wins. */
    since: z.string().datetime(),
    /** Bumped by the holder when the host's lists change: other masters fetch it again. */
    revision: z.number().int().nonnegative(),
    /** The serial of the certificate the link was opened with. */
    serial: z.string().max(128),
  })
  .strict();
export type PresenceEntry = z.infer<typeof PresenceEntrySchema>;

// ---- calls ----

export const FORWARDED_METHODS = [
  'tools/call',
  'prompts/get',
  'resources/read',
  'completion/complete',
  'resources/subscribe',
  'resources/unsubscribe',
  'logging/setLevel',
] as const;

export const AGENT_REQUEST_METHODS = ['sampling/createMessage', 'elicitation/create', 'roots/list'] as const;

const jsonObject = z.record(z.string(), z.unknown());
const callId = z.string().min(1).max(128);

export const CallRequestSchema = z
  .object({
    v: z.literal(BUS_WIRE_VERSION),
    callId,
    /** The calling master: whose resource subscriptions a subscribe or unsubscribe changes. */
    from: z.string().regex(MASTER_ID_PATTERN),
    hostId: z.string().min(1).max(64),
    method: z.enum(FORWARDED_METHODS),
    params: jsonObject,
    /** `_meta` to send with the request: the caller's call id, agent name and trace context. */
    meta: z.record(z.string().max(256), z.string().max(4096)).optional(),
    /** The caller's idle timeout and cap (milliseconds left, not clock times: clocks differ). */
    timeoutMs: z.number().int().positive(),
    maxTotalMs: z.number().int().positive(),
  })
  .strict();
export type CallRequest = z.infer<typeof CallRequestSchema>;

/** How a call failed, in words both ends map to their own error types. */
export const BUS_ERROR_CODES = ['unavailable', 'timeout', 'cancelled', 'protocol', 'internal'] as const;
export type BusErrorCode = (typeof BUS_ERROR_CODES)[number];

export const WireErrorSchema = z
  .object({
    code: z.enum(BUS_ERROR_CODES),
    message: z.string().max(MAX_TEXT),
    /** For `protocol`: the JSON-RPC error code and data the upstream sent. */
    rpcCode: z.number().int().optional(),
    data: z.unknown().optional(),
  })
  .strict();
export type WireError = z.infer<typeof WireErrorSchema>;

/** What the holder streams back on a call's reply subject, in order. */
export const CallStreamSchema = z.discriminatedUnion('t', [
  z
    .object({
      t: z.literal('progress'),
      progress: z.number(),
      total: z.number().optional(),
      message: z.string().max(MAX_TEXT).optional(),
    })
    .strict(),
  /** The upstream asks the call's agent something (sampling, elicitation, roots). */
  z
    .object({
      t: z.literal('ask'),
      askId: z.number().int(),
      method: z.enum(AGENT_REQUEST_METHODS),
      params: jsonObject,
    })
    .strict(),
  z.object({ t: z.literal('alive') }).strict(),
  z.object({ t: z.literal('result'), result: jsonObject }).strict(),
  z.object({ t: z.literal('error'), error: WireErrorSchema }).strict(),
]);
export type CallStreamMessage = z.infer<typeof CallStreamSchema>;

/** What a caller sends the holder about a call in flight. */
export const ControlSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('cancel'), callId, reason: z.string().max(1024).optional() }).strict(),
  z
    .object({
      t: z.literal('answer'),
      callId,
      askId: z.number().int(),
      result: jsonObject.optional(),
      error: z
        .object({
          rpcCode: z.number().int(),
          message: z.string().max(MAX_TEXT),
          data: z.unknown().optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
]);
export type ControlMessage = z.infer<typeof ControlSchema>;

// ---- catalogues ----

export const CatalogRequestSchema = z
  .object({ v: z.literal(BUS_WIRE_VERSION), hostId: z.string().min(1).max(64) })
  .strict();
export type CatalogRequest = z.infer<typeof CatalogRequestSchema>;

const named = z.object({ name: z.string() }).passthrough();
const withUri = z.object({ uri: z.string() }).passthrough();
const withTemplate = z.object({ uriTemplate: z.string() }).passthrough();

export const CatalogReplySchema = z.discriminatedUnion('t', [
  z
    .object({
      t: z.literal('catalog'),
      revision: z.number().int().nonnegative(),
      catalog: z
        .object({
          tools: z.array(named.extend({ inputSchema: z.object({}).passthrough() })),
          prompts: z.array(named),
          resources: z.array(withUri),
          resourceTemplates: z.array(withTemplate),
        })
        .strict(),
      capabilities: jsonObject.optional(),
    })
    .strict(),
  z.object({ t: z.literal('error'), error: WireErrorSchema }).strict(),
]);
export type CatalogReply = z.infer<typeof CatalogReplySchema>;

// ---- host events ----

/** What a host's upstream tells its clients besides answers, relayed to the other masters. */
export const HostEventSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('log'), master: z.string().regex(MASTER_ID_PATTERN), params: jsonObject }).strict(),
  z
    .object({
      t: z.literal('resource-updated'),
      master: z.string().regex(MASTER_ID_PATTERN),
      uri: z.string().max(MAX_TEXT),
    })
    .strict(),
]);
export type HostEvent = z.infer<typeof HostEventSchema>;

// ---- notices about held hosts ----

/** The most URIs one master may hold subscriptions to on one host. */
export const MAX_LEASED_URIS = 10_000;

/**
 * What a master tells the holder of a host's link besides calls (fire and forget, no reply).
 * `subscriptions` is a lease: `from`'s agents want updates of exactly these URIs of the host,
 * renewed every presence heartbeat; the holder drops a master's subscriptions when its lease
 * is not renewed within the presence TTL (the master died or left the bus), and at once when
 * the list is empty (it shut down).
 */
export const HostNoticeSchema = z.discriminatedUnion('t', [
  z
    .object({
      t: z.literal('subscriptions'),
      v: z.literal(BUS_WIRE_VERSION),
      from: z.string().regex(MASTER_ID_PATTERN),
      hostId: z.string().min(1).max(64),
      uris: z.array(z.string().min(1).max(MAX_TEXT)).max(MAX_LEASED_URIS),
    })
    .strict(),
  /** An agent of `from` sent `notifications/roots/list_changed`: the holder tells the host. */
  z
    .object({
      t: z.literal('roots-changed'),
      v: z.literal(BUS_WIRE_VERSION),
      from: z.string().regex(MASTER_ID_PATTERN),
      hostId: z.string().min(1).max(64),
    })
    .strict(),
]);
export type HostNotice = z.infer<typeof HostNoticeSchema>;

// ---- link events ----

export const LINK_EVENT_KINDS = ['revoked', 'superseded', 'disabled'] as const;
export type LinkEventKind = (typeof LINK_EVENT_KINDS)[number];

export const LinkEventSchema = z
  .object({
    v: z.literal(BUS_WIRE_VERSION),
    kind: z.enum(LINK_EVENT_KINDS),
    hostId: z.string().min(1).max(64),
    /** revoked: the serial that no longer opens anything; superseded: the host's new serial. */
    serial: z.string().max(128).optional(),
    /** The master that announced it (it already acted on its own links). */
    from: z.string().regex(MASTER_ID_PATTERN),
  })
  .strict();
export type LinkEvent = z.infer<typeof LinkEventSchema>;
