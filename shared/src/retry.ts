/**
 * Runs `attempt` until it succeeds, waiting `delaysMs[i]` before try i+1; `retryable` decides
 * which failures are worth another try (others are thrown at once), and once the delays run out
 * the last failure is thrown. `onRetry` is told of each failure that will be retried.
 */
export async function retry<T>(
  attempt: (n: number) => Promise<T>,
  options: {
    delaysMs: readonly number[];
    retryable?: (err: unknown) => boolean;
    onRetry?: (err: unknown, n: number, delayMs: number) => void;
  },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const delay = options.delaysMs[n];
      if (delay === undefined || (options.retryable && !options.retryable(err))) throw err;
      options.onRetry?.(err, n, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
