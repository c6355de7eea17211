/** setTimeout takes at most 2^31-1 ms (about 24.8 days); a longer wait fires early and re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Scheduled {
  cancel(): void;
}

/**
 * Runs `fn` at the epoch time `at`, however far away (certificate lifetimes outlast a single
 * timer). The timer does not keep the process alive by itself.
 */
export function runAt(at: number, fn: () => void): Scheduled {
  let timer: NodeJS.Timeout;
  const arm = () => {
    timer = setTimeout(
      () => (Date.now() < at ? arm() : fn()),
      Math.max(0, Math.min(at - Date.now(), MAX_TIMER_MS)),
    );
    timer.unref();
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}
