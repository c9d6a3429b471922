import { describe, expect, it } from "vitest";
import {
  TimerScheduleError,
  buildTimerPayload,
  createTimerSchedule,
  parseTimeSpan,
  resolveAppSettingReferences,
} from "../../src/timers.js";

describe("timer schedules", () => {
  it("resolves %Setting% references from the environment", () => {
    expect(resolveAppSettingReferences("%S%", { S: "0 */5 * * * *" })).toBe("0 */5 * * * *");
    expect(resolveAppSettingReferences("0 %M% * * * *", { M: "*/2" })).toBe("0 */2 * * * *");
    expect(() => resolveAppSettingReferences("%MISSING_SETTING_X%", {})).toThrow(TimerScheduleError);
  });

  it("computes NCRONTAB occurrences in UTC with seconds first", () => {
    const s = createTimerSchedule("0 */5 * * * *");
    try {
      expect(s.kind).toBe("cron");
      expect(s.nextRun(new Date("2025-01-10T10:02:30Z"))?.toISOString()).toBe("2025-01-10T10:05:00.000Z");
      expect(s.nextRun(new Date("2025-01-10T10:05:00Z"))?.toISOString()).toBe("2025-01-10T10:10:00.000Z");
    } finally {
      s.stop();
    }
    const daily = createTimerSchedule("30 15 9 * * MON-FRI");
    // Saturday 2025-01-11 → Monday 2025-01-13
    expect(daily.nextRun(new Date("2025-01-11T00:00:00Z"))?.toISOString()).toBe("2025-01-13T09:15:30.000Z");
    daily.stop();
    // Day-of-month AND day-of-week, as NCrontab: the next 1st of a month that is a Monday.
    const both = createTimerSchedule("0 0 0 1 * MON");
    expect(both.nextRun(new Date("2025-01-01T00:00:00Z"))?.toISOString()).toBe("2025-09-01T00:00:00.000Z");
    both.stop();
  });

  it("rejects invalid schedules and understands TimeSpan schedules", () => {
    expect(() => createTimerSchedule("every minute")).toThrow(TimerScheduleError);
    expect(parseTimeSpan("00:05:00")).toBe(300_000);
    expect(parseTimeSpan("1.00:00:00")).toBe(86_400_000);
    expect(parseTimeSpan("0 */5 * * * *")).toBeNull();
    const s = createTimerSchedule("00:00:10");
    expect(s.kind).toBe("interval");
    s.stop();
  });

  it("fires on schedule and stops", async () => {
    const s = createTimerSchedule("* * * * * *");
    const fired: Date[] = [];
    s.start((at) => fired.push(at));
    await new Promise((r) => setTimeout(r, 1300));
    s.stop();
    const n = fired.length;
    expect(n).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 1100));
    expect(fired.length).toBe(n);
  });

  it("builds the host's PascalCase timer payload", () => {
    const p = buildTimerPayload({
      last: new Date("2025-01-01T00:00:00Z"),
      next: new Date("2025-01-01T00:01:00Z"),
      lastUpdated: new Date("2025-01-01T00:00:01Z"),
    });
    expect(p).toEqual({
      Schedule: { AdjustForDST: true },
      ScheduleStatus: {
        Last: "2025-01-01T00:00:00.000Z",
        Next: "2025-01-01T00:01:00.000Z",
        LastUpdated: "2025-01-01T00:00:01.000Z",
      },
      IsPastDue: false,
    });
  });
});
