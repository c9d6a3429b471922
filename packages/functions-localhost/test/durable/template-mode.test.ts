/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the fixture app are read loosely */
// The DurableClient without rpcBaseUrl fills in the binding's URL templates instead (older
// extensions); the same endpoints must serve it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DurableTestHost, startDurableTestHost } from "./support.js";

let t: DurableTestHost;

beforeAll(async () => {
  t = await startDurableTestHost({ useRpcBaseUrl: false, taskHub: "TemplateHub" });
});

afterAll(async () => {
  await t?.close();
});

describe("URL-template mode (no rpcBaseUrl)", () => {
  it("start, status (showInput=false), raise, list, terminate and purge work through the templates", async () => {
    const started = await t.post("/api/durable/start/waiter/tpl-1", { hello: "world" });
    expect(started.status).toBe(202);
    expect(started.body.statusQueryGetUri).toBe(`${t.url}/runtime/webhooks/durabletask/instances/tpl-1?taskHub=TemplateHub&connection=Storage&code=${t.engine.systemKey}`);
    await t.engine.waitForStatus("tpl-1", ["Running"], 5000);

    const withInput = await t.get("/api/durable/status/tpl-1");
    expect(withInput.body).toMatchObject({ instanceId: "tpl-1", runtimeStatus: "Running", input: { hello: "world" } });
    const noInput = await t.get("/api/durable/status/tpl-1?showInput=false");
    expect(noInput.body.input).toBeNull();

    expect((await t.post("/api/durable/raise/tpl-1/Go", { n: 1 })).status).toBe(202);
    const done = await t.engine.waitForStatus("tpl-1", ["Completed"], 5000);
    expect(done.output).toEqual({ got: { n: 1 } });

    await t.post("/api/durable/start/waiter/tpl-2");
    await t.engine.waitForStatus("tpl-2", ["Running"], 5000);
    const listed = await t.get("/api/durable/list?status=Running");
    expect(listed.body.map((s: any) => s.instanceId)).toEqual(["tpl-2"]);
    expect((await t.post("/api/durable/terminate/tpl-2?reason=template%20stop")).status).toBe(202);
    expect(await t.engine.waitForStatus("tpl-2", ["Terminated"], 5000)).toMatchObject({ output: "template stop" });

    expect((await t.del("/api/durable/purge/tpl-1")).body).toEqual({ instancesDeleted: 1 });
    expect((await t.del(`/api/durable/purge?from=2000-01-01T00:00:00Z&status=Terminated`)).body).toEqual({ instancesDeleted: 1 });
    expect((await t.get("/api/durable/list")).body).toEqual([]);
  });

  it("waitForCompletionOrCreateCheckStatusResponse returns the output when done in time", async () => {
    const r = await t.post("/api/durable/run/fanOut", [2, 3]);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ squares: [4, 9], sum: 13 });
  });
});
