import { randomUUID } from 'node:crypto';
import type { RequestOptions, Server } from '@modelcontextprotocol/server';
import type { AgentRequest, JsonObject } from '../upstream.js';

/**
 * The round timeout of the SDK's 2025-era legacy shim (`inputRequired.roundTimeoutMs`, which
 * `createFront` leaves at the SDK's default): questions are answered at a person's pace.
 */
const ROUND_TIMEOUT_MS = 600_000;

/**
 * One round of an upstream's questions (sampling, elicitation, roots) put to the agent exactly
 * as the SDK's legacy shim puts them on a 2025-era connection: through the front's own SDK
 * `Server` senders, so the request ids, the progress token, the checks of params and answers,
 * the round timeout (restarted by the agent's progress) and `notifications/cancelled` on abort
 * or timeout are the SDK's. The questions are asked at once and the first failure fails the
 * round. `relatedRequestId` says on which stream the transport writes them.
 */
export async function askAsShim(
  server: Server,
  requests: Record<string, AgentRequest>,
  opts: { relatedRequestId: string | number; signal?: AbortSignal },
): Promise<Record<string, JsonObject>> {
  const round = new AbortController();
  const onAbort = () => round.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  const options: RequestOptions = {
    relatedRequestId: opts.relatedRequestId,
    timeout: ROUND_TIMEOUT_MS,
    resetTimeoutOnProgress: true,
    // The shim's: it asks for progress so that progress keeps the question alive.
    onprogress: () => {},
    signal: round.signal,
  };
  try {
    const answers = await Promise.all(
      Object.entries(requests).map(async ([key, request]) => {
        try {
          return [key, (await ask(server, request, options)) as JsonObject] as const;
        } catch (err) {
          round.abort(err);
          throw err;
        }
      }),
    );
    return Object.fromEntries(answers);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** The shim's dispatch of one question to the SDK sender of its kind. */
function ask(server: Server, request: AgentRequest, options: RequestOptions): Promise<unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: the upstream's SDK client parsed these params.
  const params = request.params as any;
  switch (request.method) {
    case 'sampling/createMessage':
      return server.createMessage(params, options);
    case 'roots/list':
      return server.listRoots(params, options);
    default:
      // As the shim's elicitation leg: a form request names its mode, a URL request gets an id,
      // and accepted content is not checked against the schema (the upstream judges it).
      return server.request({ method: 'elicitation/create', params: elicitationParams(params) }, options);
  }
}

function elicitationParams(params: JsonObject): JsonObject {
  if (params.mode === 'url')
    return params.elicitationId === undefined ? { ...params, elicitationId: randomUUID() } : params;
  return params.mode === 'form' ? params : { ...params, mode: 'form' };
}
