/**
 * Usage metrics of a set of gateway requests, and how they add up. Latencies are kept as sparse
 * histograms with bins growing 10% each (bin b holds (1.1^(b-1), 1.1^b] ms), so buckets merge exactly
 * (minute → hour → day → any range) and a percentile read from them is within 10% of the exact one.
 */

export const ERROR_CLASSES = ["auth", "scope", "limit", "contentSafety", "request", "backend", "gateway"] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

/** Sparse histogram: bin → count. */
export type Histogram = Record<string, number>;

export interface UsageMetrics {
  requests: number;
  /** 2xx and 3xx answers. */
  succeeded: number;
  errors: Partial<Record<ErrorClass, number>>;
  /** 503s of a backend whose circuit breaker was open. */
  circuitOpen: number;
  promptTokens: number;
  completionTokens: number;
  /** In the row's currency, at the price in force when each request was made; tokens of unpriced models are counted apart. */
  cost: number;
  unpricedTokens: number;
  /** Requests that looked in the semantic cache, and those answered from it. */
  cacheLookups: number;
  cacheHits: number;
  gatewayMs: Histogram;
  backendMs: Histogram;
  /** TimeGenerated of the latest request counted. */
  lastAt: string;
  /** The earliest request counted (absent in rows written before it was kept). */
  firstAt?: string;
}

export function emptyMetrics(): UsageMetrics {
  return { requests: 0, succeeded: 0, errors: {}, circuitOpen: 0, promptTokens: 0, completionTokens: 0, cost: 0, unpricedTokens: 0, cacheLookups: 0, cacheHits: 0, gatewayMs: {}, backendMs: {}, lastAt: "" };
}

const GROWTH = Math.log(1.1);
export function latencyBin(ms: number): number {
  return ms <= 1 ? 0 : Math.ceil(Math.log(ms) / GROWTH - 1e-9);
}
const binUpper = (bin: number) => (bin === 0 ? 1 : Math.pow(1.1, bin));

export function addTo(h: Histogram, ms: number): void {
  const b = String(latencyBin(ms));
  h[b] = (h[b] ?? 0) + 1;
}

/** Adds `b` into `a` (costs and counts sum, histograms merge, lastAt the later, firstAt the earlier). */
export function mergeInto(a: UsageMetrics, b: UsageMetrics): UsageMetrics {
  a.requests += b.requests;
  a.succeeded += b.succeeded;
  for (const [k, v] of Object.entries(b.errors) as [ErrorClass, number][]) a.errors[k] = (a.errors[k] ?? 0) + v;
  a.circuitOpen += b.circuitOpen;
  a.promptTokens += b.promptTokens;
  a.completionTokens += b.completionTokens;
  a.cost += b.cost;
  a.unpricedTokens += b.unpricedTokens;
  a.cacheLookups += b.cacheLookups;
  a.cacheHits += b.cacheHits;
  for (const [k, v] of Object.entries(b.gatewayMs)) a.gatewayMs[k] = (a.gatewayMs[k] ?? 0) + v;
  for (const [k, v] of Object.entries(b.backendMs)) a.backendMs[k] = (a.backendMs[k] ?? 0) + v;
  if (b.lastAt > a.lastAt) a.lastAt = b.lastAt;
  if (b.firstAt && (!a.firstAt || b.firstAt < a.firstAt)) a.firstAt = b.firstAt;
  return a;
}

/** The p-th percentile (0 < p ≤ 100) in ms: the upper edge of the bin it falls in (undefined when empty). */
export function percentile(h: Histogram, p: number): number | undefined {
  const bins = Object.entries(h)
    .map(([k, v]) => [Number(k), v] as const)
    .sort((x, y) => x[0] - y[0]);
  const total = bins.reduce((s, [, v]) => s + v, 0);
  if (!total) return undefined;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (const [bin, count] of bins) {
    seen += count;
    if (seen >= rank) return Math.round(binUpper(bin) * 10) / 10;
  }
  return undefined;
}

/**
 * The class of a refused or failed request, from the gateway log's own columns (ADR 016): the key
 * check (401), a governance refusal (403: a return-response, which sets no error; revisions before
 * December 2026 refused a data class with check-header: HeaderNotFound or HeaderValueNotAllowed), a limit
 * (rate-limit, llm-token-limit, quota: 429, or 403 for a spent quota), content safety, other client
 * errors, a backend's failure (its 5xx, an unreachable or circuit-open backend, a 401 refusing the
 * gateway's credential, which the caller gets as 502) and the gateway's own.
 */
export function errorClass(status: number, reason: string, backendStatus: number): ErrorClass | undefined {
  if (status < 400) return undefined;
  if (/^ContentSafety/.test(reason)) return "contentSafety";
  if (status === 429 || /^(RateLimitExceeded|QuotaExceeded|TokenLimitExceeded|TokenQuotaExceeded)$/.test(reason)) return "limit";
  if (status === 401) return "auth";
  // A data class refused is governance too (revisions before December 2026 compiled it as check-header:
  // HeaderNotFound, HeaderValueNotAllowed).
  if (status === 403) return !reason || reason === "HeaderNotFound" || reason === "HeaderValueNotAllowed" ? "scope" : "request";
  if (status < 500) return "request";
  if (backendStatus >= 500 || backendStatus === 401 || /^(BackendUnavailable|BackendConnectionFailure|Timeout)$/.test(reason)) return "backend";
  return "gateway";
}
