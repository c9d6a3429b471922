/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the fixture app are read loosely */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventType } from "../../src/durable/index.js";
import { type DurableTestHost, fixtureCounter, startDurableTestHost } from "./support.js";

let t: DurableTestHost;

beforeAll(async () => {
  t = await startDurableTestHost();
});

afterAll(async () => {
  await t?.close();
});

/** Starts through the fixture's HTTP starter (client.startNew + createCheckStatusResponse). */
async function start(name: string, input?: unknown, id?: string): Promise<{ id: string; body: any; headers: Headers }> {
  const r = await t.post(`/api/durable/start/${name}${id ? `/${encodeURIComponent(id)}` : ""}`, input);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return { id: r.body.id, body: r.body, headers: r.headers };
}

/** A call to the durable HTTP API with the host's system key, as Azure requires. */
function hook(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), "x-functions-key": t.engine.systemKey } });
}

async function statusOf(id: string, qs = ""): Promise<any> {
  const r = await t.get(`/api/durable/status/${encodeURIComponent(id)}${qs}`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

async function waitDone(id: string, timeoutMs = 8000): Promise<any> {
  await t.engine.waitForStatus(id, ["Completed", "Failed", "Terminated"], timeoutMs);
  return statusOf(id);
}

async function waitFor<T>(probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("durable client binding and HTTP API", () => {
  it("createCheckStatusResponse points at the local webhook and the status endpoint answers", async () => {
    const s = await start("waiter", undefined, "binding-check");
    expect(s.body).toMatchObject({
      id: "binding-check",
      statusQueryGetUri: `${t.url}/runtime/webhooks/durabletask/instances/binding-check?taskHub=aigov&connection=Storage&code=${t.engine.systemKey}`,
      sendEventPostUri: `${t.url}/runtime/webhooks/durabletask/instances/binding-check/raiseEvent/{eventName}?taskHub=aigov&connection=Storage&code=${t.engine.systemKey}`,
      terminatePostUri: expect.stringContaining("/instances/binding-check/terminate?reason={text}&taskHub=aigov"),
      purgeHistoryDeleteUri: expect.stringContaining("/instances/binding-check?taskHub=aigov"),
    });
    expect(s.headers.get("location")).toBe(s.body.statusQueryGetUri);
    expect(s.headers.get("retry-after")).toBe("10");

    // The raw webhook, as a browser following Location would see it.
    const running = await waitFor(() => fetch(s.body.statusQueryGetUri), (r) => r.status === 202);
    expect(running.status).toBe(202);
    expect(running.headers.get("retry-after")).toBe("5");
    const body = (await running.json()) as any;
    expect(body).toEqual({
      name: "waiter",
      instanceId: "binding-check",
      runtimeStatus: "Running",
      // The client posts JSON.stringify(undefined) ?? "" and axios turns "" into '""'.
      input: "",
      customStatus: null,
      output: null,
      createdTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      lastUpdatedTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    });
    // Event through sendEventPostUri (410 once finished).
    const send = s.body.sendEventPostUri.replace("{eventName}", "Go");
    const raised = await fetch(send, { method: "POST", headers: { "content-type": "application/json" }, body: '"via webhook"' });
    expect(raised.status).toBe(202);
    expect((await waitDone("binding-check")).output).toEqual({ got: "via webhook" });
    const late = await fetch(send, { method: "POST", headers: { "content-type": "application/json" }, body: "1" });
    expect(late.status).toBe(410);

    const payload = await t.get("/api/durable/payload/binding-check");
    expect(payload.body.statusQueryGetUri).toBe(`${t.url}/runtime/webhooks/durabletask/instances/binding-check?taskHub=aigov&connection=Storage&code=${t.engine.systemKey}`);
  });

  it("answers the extension's error codes", async () => {
    const base = `${t.url}/runtime/webhooks/durabletask`;
    expect((await hook(`${base}/instances/nope`)).status).toBe(404);
    expect((await hook(`${base}/orchestrators/noSuchOrchestrator`, { method: "POST" })).status).toBe(400);
    const badJson = await hook(`${base}/orchestrators/waiter`, { method: "POST", body: "{not json" });
    expect(badJson.status).toBe(400);
    expect((await hook(`${base}/instances/nope/raiseEvent/x`, { method: "POST", headers: { "content-type": "application/json" }, body: "1" })).status).toBe(404);
    expect((await hook(`${base}/instances/nope/terminate?reason=x`, { method: "POST" })).status).toBe(404);
    expect((await hook(`${base}/entities/counter/one`)).status).toBe(501);

    // Start twice with the same id while running: 409; raise with a non-JSON content type: 400.
    await start("waiter", undefined, "dup-id");
    expect((await hook(`${base}/orchestrators/waiter/dup-id`, { method: "POST" })).status).toBe(409);
    const textRaise = await hook(`${base}/instances/dup-id/raiseEvent/Go`, { method: "POST", headers: { "content-type": "text/plain" }, body: "1" });
    expect(textRaise.status).toBe(400);
    // Purging a running instance: 412.
    expect((await hook(`${base}/instances/dup-id`, { method: "DELETE" })).status).toBe(412);
    expect((await t.post("/api/durable/terminate/dup-id?reason=cleanup")).status).toBe(202);
    await waitDone("dup-id");
    // Through the client: unknown ids.
    const missing = await t.post("/api/durable/raise/nope/Go", 1);
    expect(missing.body.error).toBe("No instance with ID 'nope' found.");
    const missingStatus = await t.get("/api/durable/status/nope");
    expect(missingStatus.body.error).toContain("HTTP 404");
    const unknownFn = await t.post("/api/durable/start/noSuchOrchestrator");
    expect(unknownFn.status).toBe(500);
    expect(unknownFn.body.error).toContain("400");
  });
});

describe("orchestrations", () => {
  it("activity + durable timer + external event before the timeout (Task.any, timer cancelled)", async () => {
    const { id } = await start("approval", { order: "A-1", items: 3, delayMs: 150, timeoutMs: 20_000, holdUntilDone: true });
    const prepared = await waitFor(() => statusOf(id), (s) => s.customStatus?.stage === "waiting-for-approval");
    expect(prepared).toMatchObject({ runtimeStatus: "Running", input: { order: "A-1", items: 3 } });
    expect(t.engine.stats().armedTimers).toBe(1); // the 20 s timeout
    const raised = await t.post(`/api/durable/raise/${id}/Approve`, { by: "alice" });
    expect(raised.status).toBe(202);
    await waitFor(() => statusOf(id), (s) => s.customStatus?.stage === "decided");
    // timeout.cancel() reached the engine: the still-running instance has no armed timer left.
    expect(t.engine.stats().armedTimers).toBe(0);
    expect(t.engine.getStatus(id)).toMatchObject({ runtimeStatus: "Running" });
    await t.post(`/api/durable/raise/${id}/Done`, true);
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Completed");
    expect(done.output).toMatchObject({
      prep: { prepared: "A-1", items: 3 },
      decision: "approved by alice",
      summary: "echo:string:A-1: approved by alice",
    });
    expect(done.output.guid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // "decision reached" is logged once: later replays see isReplaying=true.
    expect(t.logs.filter((l) => l.message.includes(`decision reached for ${id}`))).toHaveLength(1);

    // History through the client (showHistory): folded like the extension does.
    const raw = await hook(`${t.url}/runtime/webhooks/durabletask/instances/${id}?showHistory=true&showHistoryOutput=true`);
    const withHistory = (await raw.json()) as any;
    const types = withHistory.historyEvents.map((e: any) => e.EventType);
    expect(types[0]).toBe("ExecutionStarted");
    expect(types).toContain("TimerCreated");
    expect(types).toContain("EventRaised");
    expect(types).not.toContain("OrchestratorStarted");
    expect(types).not.toContain("TaskScheduled");
    const prepStep = withHistory.historyEvents.find((e: any) => e.EventType === "TaskCompleted");
    expect(prepStep).toMatchObject({ FunctionName: "prepare", Result: { prepared: "A-1", items: 3 } });
    expect(withHistory.historyEvents.at(-1)).toMatchObject({ EventType: "ExecutionCompleted", OrchestrationStatus: "Completed" });
  });

  it("the timeout wins when no event arrives", async () => {
    const { id } = await start("approval", { order: "B-2", delayMs: 10, timeoutMs: 200 });
    const done = await waitDone(id);
    expect(done.output).toMatchObject({ decision: "timed out", summary: "echo:string:B-2: timed out" });
    const late = await t.post(`/api/durable/raise/${id}/Approve`, { by: "too late" });
    expect(late.status).toBe(202); // the client resolves on 410
  });

  it("fan-out/fan-in with Task.all; a task yielded twice keeps its own result; inputs are not double-encoded", async () => {
    const r = await t.post("/api/durable/run/fanOut", [1, 2, 3, 4, 5]);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({
      both: ["echo:string:first", "echo:string:second"],
      squares: [1, 4, 9, 16, 25],
      sum: 55,
      kinds: ["echo:string:42", "echo:number:42", "echo:null:null", 'echo:object:{"a":[1,"x"]}'],
    });
  });

  it("callActivityWithRetry: succeeds on attempt 3 with backoff, and exhausts its attempts", async () => {
    const { id } = await start("retries");
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Completed");
    expect(done.output.ok).toEqual({ succeededOnAttempt: 3 });
    expect(done.output.exhausted).toContain("Activity function 'flaky' failed: flaky attempt 2 failed");
    expect(done.output.after).toBe("echo:string:after-retries");
    expect(fixtureCounter(`flaky:${id}:ok`)).toBe(3);
    expect(fixtureCounter(`flaky:${id}:bad`)).toBe(2);

    // Ids and timers as the notes describe: a retry timer after every failed attempt (also the last).
    const h = t.engine.getHistory(id)!;
    const seq = h
      .filter((e) => [EventType.TaskScheduled, EventType.TaskFailed, EventType.TaskCompleted, EventType.TimerCreated, EventType.TimerFired].includes(e.EventType as 4))
      .map((e) => {
        switch (e.EventType) {
          case EventType.TaskScheduled:
            return `S${e.EventId}`;
          case EventType.TaskFailed:
            return `F${e.TaskScheduledId}`;
          case EventType.TaskCompleted:
            return `C${e.TaskScheduledId}`;
          case EventType.TimerCreated:
            return `T${e.EventId}`;
          default:
            return `f${e.TimerId}`;
        }
      });
    expect(seq.join(" ")).toBe("S0 F0 T1 f1 S2 F2 T3 f3 S4 C4 S5 F5 T6 f6 S7 F7 T8 f8 S9 C9");
    // Backoff: 40 ms, then 80 ms (coefficient 2), measured from the episode's OrchestratorStarted.
    const delays: number[] = [];
    let startedAt = 0;
    for (const e of h) {
      if (e.EventType === EventType.OrchestratorStarted) startedAt = Date.parse(e.Timestamp);
      if (e.EventType === EventType.TimerCreated) delays.push(Date.parse(e.FireAt as string) - startedAt);
    }
    expect(delays).toEqual([40, 80, 30, 30]);
  });

  it("sub-orchestrations: generated and explicit ids, parallel, and a failing child", async () => {
    const { id } = await start("parent", undefined, "fam");
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Completed");
    expect(done.output.first).toEqual({ child: 3, sq: 9, parent: "fam", me: "fam:0" });
    expect(done.output.many).toEqual([
      { child: 4, sq: 16, parent: "fam", me: "fam:1" },
      { child: 5, sq: 25, parent: "fam", me: "fam-explicit" },
    ]);
    expect(done.output.childError).toContain("Sub-orchestration 'child' failed: child asked to fail");
    const failedChild = await statusOf("fam:3");
    expect(failedChild).toMatchObject({ runtimeStatus: "Failed", output: "Orchestrator function 'child' failed: child asked to fail" });
    expect(t.engine.getStatus("fam-explicit")).toMatchObject({ runtimeStatus: "Completed", parentInstanceId: "fam" });
  });

  it("continueAsNew runs a few rounds (object and string inputs)", async () => {
    const { id } = await start("counter");
    const done = await waitDone(id);
    expect(done).toMatchObject({
      runtimeStatus: "Completed",
      output: { round: 3, seen: ["echo:string:round 0", "echo:string:round 1", "echo:string:round 2"] },
      input: { round: 2, seen: ["echo:string:round 0", "echo:string:round 1"] },
    });
    const s = await t.post("/api/durable/run/counterStr");
    expect(s.body).toEqual({ s: "xxx", type: "string" });
  });

  it("terminate: Terminated with the reason as output; a second terminate is accepted (410)", async () => {
    const { id } = await start("waiter");
    await t.engine.waitForStatus(id, ["Running"], 5000);
    expect((await t.post(`/api/durable/terminate/${id}?reason=stopped%20by%20test`)).status).toBe(202);
    const done = await waitDone(id);
    expect(done).toMatchObject({ runtimeStatus: "Terminated", output: "stopped by test" });
    expect((await t.post(`/api/durable/terminate/${id}`)).status).toBe(202);
    const h = t.engine.getHistory(id)!;
    expect(h.some((e) => e.EventType === EventType.ExecutionTerminated && e.Input === "stopped by test")).toBe(true);
  });

  it("suspend holds events until resume", async () => {
    const { id } = await start("waiter");
    await t.engine.waitForStatus(id, ["Running"], 5000);
    expect((await t.post(`/api/durable/suspend/${id}`)).status).toBe(202);
    expect((await statusOf(id)).runtimeStatus).toBe("Suspended");
    await t.post(`/api/durable/raise/${id}/Go`, "held");
    await new Promise((r) => setTimeout(r, 100));
    expect((await statusOf(id)).runtimeStatus).toBe("Suspended");
    expect((await t.post(`/api/durable/resume/${id}`)).status).toBe(202);
    expect((await waitDone(id)).output).toEqual({ got: "held" });
  });

  it("buffers events raised before the orchestrator waits for them", async () => {
    const { id } = await start("lateWaiter");
    await t.post(`/api/durable/raise/${id}/Early`, "one");
    await t.post(`/api/durable/raise/${id}/Early`, "two");
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Completed");
    expect([...done.output].sort()).toEqual(["one", "two"]);
  });

  it("a non-deterministic orchestrator fails with the non-determinism error instead of hanging", async () => {
    const { id } = await start("nonDeterministic");
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Failed");
    expect(done.output).toBe(
      "Non-Deterministic workflow detected: action #0 was CallActivity('echo') when the orchestration ran before, but replay now yields CallActivity('square') there. Orchestrator code must be deterministic.",
    );
  });

  it("a replay that stops before the recorded actions is non-deterministic too", async () => {
    const { id } = await start("nonDeterministicEarly");
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Failed");
    expect(done.output).toBe(
      "Non-Deterministic workflow detected: action #0 was CallActivity('echo') when the orchestration ran before, but replay completed without yielding it. Orchestrator code must be deterministic.",
    );
  });

  it("callSubOrchestratorWithRetry: a new child per attempt, or the explicit id reused", async () => {
    const { id } = await start("subRetries", undefined, "subretry");
    const done = await waitDone(id);
    expect(done.runtimeStatus).toBe("Completed");
    expect(done.output.ok).toEqual({ attempt: 2, me: "subretry:2" });
    expect(done.output.exhausted).toContain("Sub-orchestration 'flakyChild' failed: child attempt 2 failed");
    expect(t.engine.getStatus("subretry:0")).toMatchObject({ runtimeStatus: "Failed", output: "Orchestrator function 'flakyChild' failed: child attempt 1 failed" });
    expect(t.engine.getStatus("subretry-fixed")).toMatchObject({ runtimeStatus: "Failed", output: "Orchestrator function 'flakyChild' failed: child attempt 2 failed" });
    expect(fixtureCounter("attempt:subretry:bad")).toBe(2);
  });

  it("an activity that does not exist fails its task with a clear reason", async () => {
    const r = await t.post("/api/durable/run/callsMissing");
    expect(r.body).toContain("The function 'noSuchActivity' doesn't exist");
  });

  it("activities run once per schedule (side-effect counter)", async () => {
    const { id } = await start("crashFlow", { key: "once" });
    await waitFor(() => statusOf(id), (s) => s.customStatus === "waiting");
    // More episodes (an unrelated event, then the awaited one) replay the activity without re-running it.
    await t.post(`/api/durable/raise/${id}/Unrelated`, 1);
    await t.post(`/api/durable/raise/${id}/Go`, "go");
    const done = await waitDone(id);
    expect(done.output).toEqual({ n: 1, go: "go" });
    expect(fixtureCounter("side:once")).toBe(1);
  });

  it("the webhook's create-and-wait and restart endpoints", async () => {
    const base = `${t.url}/runtime/webhooks/durabletask`;
    const waited = await hook(`${base}/orchestrators/fanOut?timeout=10&pollingInterval=1`, { method: "POST", body: "[6]" });
    expect(waited.status).toBe(200);
    expect(((await waited.json()) as any).squares).toEqual([36]);

    await start("counterStr", undefined, "to-restart");
    await waitDone("to-restart");
    const again = await hook(`${base}/instances/to-restart/restart?restartWithNewInstanceId=false`, { method: "POST" });
    expect(again.status).toBe(202);
    expect(((await again.json()) as any).id).toBe("to-restart");
    expect((await waitDone("to-restart")).output).toEqual({ s: "xxx", type: "string" });
    const fresh = await hook(`${base}/instances/to-restart/restart`, { method: "POST" });
    const freshId = ((await fresh.json()) as any).id;
    expect(freshId).toMatch(/^[0-9a-f]{32}$/);
    expect((await waitDone(freshId)).input).toBe("xxx");
  });

  it("rewind is reported as unsupported", async () => {
    const { id } = await start("nonDeterministic");
    await waitDone(id);
    const r = await t.post(`/api/durable/rewind/${id}`);
    expect(r.body.error).toContain("not supported");
  });
});

describe("queries and purge", () => {
  it("lists by runtimeStatus and createdTime, purges by id and by filter", async () => {
    const since = new Date(Date.now() - 1);
    const a = await start("counterStr");
    const b = await start("waiter");
    await waitDone(a.id);
    await t.engine.waitForStatus(b.id, ["Running"], 5000);

    const all = await t.get("/api/durable/list");
    expect(all.body.map((s: any) => s.instanceId)).toEqual(expect.arrayContaining([a.id, b.id]));
    const completed = await t.get(`/api/durable/list?status=Completed&from=${since.toISOString()}`);
    expect(completed.body.map((s: any) => s.instanceId)).toEqual([a.id]);
    const both = await t.get(`/api/durable/list?status=Completed,Running&from=${since.toISOString()}`);
    expect(both.body.map((s: any) => s.instanceId).sort()).toEqual([a.id, b.id].sort());
    expect(both.body.find((s: any) => s.instanceId === b.id)).toMatchObject({ name: "waiter", runtimeStatus: "Running", input: "", output: null });
    const none = await t.get(`/api/durable/list?to=${new Date(since.getTime() - 60_000).toISOString()}&from=2000-01-01T00:00:00Z`);
    expect(none.body.filter((s: any) => s.instanceId === a.id)).toEqual([]);

    // (The client only forwards showInput=false in URL-template mode, so ask the webhook directly.)
    const withInput = (await (await hook(`${t.url}/runtime/webhooks/durabletask/instances/${a.id}`)).json()) as any;
    expect(withInput.input).toBe("xxx");
    const withoutInput = (await (await hook(`${t.url}/runtime/webhooks/durabletask/instances/${a.id}?showInput=false`)).json()) as any;
    expect(withoutInput.input).toBeNull();

    expect((await t.del(`/api/durable/purge/${a.id}`)).body).toEqual({ instancesDeleted: 1 });
    expect((await t.del(`/api/durable/purge/${a.id}`)).body).toEqual({ instancesDeleted: 0 });
    expect(t.engine.getStatus(a.id)).toBeUndefined();

    await t.post(`/api/durable/raise/${b.id}/Go`, 1);
    await waitDone(b.id);
    const purged = await t.del(`/api/durable/purge?from=${since.toISOString()}&status=Completed`);
    expect(purged.body).toEqual({ instancesDeleted: 1 });
    expect((await t.del(`/api/durable/purge?from=${since.toISOString()}&status=Completed`)).body).toEqual({ instancesDeleted: 0 });
  });
});

describe("numbering self-check", () => {
  it("the engine's task ids matched the library's sequence numbers in every episode", () => {
    const s = t.engine.stats();
    expect(s.selfCheckFail).toBe(0);
    expect(s.selfCheckOk).toBeGreaterThan(20);
    expect(t.logs.filter((l) => l.message.includes("self-check failed"))).toEqual([]);
  });
});
