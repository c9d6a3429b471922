import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  activityFailure,
  activityTriggerValue,
  orchestratorFailureMessage,
  processedInputToJson,
  retryDelayMs,
  walkActions,
} from "../../src/durable/actions.js";
import { renderHistory, events } from "../../src/durable/history.js";
import { MAX_TIMEOUT_MS, TimerScheduler } from "../../src/durable/scheduler.js";
import { InstanceStore, instanceFileName } from "../../src/durable/store.js";
import type { InstanceRecord } from "../../src/durable/types.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("durable timers beyond setTimeout's ceiling", () => {
  it("a 30-day timer sleeps in chunks and fires on time, not at once", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const s = new TimerScheduler(() => Date.now());
    const fired: number[] = [];
    const day = 24 * 3600 * 1000;
    const due = Date.now() + 30 * day;
    s.schedule("t", due, () => fired.push(Date.now()));
    vi.advanceTimersByTime(MAX_TIMEOUT_MS + 10); // past the first chunk (~24.8 days)
    expect(fired).toEqual([]);
    expect(s.has("t")).toBe(true);
    vi.advanceTimersByTime(due - Date.now() - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([due]);
    expect(s.size).toBe(0);
  });

  it("a due time in the past fires on the next turn; cancel and re-schedule replace the timer", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const s = new TimerScheduler(() => Date.now());
    const fired: string[] = [];
    s.schedule("late", Date.now() - 5000, () => fired.push("late"));
    s.schedule("x", Date.now() + 100, () => fired.push("x1"));
    s.schedule("x", Date.now() + 200, () => fired.push("x2"));
    s.schedule("gone", Date.now() + 50, () => fired.push("gone"));
    s.cancel("gone");
    vi.advanceTimersByTime(0);
    expect(fired).toEqual(["late"]);
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual(["late", "x2"]);
  });

  it("a clock moved forward by hand: recheck() fires what is now due, once, and leaves the rest armed", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    let offset = 0;
    const s = new TimerScheduler(() => Date.now() + offset);
    const fired: string[] = [];
    const hour = 3600 * 1000;
    s.schedule("overlap", Date.now() + hour, () => fired.push("overlap"));
    s.schedule("later", Date.now() + 3 * hour, () => fired.push("later"));
    offset += hour; // the clock jumps; the armed setTimeout alone would still wait an hour of real time
    vi.advanceTimersByTime(0);
    expect(fired).toEqual([]);
    s.recheck();
    s.recheck();
    vi.advanceTimersByTime(0);
    expect(fired).toEqual(["overlap"]);
    expect(s.has("later")).toBe(true);
    vi.advanceTimersByTime(2 * hour - 1);
    expect(fired).toEqual(["overlap"]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["overlap", "later"]);
    expect(s.size).toBe(0);
  });
});

function record(id: string, extra: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    v: 1,
    instanceId: id,
    name: "o",
    version: "",
    executionId: "e",
    status: "Running",
    createdTime: new Date(0).toISOString(),
    lastUpdatedTime: new Date(0).toISOString(),
    input: null,
    output: null,
    customStatus: null,
    history: [],
    inbox: [],
    leaves: [],
    nextId: 0,
    pending: {},
    retries: [],
    lastStartedAt: 0,
    ...extra,
  };
}

describe("instance store", () => {
  it("writes atomically, coalesces bursts, reloads, removes, and ignores junk", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "aigov-durable-store-"));
    const warnings: string[] = [];
    const store = new InstanceStore(dir, (_l, m) => warnings.push(m));
    const rec = record("parent:1/odd id?");
    const saves: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      rec.nextId = i;
      saves.push(store.save(rec));
    }
    await Promise.all(saves);
    const file = store.fileOf(rec.instanceId);
    expect(path.basename(file)).toBe(instanceFileName(rec.instanceId));
    expect(path.basename(file)).toMatch(/^parent_1_odd_id_~[0-9a-f]{16}\.json$/);
    expect(JSON.parse(readFileSync(file, "utf8")).nextId).toBe(49);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    // Case-only differences do not collide (case-insensitive file systems).
    await store.save(record("ABC"));
    await store.save(record("abc"));
    writeFileSync(path.join(dir, "broken.json"), "{not json");
    writeFileSync(path.join(dir, "left-over.json.123.tmp"), "partial");
    const loaded = await new InstanceStore(dir, (_l, m) => warnings.push(m)).loadAll();
    expect(loaded.map((r) => r.instanceId).sort()).toEqual(["ABC", "abc", "parent:1/odd id?"]);
    expect(warnings.some((w) => w.includes("broken.json"))).toBe(true);
    expect(existsSync(path.join(dir, "left-over.json.123.tmp"))).toBe(false);

    await store.remove(rec);
    expect(existsSync(file)).toBe(false);
    await store.flush();
  });
});

describe("action and payload helpers", () => {
  it("walks WhenAll/WhenAny depth-first, drops repeated action objects, finds continueAsNew", () => {
    const a = { actionType: 0, functionName: "a", input: '"x"' };
    const b = { actionType: 0, functionName: "b" };
    const timer = { actionType: 5, fireAt: new Date(0), isCanceled: false };
    const ev = { actionType: 6, externalEventName: "Go", reason: "ExternalEvent" };
    const can = { actionType: 4, input: 1 };
    const w = walkActions([[a, { actionType: 12, compoundActions: [a, b] }, { actionType: 11, compoundActions: [ev, timer] }, can]]);
    expect(w.leaves).toEqual([a, b, ev, timer]);
    expect(w.continueAsNew).toBe(can);
  });

  it("undoes the library's double encoding of string inputs", () => {
    expect(processedInputToJson('"plain string"')).toBe('"plain string"');
    expect(processedInputToJson({ x: 1 })).toBe('{"x":1}');
    expect(processedInputToJson(42)).toBe("42");
    expect(processedInputToJson(null)).toBe("null");
    expect(processedInputToJson(undefined)).toBeUndefined();
    // What the host must send so that the worker-side tryJsonParse yields the original value.
    expect(activityTriggerValue('"42"')).toBe('"42"');
    expect(activityTriggerValue("42")).toBe(42);
    expect(activityTriggerValue('{"a":1}')).toEqual({ a: 1 });
    expect(activityTriggerValue(undefined)).toBeUndefined();
  });

  it("takes the orchestrator's failure from state.error (the message prefix is literally 'false')", () => {
    const state = { isDone: false, actions: [[]], error: "boom", schemaVersion: 1 };
    const err = new Error(`false\n\n$OutOfProcData$:${JSON.stringify(state)}`);
    expect(orchestratorFailureMessage(err)).toEqual({ message: "boom", state });
    expect(orchestratorFailureMessage(new Error("plain")).message).toBe("plain");
  });

  it("activity failures: Reason/Details, or FailureDetails from an exception-properties provider", () => {
    const plain = activityFailure("act", new Error("nope"));
    expect(plain.reason).toBe("Activity function 'act' failed: nope");
    expect(plain.details).toContain("Error: nope");
    expect(plain.failureDetails).toBeUndefined();
    const withProps = activityFailure(
      "act",
      new Error(JSON.stringify({ errorType: "TypeError", errorMessage: "bad", isNonRetriable: false, properties: { code: 7 } })),
    );
    expect(withProps.failureDetails).toEqual({ ErrorType: "TypeError", ErrorMessage: "bad", StackTrace: null, IsNonRetriable: false, Properties: { code: 7 } });
  });

  it("retry delays: first × coefficient^(n-1), capped", () => {
    const p = { firstRetryIntervalInMilliseconds: 100, maxNumberOfAttempts: 5, backoffCoefficient: 3, maxRetryIntervalInMilliseconds: 500 };
    expect([1, 2, 3, 4].map((n) => retryDelayMs(p, n))).toEqual([100, 300, 500, 500]);
    expect(retryDelayMs({ firstRetryIntervalInMilliseconds: 250, maxNumberOfAttempts: 2 }, 3)).toBe(250);
  });

  it("renders history for the status API like the extension", () => {
    const ts = "2025-01-01T00:00:00.000Z";
    const h = [
      events.orchestratorStarted(ts),
      events.executionStarted(ts, { name: "o", version: "", input: "1", instanceId: "i", executionId: "e" }),
      events.taskScheduled(ts, 0, "act", '"in"'),
      events.orchestratorCompleted(ts),
      events.orchestratorStarted(ts),
      events.taskCompleted("2025-01-01T00:00:01.000Z", 0, '{"r":1}'),
      events.executionCompleted(ts, "Completed", '"done"'),
      events.orchestratorCompleted(ts),
    ];
    expect(renderHistory(h, true)).toEqual([
      { EventType: "ExecutionStarted", Timestamp: ts, FunctionName: "o" },
      { EventType: "TaskCompleted", Timestamp: "2025-01-01T00:00:01.000Z", Result: { r: 1 }, ScheduledTime: ts, FunctionName: "act" },
      { EventType: "ExecutionCompleted", Timestamp: ts, OrchestrationStatus: "Completed", Result: "done" },
    ]);
    expect(renderHistory(h, false)[1]).not.toHaveProperty("Result");
  });
});
