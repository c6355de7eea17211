import { randomUUID } from 'node:crypto';
import type { ClientCapabilities } from '@modelcontextprotocol/client';
import { CALL_META_KEY } from './resourceUris.js';
import type { AgentRequest, JsonObject, ProgressUpdate } from './upstream.js';

/** What a call hands back to the agent's front each time the front waits on it. */
export type CallStep =
  | { kind: 'result'; result: JsonObject }
  | { kind: 'error'; error: unknown }
  | { kind: 'input'; requests: Record<string, AgentRequest> };

interface AskedInput {
  request: AgentRequest;
  resolve: (answer: JsonObject) => void;
  reject: (err: Error) => void;
}

/**
 * One agent request (a tool call, a prompt, a read) on its way through an upstream. Besides the
 * result it carries the upstream's own requests to the agent (sampling, elicitation, roots),
 * which reach the agent as the 2026-07-28 multi-round-trip `input_required` form: the front
 * returns them with the call's id as `requestState` and resumes the call when the agent answers.
 * On 2025-era sessions the SDK's shim turns that into ordinary server-to-client requests.
 */
export class RoutedCall {
  /**
   * 122 random bits: the requestState an agent resumes with, unguessable by anyone else.
   * randomUUID draws from a buffered pool; randomBytes per call showed up at 1.5 % of the
   * master's CPU.
   */
  readonly id = randomUUID();
  readonly startedAt = Date.now();
  readonly abort = new AbortController();
  /** The caller's name, for the audit of the questions its call relays to it. */
  agent?: string;
  private outcome?: CallStep;
  private readonly queued: AskedInput[] = [];
  private readonly awaiting = new Map<string, AskedInput>();
  private wake?: () => void;
  private keySeq = 0;
  private progressSink?: (update: ProgressUpdate) => void;
  private detachSignal?: () => void;
  private idleMs = 0;
  private idleTimer?: NodeJS.Timeout;
  private timedOutFlag = false;

  constructor(
    readonly upstream: string,
    /** What the calling agent declared it can answer. */
    readonly capabilities: ClientCapabilities | undefined,
    /** The id a Diane peer gave this call, echoed on requests relayed back to it. */
    readonly peerCallId: string | undefined,
  ) {}

  get timedOut(): boolean {
    return this.timedOutFlag;
  }

  /**
   * The call's idle timeout: restarted by progress, and paused while the agent has questions to
   * answer (a person typing an elicitation answer is not an upstream that hangs).
   */
  armIdleTimeout(ms: number): void {
    this.idleMs = ms;
    this.restartIdleTimer();
  }

  private restartIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.outcome || this.idleMs <= 0 || this.queued.length > 0 || this.awaiting.size > 0) return;
    this.idleTimer = setTimeout(() => {
      this.timedOutFlag = true;
      this.cancel('timed out');
    }, this.idleMs);
    this.idleTimer.unref();
  }

  get finished(): boolean {
    return this.outcome !== undefined;
  }

  /** Points progress and cancellation at the agent request that currently carries the call. */
  bind(signal: AbortSignal, onprogress?: (update: ProgressUpdate) => void): void {
    this.detachSignal?.();
    this.progressSink = onprogress;
    if (signal.aborted) return this.cancel('the agent cancelled the request');
    const onAbort = () => this.cancel('the agent cancelled the request');
    signal.addEventListener('abort', onAbort, { once: true });
    this.detachSignal = () => signal.removeEventListener('abort', onAbort);
  }

  /** Where progress goes when the caller cancels through `cancel` rather than a signal. */
  onProgress(onprogress?: (update: ProgressUpdate) => void): void {
    this.progressSink = onprogress;
  }

  /** The agent's request ended without the call (input required): it waits for the next one. */
  unbind(): void {
    this.detachSignal?.();
    this.detachSignal = undefined;
    this.progressSink = undefined;
  }

  progress(update: ProgressUpdate): void {
    this.restartIdleTimer();
    this.progressSink?.(update);
  }

  finish(step: CallStep): void {
    if (this.outcome) return;
    this.outcome = step;
    clearTimeout(this.idleTimer);
    this.unbind();
    if (this.queued.length > 0 || this.awaiting.size > 0) {
      // Only built when someone waits: an Error (with its stack) per call is measurable.
      const error = new Error('the call ended before the agent answered');
      for (const asked of [...this.queued, ...this.awaiting.values()]) asked.reject(error);
      this.queued.length = 0;
      this.awaiting.clear();
    }
    this.wake?.();
  }

  cancel(reason: string): void {
    if (this.outcome) return;
    this.abort.abort(new Error(reason));
  }

  /** Relays an upstream's request to this call's agent; resolves with the agent's answer. */
  ask(request: AgentRequest, signal: AbortSignal): Promise<JsonObject> {
    if (this.outcome) return Promise.reject(new Error('the call has already ended'));
    const params = { ...request.params };
    const meta = { ...(params._meta as JsonObject | undefined) };
    delete meta[CALL_META_KEY];
    if (this.peerCallId !== undefined) meta[CALL_META_KEY] = this.peerCallId;
    if (Object.keys(meta).length) params._meta = meta;
    else delete params._meta;
    return new Promise((resolve, reject) => {
      const asked: AskedInput = { request: { method: request.method, params }, resolve, reject };
      this.queued.push(asked);
      this.restartIdleTimer();
      signal.addEventListener('abort', () => {
        const i = this.queued.indexOf(asked);
        if (i >= 0) this.queued.splice(i, 1);
        reject(new Error('the upstream withdrew its request'));
      });
      this.wake?.();
    });
  }

  /** Waits until the call has a result, or requests for the agent. */
  async next(): Promise<CallStep> {
    while (!this.outcome && this.queued.length === 0) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    if (this.outcome) return this.outcome;
    const requests: Record<string, AgentRequest> = {};
    for (const asked of this.queued.splice(0)) {
      const key = `r${++this.keySeq}`;
      this.awaiting.set(key, asked);
      requests[key] = asked.request;
    }
    return { kind: 'input', requests };
  }

  /** The agent's answers to the requests handed out by `next`; a missing answer is an error. */
  answer(responses: Record<string, unknown> | undefined): void {
    for (const [key, asked] of this.awaiting) {
      const response = responses?.[key];
      if (typeof response === 'object' && response !== null) asked.resolve(response as JsonObject);
      else asked.reject(new Error(`the agent did not answer ${asked.request.method}`));
    }
    this.awaiting.clear();
    this.restartIdleTimer();
  }
}
