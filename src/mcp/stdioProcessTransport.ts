import { type ChildProcess, spawn } from 'node:child_process';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { serializeMessage } from '@modelcontextprotocol/client';
import { LineBuffer } from './lineBuffer.js';
import { asJsonRpcMessage } from './relay/wire.js';

export interface StdioProcessOptions {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Largest single JSON-RPC message accepted from the child. */
  maxMessageBytes: number;
  onStderrLine?: (line: string) => void;
  /** Time between SIGTERM to the process group and SIGKILL. */
  killGraceMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The MCP stdio transport for upstream servers. It speaks the SDK's framing (serializeMessage
 * and deserializeMessage), but owns the child process because supervision needs what the SDK's
 * StdioClientTransport does not give: the child runs in its own process group so that closing
 * kills the whole tree (an `npx` wrapper and the server it started), stderr is read line by
 * line for diagnostics, and the exit code is reported.
 */
export class StdioProcessTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child?: ChildProcess;
  private readonly readBuffer: LineBuffer;
  private exitInfo?: ExitInfo;
  private closed = false;

  constructor(private readonly opts: StdioProcessOptions) {
    this.readBuffer = new LineBuffer(opts.maxMessageBytes);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  start(): Promise<void> {
    if (this.child) throw new Error('StdioProcessTransport already started');
    return new Promise((resolve, reject) => {
      const child = spawn(this.opts.command, this.opts.args, {
        env: this.opts.env,
        cwd: this.opts.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
        shell: false,
      });
      this.child = child;
      child.once('error', (err) => {
        reject(err);
        this.onerror?.(err);
      });
      child.once('spawn', () => resolve());
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
      });
      child.once('close', () => {
        // The leader is gone; whatever it started in its group goes with it.
        killGroup(child, 'SIGKILL');
        this.finish();
      });
      child.stdin?.on('error', (err) => this.onerror?.(err));
      child.stdout?.on('data', (chunk: Buffer) => {
        try {
          this.readBuffer.push(chunk, (line) => this.receive(line));
        } catch (err) {
          this.onerror?.(err as Error);
          void this.close();
        }
      });
      let partial = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        if (partial.length > 8192) partial = partial.slice(-8192);
        for (const line of lines) if (line.trim()) this.opts.onStderrLine?.(line);
      });
    });
  }

  private receive(line: string): void {
    if (!line.trim()) return;
    let message: JSONRPCMessage | undefined;
    try {
      // A shape check rather than the SDK's zod parse of every message (relay/wire.ts).
      message = asJsonRpcMessage(JSON.parse(line));
    } catch (err) {
      // One bad line from a server is reported, not fatal: the next line may be fine.
      this.onerror?.(err as Error);
      return;
    }
    if (!message) return this.onerror?.(new Error(`not a JSON-RPC message: ${line.slice(0, 200)}`));
    this.onmessage?.(message);
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin?.writable) return Promise.reject(new Error('upstream process is not running'));
    return new Promise((resolve) => {
      if (stdin.write(serializeMessage(message))) resolve();
      else stdin.once('drain', resolve);
    });
  }

  /** Ends stdin, then signals the whole process group: SIGTERM, and SIGKILL after the grace period. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child || this.closed) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      try {
        child.stdin?.end();
      } catch {
        // The pipe may already be gone; the signals below still apply.
      }
      killGroup(child, 'SIGTERM');
      const grace = this.opts.killGraceMs ?? 2000;
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), grace);
      await exited;
      clearTimeout(timer);
    }
    // The leader is gone; make sure nothing it started survives it.
    killGroup(child, 'SIGKILL');
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.readBuffer.clear();
    this.onclose?.();
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}
