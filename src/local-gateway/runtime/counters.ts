/**
 * Limit counters of one gateway instance (APIM keeps them per gateway too; regional and self-hosted
 * gateways do not aggregate). Sliding windows for rates (tokens per minute, calls per renewal period)
 * and fixed UTC windows for quotas ("a fixed window that starts at the UTC time truncated to the
 * unit"). In memory: a restart of the local gateway starts every counter from zero.
 */
import { periodEnd, periodStart, type QuotaPeriod } from "../../util/periods.js";

export { periodStart, type QuotaPeriod };

export class Counters {
  private readonly sliding = new Map<string, { t: number; n: number }[]>();
  private readonly fixed = new Map<string, { start: number; used: number }>();

  constructor(private readonly now: () => number) {}

  /** Units counted in the last `windowMs` under `key`. */
  slidingUsed(key: string, windowMs: number): number {
    return this.events(key, windowMs).reduce((s, e) => s + e.n, 0);
  }

  slidingAdd(key: string, n: number): void {
    if (n <= 0) return;
    const list = this.sliding.get(key) ?? [];
    list.push({ t: this.now(), n });
    this.sliding.set(key, list);
  }

  /** Whole seconds until the window holds less than `limit` (at least 1). */
  slidingRetryAfter(key: string, windowMs: number, limit: number): number {
    const events = this.events(key, windowMs);
    let used = events.reduce((s, e) => s + e.n, 0);
    const now = this.now();
    for (const e of events) {
      if (used < limit) break;
      used -= e.n;
      if (used < limit) return Math.max(1, Math.ceil((e.t + windowMs - now) / 1000));
    }
    return Math.max(1, Math.ceil(windowMs / 1000));
  }

  private events(key: string, windowMs: number): { t: number; n: number }[] {
    const list = this.sliding.get(key);
    if (!list) return [];
    const from = this.now() - windowMs;
    let i = 0;
    while (i < list.length && list[i]!.t <= from) i++;
    if (i) list.splice(0, i);
    return list;
  }

  quotaUsed(key: string, period: QuotaPeriod): { used: number; resetsInSeconds: number } {
    const start = periodStart(this.now(), period);
    const entry = this.fixed.get(`${period}|${key}`);
    const used = entry && entry.start === start ? entry.used : 0;
    return { used, resetsInSeconds: Math.max(1, Math.ceil((periodEnd(start, period) - this.now()) / 1000)) };
  }

  quotaAdd(key: string, period: QuotaPeriod, n: number): void {
    if (n <= 0) return;
    const start = periodStart(this.now(), period);
    const k = `${period}|${key}`;
    const entry = this.fixed.get(k);
    if (entry && entry.start === start) entry.used += n;
    else this.fixed.set(k, { start, used: n });
  }
}
