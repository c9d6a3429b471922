/**
 * Conformance: gate drift. A prod project passed its time-bound gates (an access review in the last 90
 * days, every live key younger than its rotation period, no exemption past its review) when it was
 * promoted; time alone takes it out of them. The lifecycle job records that on the project (`gateDrift`),
 * audited and evented once when it starts, when its gates change and when it ends, and tells the
 * project's owner and ProjectAdmins — and locks nothing: the project's keys keep working at the gateway.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import { statusOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const DAY = 86_400_000;
const TENANT = "t-gate-drift";
let g: Governed;
let paula: AigovClient; // the projects' ProjectAdmin
let olivia: AigovClient; // their owner, and the access reviews' reviewer

const CONTROLS = { contentSafety: { categories: { Violence: 4 } }, tokens: { perMinute: { limit: 10_000 } } };
const prodProject = (name: string) =>
  g.project(name, { environment: "prod", costCenter: "CC-7", owner: "olivia", settings: CONTROLS, keyPolicy: { rotateAfterDays: 30 }, roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });

/** The gate-drift notices in a user's inbox (olivia also gets the access reviews' own). */
function inbox(user: string): { subject: string; body: string }[] {
  const file = FileNotifier.inboxFile(join(g.t.app.dataDir, "inbox"), user);
  const all = existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { subject: string; body: string }) : [];
  return all.filter((m) => m.subject.includes("out of its gates"));
}
const sweep = () => g.t.app.host.invokeTimer("projectLifecycle");
async function events(projectId: string) {
  await g.t.relay();
  // In the order they happened (the relay does not promise delivery order): each at its own time on the app's clock.
  return g.t
    .events()
    .filter((e) => e.subject === `/tenants/${TENANT}/projects/${projectId}` && e.type.startsWith("aigov.project.gateDrift"))
    .sort((a, b) => String(a.time).localeCompare(String(b.time)));
}
async function driftAudit(projectId: string) {
  const items = (await g.admin.audit.list({ resource: `/projects/${projectId}`, maxPageSize: 100 })).items;
  return items.filter((r) => r.action.startsWith("project.gateDrift")).map((r) => [r.action, r.actor]).reverse();
}
/** An access review of the project that olivia completes (every item decided). */
async function accessReview(projectId: string): Promise<void> {
  const review = await g.admin.reviews.create({ name: `review of ${projectId}`, kind: "keys", scope: { level: "project", projectId }, stages: [{ reviewers: { type: "users", users: ["olivia"] } }] });
  await until(async () => ((await g.admin.reviews.get(review.id)).status === "inProgress" ? true : undefined), "review started");
  for (const item of (await olivia.reviews.items(review.id)).items) await olivia.reviews.decide(review.id, item.id, { decision: "approve", justification: "in use" });
  await g.admin.reviews.stop(review.id, { reason: "reviewed" }, (await g.admin.reviews.get(review.id)).etag);
  await until(async () => ((await g.admin.reviews.get(review.id)).status === "completed" ? true : undefined), "review completed");
}

beforeAll(async () => {
  g = await Governed.start(TENANT);
  overrideServices({ clock: g.t.appClock });
  paula = await g.as("paula", []);
  olivia = await g.as("olivia", []);
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings: {}, services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

describe("gate drift", () => {
  it("a prod project whose access review goes stale is marked out of its gates once, its admins told, nothing locked; a new review ends it", async () => {
    const p = await prodProject("ledger");
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("a prod project");
    await g.admin.keys.create(p.id, { name: "reviewed", owner: "dora" }); // something for the review to review
    await accessReview(p.id);
    const reviewed = (await g.admin.keys.list(p.id)).items[0]!;
    await g.admin.keys.revoke(p.id, reviewed.id, { reason: "reviewed only" }, (await g.admin.keys.get(p.id, reviewed.id)).etag);
    await sweep();
    expect((await paula.projects.get(p.id)).gateDrift).toBeUndefined();

    g.t.appClock.advance(91 * DAY); // the review is now older than the 90 days prod asks for
    await sweep();
    const drifted = await paula.projects.get(p.id);
    const at = g.t.appClock.now().toISOString().slice(0, 13);
    expect(drifted.gateDrift).toMatchObject({ gates: [{ gate: "accessReview", detail: expect.stringContaining("more than 90 days ago") }] });
    expect(drifted.gateDrift!.since.slice(0, 13)).toBe(at);
    expect(drifted.gateDrift!.gates[0]!.since).toBe(drifted.gateDrift!.since);
    // What the live checklist says too.
    expect((await paula.projects.gates(p.id, "prod")).gates.filter((x) => !x.passed).map((x) => x.gate)).toEqual(["accessReview"]);
    // Once: the next runs write nothing and tell nobody again.
    await sweep();
    await sweep();
    expect((await paula.projects.get(p.id)).etag).toBe(drifted.etag);
    for (const who of ["olivia", "paula"]) expect(inbox(who).map((m) => m.subject)).toEqual([`Prod project ledger is out of its gates: accessReview`]);
    expect(inbox("olivia")[0]!.body).toContain("more than 90 days ago");
    expect(await driftAudit(p.id)).toEqual([["project.gateDrift.start", "system:project-lifecycle"]]);
    expect((await events(p.id)).map((e) => [e.type, e.data])).toEqual([
      ["aigov.project.gateDriftStarted.v1", { projectId: p.id, environment: "prod", gates: [{ gate: "accessReview", detail: drifted.gateDrift!.gates[0]!.detail }] }],
    ]);

    // Nothing is locked: a key made now works at the gateway, and the project is edited as before.
    const key = await g.key(g.admin, p.id, { name: "live", owner: "dora", scopes: { models: [model.id] } });
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(200);
    const edited = await paula.projects.update(p.id, { description: "still live" }, drifted.etag);
    expect(edited.gateDrift).toEqual(drifted.gateDrift);
    // The record is the system's: no edit writes it.
    expect(await statusOf(paula.projects.update(p.id, { gateDrift: undefined, description: "x" } as never, edited.etag))).toBe(200); // absent: unchanged
    expect(await statusOf(paula.projects.update(p.id, { gateDrift: null } as never, (await paula.projects.get(p.id)).etag))).toBe(400);
    expect((await paula.projects.get(p.id)).gateDrift).toEqual(drifted.gateDrift);

    // A new review brings the project back within its gates: the record ends, once.
    await accessReview(p.id);
    await sweep();
    const back = await paula.projects.get(p.id);
    expect(back.gateDrift).toBeUndefined();
    await sweep();
    expect((await paula.projects.get(p.id)).etag).toBe(back.etag);
    expect(await driftAudit(p.id)).toEqual([
      ["project.gateDrift.start", "system:project-lifecycle"],
      ["project.gateDrift.end", "system:project-lifecycle"],
    ]);
    const ended = (await events(p.id)).map((e) => [e.type, e.data]);
    expect(ended).toHaveLength(2);
    expect(ended[1]).toEqual(["aigov.project.gateDriftEnded.v1", { projectId: p.id, environment: "prod", since: drifted.gateDrift!.since, gates: ["accessReview"] }]);
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a suspended key outliving the rotation period drifts the project; a stale review joins it; moving the project out of prod ends it", async () => {
    const p = await prodProject("vault");
    const spare = await g.admin.keys.create(p.id, { name: "spare", owner: "dora" });
    await accessReview(p.id);
    // Suspended, the key is not rotated by the key job, yet it is live: it counts for keysRotated.
    await g.admin.keys.suspend(p.id, spare.id, { reason: "kept for later" }, (await g.admin.keys.get(p.id, spare.id)).etag);
    await sweep();
    expect((await paula.projects.get(p.id)).gateDrift).toBeUndefined();

    g.t.appClock.advance(31 * DAY);
    await sweep();
    const first = (await paula.projects.get(p.id)).gateDrift!;
    expect(first.gates.map((x) => x.gate)).toEqual(["keysRotated"]);
    expect(first.gates[0]!.detail).toContain(spare.id);

    g.t.appClock.advance(60 * DAY); // and now the access review is stale as well
    await sweep();
    const second = (await paula.projects.get(p.id)).gateDrift!;
    expect(second.since).toBe(first.since);
    expect(second.gates.map((x) => x.gate)).toEqual(["keysRotated", "accessReview"]);
    expect(second.gates[0]).toEqual(first.gates[0]); // as it was when it started failing
    expect(second.gates[1]!.since > first.since).toBe(true);
    expect(inbox("paula").map((m) => m.subject)).toEqual(expect.arrayContaining([`Prod project vault is out of its gates: keysRotated`, `Prod project vault is out of its gates: accessReview`]));
    expect((await events(p.id)).map((e) => e.type)).toEqual(["aigov.project.gateDriftStarted.v1", "aigov.project.gateDriftChanged.v1"]);

    // Out of prod (the TenantAdmin's move), the project is no longer held to the time-bound gates.
    await g.admin.projects.update(p.id, { environment: "test" }, (await g.admin.projects.get(p.id)).etag);
    await sweep();
    expect((await paula.projects.get(p.id)).gateDrift).toBeUndefined();
    expect((await events(p.id)).map((e) => e.type)).toEqual(["aigov.project.gateDriftStarted.v1", "aigov.project.gateDriftChanged.v1", "aigov.project.gateDriftEnded.v1"]);
    expect(await driftAudit(p.id)).toEqual([
      ["project.gateDrift.start", "system:project-lifecycle"],
      ["project.gateDrift.change", "system:project-lifecycle"],
      ["project.gateDrift.end", "system:project-lifecycle"],
    ]);
  });
});
