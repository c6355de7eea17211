import type { ServerResponse } from 'node:http';

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

/**
 * As the SDK transport's (`DEFAULT_SSE_KEEP_ALIVE_MS`): a stream that waits on a person (an
 * elicitation) must not look dead to a proxy in between.
 */
const KEEP_ALIVE_MS = 15_000;

/**
 * One POST's answer, its headers decided by the first message: the result alone goes as
 * `application/json`; a message before it (progress, a question for the agent) turns the answer
 * into an event stream, written as the SDK writes it (`event: message` frames, keep-alive
 * comments).
 */
export class LazyReply {
  private streaming = false;
  private keepAlive?: NodeJS.Timeout;
  ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly sessionId: string,
  ) {}

  send(message: object): void {
    if (this.ended || this.res.destroyed) return;
    if (!this.streaming) {
      this.streaming = true;
      this.res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId });
      this.keepAlive = setInterval(() => {
        if (!this.res.destroyed) this.res.write(': keepalive\n\n');
      }, KEEP_ALIVE_MS);
      this.keepAlive.unref();
      this.res.once('close', () => clearInterval(this.keepAlive));
    }
    this.res.write(sseEvent(JSON.stringify(message)));
  }

  /** Ends the POST without a message. */
  abandon(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.keepAlive);
    if (this.res.destroyed) return;
    if (this.streaming) this.res.end();
    else this.res.writeHead(202).end();
  }

  end(message: object): void {
    if (!this.ended) this.endJson(JSON.stringify(message));
  }

  /** Ends the POST with one message already serialised (one line of JSON, no newline in it). */
  endJson(text: string): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.keepAlive);
    if (this.res.destroyed) return;
    if (this.streaming) this.res.end(sseEvent(text));
    else this.writeJson(text);
  }

  private writeJson(body: string): void {
    this.res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'mcp-session-id': this.sessionId,
    });
    this.res.end(body);
  }
}

function sseEvent(json: string): string {
  return `event: message\ndata: ${json}\n\n`;
}
