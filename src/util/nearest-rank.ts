/** The nearest-rank percentile (`p` in 0..1) of values sorted ascending; null when there are none. */
export const nearestRank = (sorted: readonly number[], p: number): number | null => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)]! : null);
