import { describe, expect, it } from "vitest";
import { occurrenceStart } from "../../src/domain/reviews/schema.js";
import { recommend } from "../../src/domain/reviews/targets.js";

const DAY = 86_400_000;
const now = Date.parse("2026-12-04T12:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const old = iso(now - 90 * DAY);

describe("access review recommendations (evaluated once, at the campaign's start)", () => {
  // Usage recorded for 100 days and ingested up to now.
  const covered = { since: iso(now - 100 * DAY), through: iso(now) };

  it("recommends removing access unused for the look-back window, keeping access used within it", () => {
    expect(recommend({ targetId: "k", label: "k", since: old }, now, 30, covered)).toMatchObject({ recommendation: "remove", recommendationReason: "not used through the gateway in the last 30 days" });
    expect(recommend({ targetId: "k", label: "k", since: old, lastActivityAt: iso(now - 31 * DAY) }, now, 30, covered).recommendation).toBe("remove");
    expect(recommend({ targetId: "k", label: "k", since: old, lastActivityAt: iso(now - 29 * DAY) }, now, 30, covered).recommendation).toBe("keep");
    // The window is the campaign's: 7 days makes a 10-day-old use stale.
    expect(recommend({ targetId: "k", label: "k", since: old, lastActivityAt: iso(now - 10 * DAY) }, now, 7, covered).recommendation).toBe("remove");
  });

  it("gives no recommendation without a signal: access newer than the window, no usage ingested, or usage older than the window", () => {
    expect(recommend({ targetId: "k", label: "k", since: iso(now - 5 * DAY) }, now, 30, covered).recommendation).toBe("none");
    expect(recommend({ targetId: "k", label: "k", since: old }, now, 30, undefined)).toMatchObject({ recommendation: "none", recommendationReason: "no gateway usage has been ingested yet" });
    expect(recommend({ targetId: "k", label: "k", since: old }, now, 30, { since: covered.since, through: iso(now - 40 * DAY) }).recommendation).toBe("none");
  });

  it("does not read 'never seen' as 'unused' where the data does not reach back over the whole window", () => {
    // Recording began 10 days ago (a new activity field, a new deployment): nothing is known before.
    const recent = { since: iso(now - 10 * DAY), through: iso(now) };
    expect(recommend({ targetId: "k", label: "k", since: old }, now, 30, recent)).toMatchObject({ recommendation: "none" });
    expect(recommend({ targetId: "k", label: "k", since: old, lastActivityAt: iso(now - 2 * DAY) }, now, 30, recent).recommendation).toBe("keep");
  });
});

describe("recurring reviews", () => {
  it("start one period on, calendar months keeping the day or the month's last day", () => {
    expect(occurrenceStart("2026-12-04T09:00:00.000Z", "weekly", 1)).toBe("2026-12-11T09:00:00.000Z");
    expect(occurrenceStart("2026-01-31T09:00:00.000Z", "monthly", 1)).toBe("2026-02-28T09:00:00.000Z");
    expect(occurrenceStart("2026-11-30T09:00:00.000Z", "quarterly", 1)).toBe("2027-02-28T09:00:00.000Z");
    expect(occurrenceStart("2028-08-31T00:00:00.000Z", "semiannual", 1)).toBe("2029-02-28T00:00:00.000Z");
    expect(occurrenceStart("2028-02-29T00:00:00.000Z", "annual", 1)).toBe("2029-02-28T00:00:00.000Z");
  });

  it("count every occurrence from the series' first start: a short month never moves the later ones", () => {
    const months = [1, 2, 3, 4, 6, 7].map((n) => occurrenceStart("2026-01-31T09:00:00.000Z", "monthly", n));
    expect(months).toEqual(["2026-02-28T09:00:00.000Z", "2026-03-31T09:00:00.000Z", "2026-04-30T09:00:00.000Z", "2026-05-31T09:00:00.000Z", "2026-07-31T09:00:00.000Z", "2026-08-31T09:00:00.000Z"]);
    expect([1, 2, 3].map((n) => occurrenceStart("2026-08-31T00:00:00.000Z", "quarterly", n))).toEqual(["2026-11-30T00:00:00.000Z", "2027-02-28T00:00:00.000Z", "2027-05-31T00:00:00.000Z"]);
    expect(occurrenceStart("2026-12-04T09:00:00.000Z", "weekly", 3)).toBe("2026-12-25T09:00:00.000Z");
  });
});
