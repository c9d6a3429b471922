/** APIM's quota periods: fixed UTC windows (an ISO week starts on Monday). */
export type QuotaPeriod = "Hourly" | "Daily" | "Weekly" | "Monthly" | "Yearly";

/** The start (ms) of the period that holds `now`. */
export function periodStart(now: number, period: QuotaPeriod): number {
  const d = new Date(now);
  switch (period) {
    case "Hourly":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours());
    case "Daily":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case "Weekly": {
      // ISO weeks: Monday 00:00 UTC.
      const day = (d.getUTCDay() + 6) % 7;
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - day);
    }
    case "Monthly":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    case "Yearly":
      return Date.UTC(d.getUTCFullYear(), 0, 1);
  }
}

/** The end (ms, exclusive) of the period starting at `start`. */
export function periodEnd(start: number, period: QuotaPeriod): number {
  const d = new Date(start);
  switch (period) {
    case "Hourly":
      return start + 3_600_000;
    case "Daily":
      return start + 86_400_000;
    case "Weekly":
      return start + 7 * 86_400_000;
    case "Monthly":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    case "Yearly":
      return Date.UTC(d.getUTCFullYear() + 1, 0, 1);
  }
}
