// Summary figures over benchmark samples, defined once so every bench reports the same thing.

const ascending = (samples: readonly number[]): number[] => [...samples].sort((a, b) => a - b);

/**
 * The p-th percentile (0 < p <= 100) by nearest rank: the smallest sample such that at least p% of
 * the samples are at or below it. It is always one of the samples. NaN when there are none.
 */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = ascending(samples);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** The middle sample, or the mean of the two middle ones for an even count. NaN when there are none. */
export function median(samples: readonly number[]): number {
  const sorted = ascending(samples);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}
