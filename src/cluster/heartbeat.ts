import type { WebSocket } from 'ws';

export interface HeartbeatOptions {
  intervalMs: number;
  /** A peer that has not answered a ping for this long is dead. */
  timeoutMs: number;
  onPong?: (at: Date) => void;
  onTimeout: () => void;
}

/**
 * WebSocket ping/pong keepalive, run by both ends of the link: each side pings every
 * `intervalMs` and gives up on a peer silent for `timeoutMs`. Returns the stop function.
 */
export function startHeartbeat(ws: WebSocket, opts: HeartbeatOptions): () => void {
  let lastPong = Date.now();
  const onPong = () => {
    lastPong = Date.now();
    opts.onPong?.(new Date(lastPong));
  };
  ws.on('pong', onPong);
  const timer = setInterval(
    () => {
      if (Date.now() - lastPong > opts.timeoutMs) {
        stop();
        opts.onTimeout();
        return;
      }
      if (ws.readyState === ws.OPEN) ws.ping();
    },
    Math.max(50, Math.min(opts.intervalMs, opts.timeoutMs / 2)),
  );
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    ws.off('pong', onPong);
  };
  ws.once('close', stop);
  return stop;
}
