/**
 * Conformance: a publish that needs longer than one activity may run (the host's function timeout) is
 * sent in steps, each resuming where the last stopped. PUBLISH_SLICE_SECONDS=0 makes every step send
 * one artifact: the gateway still ends serving exactly what one step would have left, and a change
 * published that way is enforced.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import type { Revision } from "../../src/domain/publishing/schema.js";
import { startTestApp } from "../support/app.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let project: Project;

beforeAll(async () => {
  process.env.PUBLISH_SLICE_SECONDS = "0";
  g = await Governed.start("t-slices", await startTestApp());
  dev = await g.as("dora", ["Developer"]);
  project = await g.project("sliced");
  await g.model(project.id, "gpt-4o");
  await g.model(project.id, "gpt-4o-mini");
});
afterAll(async () => {
  delete process.env.PUBLISH_SLICE_SECONDS;
  await g.stop();
});

/** The publish orchestration's apply calls and what each returned (the durable status API's history). */
async function applySteps(revisionId: string): Promise<string[]> {
  const res = await fetch(`${g.t.url}/runtime/webhooks/durabletask/instances/${revisionId}?showHistory=true&showHistoryOutput=true`, { headers: { "x-functions-key": g.t.app.durableKey } });
  const status = (await res.json()) as { runtimeStatus: string; historyEvents: { EventType: string; FunctionName?: string; Result?: unknown }[] };
  expect(status.runtimeStatus).toBe("Completed");
  return status.historyEvents.filter((e) => e.EventType === "TaskCompleted" && e.FunctionName === "gatewayApply").map((e) => String(e.Result));
}

async function published(): Promise<Revision> {
  const r = await g.admin.policy.publish({ reason: "sliced" });
  const id = r.revision!.id;
  const done = await until(async () => {
    const rev = await g.admin.policy.revision(id);
    return rev.status === "pending" ? undefined : rev;
  }, "the sliced publish");
  await g.settle();
  return done;
}

describe("conformance: a publish sent in steps", () => {
  it("one artifact a step: every step resumes where the last stopped, the revision is published whole, and the gateway serves it", async () => {
    const rev = await published();
    expect(rev.status).toBe("published");
    expect(rev.outcome).toEqual({ sent: rev.artifactCount, unchanged: 0, deleted: 0 });
    const steps = await applySteps(rev.id);
    // One step per artifact, each but the last "continue".
    expect(steps).toEqual([...Array<string>(rev.artifactCount - 1).fill("continue"), "published"]);
    const drift = await g.admin.policy.checkDrift();
    expect(drift).toMatchObject({ status: "inSync" });
    const key = await g.key(dev, project.id, { name: "sliced key" });
    expect((await g.chat(project.id, key.key, "gpt-4o")).status).toBe(200);
    expect((await g.chat(project.id, key.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a change published in steps is enforced; only what changed is sent, a step each", async () => {
    const before = await g.admin.projects.get(project.id);
    await g.admin.projects.update(project.id, { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } as never }, before.etag);
    const rev = await published();
    expect(rev.status).toBe("published");
    expect(rev.outcome!.sent).toBe(rev.counts.added + rev.counts.modified);
    expect(rev.outcome!.sent).toBeGreaterThan(0);
    expect(await applySteps(rev.id)).toHaveLength(rev.outcome!.sent);
    const key = await g.key(dev, project.id, { name: "limited key" });
    expect((await g.chat(project.id, key.key, "gpt-4o", { maxTokens: 8 })).status).toBe(200);
    expect((await g.chat(project.id, key.key, "gpt-4o", { maxTokens: 8 })).status).toBe(200);
    expect((await g.chat(project.id, key.key, "gpt-4o", { maxTokens: 8 })).status).toBe(429);
  });
});
