// How long a slot waits before its next task after the previous one ended: exponential back-off,
// so a crash-looping container costs little while a one-off failure is replaced almost at once.
import type { ServiceSpec } from '../../common/resources/types.js';

export const DEFAULT_RESTART_DELAY_MS = 100;
export const DEFAULT_MAX_RESTART_DELAY_MS = 10_000;

export type RestartPolicy = NonNullable<ServiceSpec['restart']>;

export function maxRestartDelayMs(policy: RestartPolicy | undefined): number {
  return policy?.maxDelayMs ?? DEFAULT_MAX_RESTART_DELAY_MS;
}

/**
 * Delay after `consecutiveFailures` (>= 1) ends in a row: the base delay, doubled for each earlier
 * failure, capped by the maximum. The first restart waits exactly the base delay.
 */
export function restartDelayMs(policy: RestartPolicy | undefined, consecutiveFailures: number): number {
  const base = policy?.delayMs ?? DEFAULT_RESTART_DELAY_MS;
  const cap = maxRestartDelayMs(policy);
  const exponent = Math.max(0, consecutiveFailures - 1);
  if (base <= 0) return 0;
  // Bounding the exponent first keeps a long failure streak from overflowing to Infinity.
  if (exponent >= 52 || base * 2 ** exponent >= cap) return cap;
  return base * 2 ** exponent;
}

/**
 * A task that ran at least this long before ending is considered to have been healthy: failures
 * before it no longer count towards the back-off (Kubernetes resets after twice its maximum).
 */
export function backoffResetAfterMs(policy: RestartPolicy | undefined): number {
  return 2 * maxRestartDelayMs(policy);
}
