// When and how long to wait before asking a registry again. Pure: the caller brings the clock
// and the randomness, so tests can check every decision without waiting.

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** Delay before the first retry; doubled for every further one. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for: the request fails instead. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
};

/** Statuses that say "not now" rather than "no": overload, rate limits, gateway trouble. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** Retry-After as milliseconds from `nowMs`: delta-seconds or an HTTP date; undefined if absent or unreadable. */
export function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

export type RetryDecision = { retry: true; delayMs: number } | { retry: false; reason: string };

/**
 * Decides about retry number `retry` (1 for the first retry). Exponential back-off with jitter
 * (half fixed, half random, so many nodes pulling at once spread out), unless the registry
 * named its own delay.
 */
export function decideRetry(retry: number, policy: RetryPolicy, random: () => number, retryAfterMs?: number): RetryDecision {
  if (retry >= policy.maxAttempts) return { retry: false, reason: `gave up after ${policy.maxAttempts} attempts` };
  if (retryAfterMs !== undefined) {
    if (retryAfterMs > policy.maxRetryAfterMs) {
      return {
        retry: false,
        reason: `the registry asked to retry after ${Math.ceil(retryAfterMs / 1000)} s, longer than the ${policy.maxRetryAfterMs / 1000} s we wait`,
      };
    }
    return { retry: true, delayMs: retryAfterMs };
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return { retry: true, delayMs: Math.round(ceiling / 2 + (ceiling / 2) * random()) };
}

export function validateRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const check = (name: keyof RetryPolicy, min: number): void => {
    const value = policy[name];
    if (!Number.isInteger(value) || value < min) throw new Error(`retry policy: ${name} must be an integer >= ${min}, got ${String(value)}`);
  };
  check('maxAttempts', 1);
  check('baseDelayMs', 0);
  check('maxDelayMs', 0);
  check('maxRetryAfterMs', 0);
  return policy;
}
