/**
 * Conformance: project lifecycle. A sandbox past its review date is locked by the lifecycle job and its
 * keys are refused at the local gateway, its data intact, until an approved extension unlocks it; a
 * promotion to prod is refused with its failing gates listed, then succeeds once they pass.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import { ApiError } from "../../src/client/index.js";
import { reasonOf, statusOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const DAY = 86_400_000;
let g: Governed;
let paula: AigovClient; // ProjectAdmin assigned on the projects: requests; alice (TenantAdmin) approves

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
function inbox(user: string): { subject: string }[] {
  const file = FileNotifier.inboxFile(join(g.t.app.dataDir, "inbox"), user);
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { subject: string }) : [];
}
async function sweep(): Promise<void> {
  await g.t.app.host.invokeTimer("projectLifecycle");
}
async function approve(approvalId: string): Promise<void> {
  await g.admin.approvals.decide(approvalId, { decision: "approve", justification: "agreed" }, (await g.admin.approvals.get(approvalId)).etag);
}
/** Approves a key request and waits until its key records the verdict; the key as it then reads. */
async function approveRequest(projectId: string, asked: { id: string; approval?: { approvalId: string } }) {
  await approve(asked.approval!.approvalId);
  return until(async () => {
    const k = await g.admin.keys.get(projectId, asked.id);
    return k.approval?.state === "approved" ? k : undefined;
  }, "the request settled");
}

beforeAll(async () => {
  g = await Governed.start("t-lifecycle");
  // Review dates, notices and the lock are on the app's clock.
  overrideServices({ clock: g.t.appClock });
  paula = await g.as("paula", []);
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings: {}, services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

describe("project lifecycle", () => {
  it("a sandbox gets notices 14 days and 1 day ahead, is locked at its review date with its keys refused at the gateway, and an approved extension unlocks it", async () => {
    const reviewDate = day(g.t.appClock.ms() + 20 * DAY);
    const p = await g.project("sandbox", { environment: "sandbox", reviewDate, owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("sandbox");
    const key = await g.key(g.admin, p.id, { name: "tinkering", owner: "dora", scopes: { models: [model.id] } });
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(200);
    // A later review date is an extension, not a PATCH.
    expect(await reasonOf(paula.projects.update(p.id, { reviewDate: day(g.t.appClock.ms() + 60 * DAY) }, (await paula.projects.get(p.id)).etag))).toBe("409 extension_required");

    await sweep();
    expect(inbox("olivia")).toEqual([]);
    g.t.appClock.advance(7 * DAY); // 13 days left
    await sweep();
    await sweep(); // once per notice
    expect(inbox("olivia").map((m) => m.subject)).toEqual([`Sandbox sandbox expires in 14 days`]);
    expect(inbox("paula").map((m) => m.subject)).toEqual([`Sandbox sandbox expires in 14 days`]);
    g.t.appClock.advance(12 * DAY); // 1 day left
    await sweep();
    expect(inbox("olivia").map((m) => m.subject)).toEqual([`Sandbox sandbox expires in 14 days`, `Sandbox sandbox expires in 1 day`]);
    expect((await g.admin.projects.get(p.id)).lock).toBeUndefined();

    g.t.appClock.advance(DAY); // the review date
    await sweep();
    const locked = await g.admin.projects.get(p.id);
    expect(locked.lock).toMatchObject({ reason: "sandboxExpired" });
    await g.synced(p.id, key.id);
    expect((await g.admin.keys.get(p.id, key.id)).status).toBe("suspended");
    const refused = await g.chat(p.id, key.key, "gpt-4o-mini");
    expect(refused.status).toBe(401);
    // Its data is intact; nothing that adds access is accepted, nothing is deleted.
    expect((await g.admin.models.get(p.id, model.id)).name).toBe("gpt-4o-mini");
    expect((await g.admin.keys.list(p.id)).items.map((k) => k.id)).toEqual([key.id]);
    expect(await reasonOf(g.admin.keys.create(p.id, { name: "another" }))).toBe("409 project_locked");
    expect(await reasonOf(g.admin.keys.resume(p.id, key.id, { reason: "please" }, (await g.admin.keys.get(p.id, key.id)).etag))).toBe("409 project_locked");
    expect(await reasonOf(g.admin.projects.update(p.id, { description: "x" }, locked.etag))).toBe("409 project_locked");
    expect(await reasonOf(g.admin.projects.delete(p.id, locked.etag))).toBe("409 project_locked");
    expect(await reasonOf(paula.projects.promote(p.id, { to: "dev", justification: "graduating" }))).toBe("409 project_locked");

    // An extension through approval: the lock goes, the keys it suspended come back.
    const newDate = day(g.t.appClock.ms() + 30 * DAY);
    const asked = await paula.projects.extend(p.id, { reviewDate: newDate, justification: "the pilot runs another month" });
    expect(asked.extension).toMatchObject({ reviewDate: newDate, requestedBy: "paula" });
    expect(await reasonOf(paula.projects.extend(p.id, { reviewDate: newDate, justification: "again" }))).toBe("409 promotion_pending");
    await approve(asked.extension!.approvalId);
    const extended = await until(async () => {
      const now = await g.admin.projects.get(p.id);
      return now.lock === undefined && now.extension === undefined ? now : undefined;
    }, "the extension settled");
    expect(extended.reviewDate).toBe(newDate);
    await g.synced(p.id, key.id);
    expect((await g.admin.keys.get(p.id, key.id)).status).toBe("active");
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(200);

    // A sweep that raced the extension suspends the key after the extension resumed it and before the
    // lock is lifted (its lock check and its suspension are two reads apart): the state that leaves is
    // written here as that sweep's write would. The next run resumes it; a key a person suspended stays so.
    const held = await g.key(g.admin, p.id, { name: "held", owner: "dora", scopes: { models: [model.id] } });
    await g.admin.keys.suspend(p.id, held.id, { reason: "on hold" }, (await g.admin.keys.get(p.id, held.id)).etag);
    const item = g.t.container().item(key.id, ["t-lifecycle", p.id]);
    const { resource: raced } = await item.read<{ status: string; suspendedBy?: string; gateway: { desiredGen: number } }>();
    await item.replace({ ...raced!, status: "suspended", suspendedBy: "projectLock", gateway: { ...raced!.gateway, desiredGen: raced!.gateway.desiredGen + 1 } });
    await g.synced(p.id, key.id);
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(401);
    await sweep();
    await g.synced(p.id, key.id);
    expect((await g.admin.keys.get(p.id, key.id)).status).toBe("active");
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(200);
    expect((await g.admin.keys.get(p.id, held.id)).status).toBe("suspended");
    expect((await g.admin.audit.list({ scope: p.id, resource: `/projects/${p.id}/keys/${key.id}`, maxPageSize: 100 })).items.map((r) => [r.action, r.actor])[0]).toEqual(["key.resume", "system:project-lifecycle"]);

    await g.t.relay();
    const types = g.t.events().filter((e) => e.subject === `/tenants/t-lifecycle/projects/${p.id}`).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["aigov.project.expiryNotice.v1", "aigov.project.locked.v1", "aigov.project.extensionRequested.v1", "aigov.project.extended.v1"]));
    const audit = await g.admin.audit.list({ maxPageSize: 100 });
    expect(audit.items.find((r) => r.action === "project.lock")).toMatchObject({ actor: "system:project-lifecycle", resource: `/projects/${p.id}` });
  });

  it("a key request approved while the sandbox is locked leaves the key suspended at the gateway; the extension resumes it with the others", async () => {
    const dora = await g.as("dora", ["Developer"]);
    const reviewDate = day(g.t.appClock.ms() + 3 * DAY);
    const p = await g.project("guarded-sandbox", { environment: "sandbox", reviewDate, owner: "olivia", keyPolicy: { requireApproval: true }, roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("guarded sandbox");
    const asked = await dora.keys.create(p.id, { name: "dora's", justification: "the pilot", scopes: { models: [model.id] } });
    expect(asked).toMatchObject({ status: "suspended", approval: { state: "pending" } });

    g.t.appClock.advance(3 * DAY); // the review date, the request still pending
    await sweep();
    expect((await g.admin.projects.get(p.id)).lock).toMatchObject({ reason: "sandboxExpired" });
    const approved = await approveRequest(p.id, asked);
    // Approved, but the lock holds: still suspended, listed with the lock's keys, refused at the gateway.
    expect(approved.status).toBe("suspended");
    await g.synced(p.id, asked.id);
    expect((await g.chat(p.id, asked.key, "gpt-4o-mini")).status).toBe(401);
    await sweep(); // the hourly sweep has nothing to undo
    expect((await g.admin.keys.get(p.id, asked.id)).status).toBe("suspended");
    const audit = (await g.admin.audit.list({ resource: `/projects/${p.id}`, maxPageSize: 100 })).items;
    expect(audit.filter((r) => r.action === "project.lock").map((r) => r.actor)).toEqual(expect.arrayContaining(["system:project-lifecycle", "system:keys"]));

    const extension = await paula.projects.extend(p.id, { reviewDate: day(g.t.appClock.ms() + 30 * DAY), justification: "another month" });
    await approve(extension.extension!.approvalId);
    await until(async () => ((await g.admin.keys.get(p.id, asked.id)).status === "active" ? true : undefined), "the extension resumed the key");
    await g.synced(p.id, asked.id);
    expect((await g.chat(p.id, asked.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a key request approved after the review date, before the hourly sweep locks the sandbox, never works: the lock takes it over and the extension resumes it", async () => {
    const dora = await g.as("dora", ["Developer"]);
    const p = await g.project("guarded-unswept", { environment: "sandbox", reviewDate: day(g.t.appClock.ms() + 3 * DAY), owner: "olivia", keyPolicy: { requireApproval: true }, roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("guarded sandbox, not swept");
    const working = await g.key(g.admin, p.id, { name: "working", owner: "dora", scopes: { models: [model.id] } });
    const asked = await dora.keys.create(p.id, { name: "dora's late", justification: "the pilot", scopes: { models: [model.id] } });

    g.t.appClock.advance(3 * DAY); // the review date has come; the sweep has not run yet
    const approved = await approveRequest(p.id, asked);
    expect(approved.status).toBe("suspended");
    await g.synced(p.id, asked.id);
    expect((await g.chat(p.id, asked.key, "gpt-4o-mini")).status).toBe(401);
    const held = (await g.admin.audit.list({ resource: `/projects/${p.id}`, maxPageSize: 100 })).items.find((r) => r.action === "project.holdKey");
    expect(held).toMatchObject({ actor: "system:keys" });
    await g.t.relay();
    expect(g.t.events().filter((e) => e.type === "aigov.project.keyHeld.v1").map((e) => e.data)).toContainEqual({ projectId: p.id, keyId: asked.id, reviewDate: p.reviewDate });

    // The sweep's lock takes the held key over with the keys it suspends now.
    await sweep();
    const locked = await g.admin.projects.get(p.id);
    expect(locked.lock).toMatchObject({ reason: "sandboxExpired" });
    await g.synced(p.id, working.id);
    expect((await g.chat(p.id, working.key, "gpt-4o-mini")).status).toBe(401);
    expect((await g.admin.keys.get(p.id, asked.id)).status).toBe("suspended");

    const extension = await paula.projects.extend(p.id, { reviewDate: day(g.t.appClock.ms() + 30 * DAY), justification: "another month" });
    await approve(extension.extension!.approvalId);
    await until(async () => ((await g.admin.keys.get(p.id, asked.id)).status === "active" ? true : undefined), "the extension resumed the held key");
    await g.synced(p.id, asked.id);
    await g.synced(p.id, working.id);
    expect((await g.chat(p.id, asked.key, "gpt-4o-mini")).status).toBe(200);
    expect((await g.chat(p.id, working.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a key shared into a sandbox stops reaching it while the sandbox is locked, and reaches it again once an extension lifts the lock", async () => {
    const sandbox = await g.project("shared-into-sandbox", { environment: "sandbox", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const home = await g.project("shared-from");
    await g.model(sandbox.id, "gpt-4o-mini");
    await g.model(home.id, "gpt-4o");
    await g.publish("a sandbox and a project sharing into it");
    const key = await g.key(g.admin, home.id, { name: "visiting", owner: "dora" });
    const dora = await g.as("dora", ["Developer"]);
    const { approval } = await dora.keys.share(home.id, key.id, { projectId: sandbox.id, justification: "the pilot" }, (await dora.keys.get(home.id, key.id)).etag);
    await approve(approval.id);
    await until(async () => ((await g.admin.keys.get(home.id, key.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.systemPublish(`key ${key.id} shared with ${sandbox.id}`);
    await g.synced(home.id, key.id);
    expect((await g.chat(sandbox.id, key.key, "gpt-4o-mini")).status).toBe(200);

    g.t.appClock.advance(2 * DAY); // the review date
    await sweep();
    expect((await g.admin.projects.get(sandbox.id)).lock).toMatchObject({ reason: "sandboxExpired" });
    await g.systemPublish(`sandbox ${sandbox.id} locked`);
    const refused = await g.chat(sandbox.id, key.key, "gpt-4o-mini");
    expect([401, 403]).toContain(refused.status);
    // The key itself is not the sandbox's: it still works in its own project.
    expect((await g.chat(home.id, key.key, "gpt-4o")).status).toBe(200);

    const extension = await paula.projects.extend(sandbox.id, { reviewDate: day(g.t.appClock.ms() + 30 * DAY), justification: "another month" });
    await approve(extension.extension!.approvalId);
    await until(async () => ((await g.admin.projects.get(sandbox.id)).lock === undefined ? true : undefined), "unlocked");
    await g.systemPublish(`sandbox ${sandbox.id} extended: unlocked`);
    expect((await g.chat(sandbox.id, key.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a promotion pending when the sandbox locks ends with the lock (its approval withdrawn), so an extension can be asked for", async () => {
    const p = await g.project("promoting-sandbox", { environment: "sandbox", costCenter: "CC-4711", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const asked = await paula.projects.promote(p.id, { to: "dev", justification: "graduating" });
    const approvalId = asked.promotion!.approvalId;
    g.t.appClock.advance(2 * DAY); // the review date, the promotion still pending
    await sweep();
    const locked = await g.admin.projects.get(p.id);
    expect(locked.lock).toMatchObject({ reason: "sandboxExpired" });
    expect(locked.promotion).toBeUndefined();
    expect(locked.lastPromotion).toMatchObject({ to: "dev", outcome: "gatesFailed", approvalId, failingGates: ["projectLocked"] });
    expect((await g.admin.approvals.get(approvalId)).status).toBe("withdrawn");
    const extension = await paula.projects.extend(p.id, { reviewDate: day(g.t.appClock.ms() + 30 * DAY), justification: "another month" });
    expect(extension.extension?.approvalId).toMatch(/^apr_/);
  });

  it("an agent's guardrails cannot change in a locked sandbox: the key would not follow, so neither changes", async () => {
    const p = await g.project("agent-sandbox", { environment: "sandbox", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia" });
    const model = await g.model(p.id, "gpt-4o-mini");
    const agent = await g.admin.agents.create(p.id, { name: "helper", guardrails: { models: [model.id] } });
    await g.publish("agent sandbox");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    g.t.appClock.advance(2 * DAY);
    await sweep();
    expect((await g.admin.projects.get(p.id)).lock).toMatchObject({ reason: "sandboxExpired" });
    const before = await g.admin.agents.get(p.id, agent.id);
    const narrower = { models: [model.id], limits: { requestsPerMinute: 10 } };
    expect(await reasonOf(g.admin.agents.update(p.id, agent.id, { guardrails: narrower }, before.etag))).toBe("409 project_locked");
    const after = await g.admin.agents.get(p.id, agent.id);
    expect([after.etag, after.guardrails]).toEqual([before.etag, before.guardrails]);
    expect((await g.admin.keys.get(p.id, issued.id)).limits).toEqual({});
  });

  it("a model that switches off the project's content safety and limits fails the test gates: the gateway serves it without them", async () => {
    const p = await g.project("model-override", { environment: "dev", costCenter: "CC-1", owner: "olivia", settings: { contentSafety: { categories: { Violence: 4 } }, tokens: { perMinute: { limit: 10_000 } } }, roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    // A model may override its project (src/policy/settings.ts): this one switches both controls off for itself.
    await g.model(p.id, "unguarded", { extra: { settings: { contentSafety: { enabled: false }, tokens: { perMinute: { enabled: false } } } } });
    await g.publish("a model without the project's controls");
    const k = (await g.key(g.admin, p.id, { name: "probe", owner: "dora" })).key;
    // The gateway applies neither control to the model: a prompt the project's content safety would block goes through.
    const unsafe = await g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "unguarded", messages: [{ role: "user", content: "something unsafe:Violence:6" }] } });
    expect(unsafe.status).toBe(200);
    // So the gates that say content safety and limits apply to the project must not pass.
    const checklist = await paula.projects.gates(p.id, "test");
    expect(Object.fromEntries(checklist.gates.map((x) => [x.gate, x.passed]))).toEqual({ ownerAndCostCenter: true, contentSafety: false, limits: false });
    expect(await reasonOf(paula.projects.promote(p.id, { to: "test", justification: "ready" }))).toBe("409 promotion_gates_failed");
  });

  it("an extension approved after the review date it asked for has passed does not unlock the sandbox nor resume its keys", async () => {
    const p = await g.project("late-extension", { environment: "sandbox", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("late extension");
    const key = await g.key(g.admin, p.id, { name: "pilot", owner: "dora", scopes: { models: [model.id] } });
    g.t.appClock.advance(2 * DAY); // the review date
    await sweep();
    await g.synced(p.id, key.id);
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(401);
    // Asked for one more day, decided three days later: the date it extends to is already behind.
    const asked = await paula.projects.extend(p.id, { reviewDate: day(g.t.appClock.ms() + DAY), justification: "one more day" });
    g.t.appClock.advance(3 * DAY);
    await approve(asked.extension!.approvalId);
    await until(async () => ((await g.admin.projects.get(p.id)).extension === undefined ? true : undefined), "the extension settled");
    const after = await g.admin.projects.get(p.id);
    expect(after.lock).toMatchObject({ reason: "sandboxExpired" });
    await g.synced(p.id, key.id);
    expect((await g.admin.keys.get(p.id, key.id)).status).toBe("suspended");
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(401);
  });

  it("a sandbox past its review date is not promoted out of its expiry before the hourly sweep locks it", async () => {
    const p = await g.project("expired-unswept", { environment: "sandbox", costCenter: "CC-9", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const asked = await paula.projects.promote(p.id, { to: "dev", justification: "graduating" });
    g.t.appClock.advance(2 * DAY); // the review date has come; the sweep has not run yet
    await approve(asked.promotion!.approvalId);
    const settled = await until(async () => {
      const now = await g.admin.projects.get(p.id);
      return now.promotion === undefined ? now : undefined;
    }, "the promotion settled");
    expect(settled.environment).toBe("sandbox");
    expect(settled.lastPromotion).toMatchObject({ outcome: "gatesFailed", failingGates: ["projectLocked"] });
  });

  it("a sandbox past its review date takes no new key nor share, edit or deletion before the hourly sweep locks it; a suspension still works", async () => {
    const p = await g.project("expired-no-keys", { environment: "sandbox", costCenter: "CC-9", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia" });
    const home = await g.project("expired-home", { environment: "dev", owner: "olivia" });
    const k = await g.admin.keys.create(p.id, { name: "before", owner: "dora" });
    const shared = await g.admin.keys.create(home.id, { name: "to share", owner: "dora" });
    const early = await g.admin.keys.create(home.id, { name: "asked early", owner: "dora" });
    const dora = await g.as("dora", ["Developer"]);
    const { approval: asked } = await dora.keys.share(home.id, early.id, { projectId: p.id, justification: "before the date" }, (await dora.keys.get(home.id, early.id)).etag);
    g.t.appClock.advance(2 * DAY); // the review date has come; the sweep has not run yet
    // A share asked for before the date and approved after it is not made, as one asked for now is refused.
    await approve(asked.id);
    await until(async () => ((await g.admin.keys.get(home.id, early.id)).shares[0]?.status === "rejected" ? true : undefined), "share settled");
    expect(await reasonOf(g.admin.keys.create(p.id, { name: "after", owner: "dora" }))).toBe("409 project_locked");
    expect(await reasonOf(g.admin.keys.share(home.id, shared.id, { projectId: p.id, justification: "late" }, (await g.admin.keys.get(home.id, shared.id)).etag))).toBe("409 project_locked");
    expect(await reasonOf(g.admin.keys.rotate(p.id, k.id, {}, (await g.admin.keys.get(p.id, k.id)).etag))).toBe("409 project_locked");
    expect((await g.admin.keys.list(p.id)).items.map((x) => x.name)).toEqual(["before"]);
    // Nor a new project admin by an edit, nor its deletion (a locked project's rules).
    const project = await g.admin.projects.get(p.id);
    expect(await reasonOf(g.admin.projects.update(p.id, { roleAssignments: [{ principalId: "mallory", role: "ProjectAdmin" }] }, project.etag))).toBe("409 project_locked");
    expect(await reasonOf(g.admin.projects.delete(p.id, project.etag))).toBe("409 project_locked");
    expect(await g.admin.projects.get(p.id)).toMatchObject({ roleAssignments: [], etag: project.etag });
    // Taking access away stays possible.
    const suspended = await g.admin.keys.suspend(p.id, k.id, { reason: "expired" }, (await g.admin.keys.get(p.id, k.id)).etag);
    expect(suspended.status).toBe("suspended");
  });

  it("promotion to prod is refused with the failing gates listed, then succeeds through approval once they pass", async () => {
    const p = await g.project("payments", { environment: "dev", owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const checklist = await paula.projects.gates(p.id, "prod");
    expect(checklist.passed).toBe(false);
    expect(Object.fromEntries(checklist.gates.map((x) => [x.gate, x.passed]))).toEqual({
      ownerAndCostCenter: false,
      contentSafety: false,
      limits: false,
      exemptionsReviewed: true,
      keysRotated: false,
      accessReview: false,
    });
    const refused = await paula.projects.promote(p.id, { to: "prod", justification: "go live" }).catch((e: unknown) => e as ApiError);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).problem).toMatchObject({ status: 409, reason: "promotion_gates_failed" });
    for (const gate of ["ownerAndCostCenter", "contentSafety", "limits", "keysRotated", "accessReview"]) expect((refused as ApiError).problem!.detail).toContain(gate);
    expect((refused as ApiError).problem!.detail).not.toContain("exemptionsReviewed");
    // Nor can a PATCH do it.
    expect(await reasonOf(paula.projects.update(p.id, { environment: "prod" }, (await paula.projects.get(p.id)).etag))).toBe("409 promotion_required");
    expect((await g.admin.projects.get(p.id)).environment).toBe("dev");

    // Make the gates pass: a cost center, content safety and a token limit, a rotation policy, an access review.
    await paula.projects.update(
      p.id,
      { costCenter: "CC-4711", settings: { contentSafety: { categories: { Violence: 4 } }, tokens: { perMinute: { limit: 10_000 } } }, keyPolicy: { rotateAfterDays: 30 } },
      (await paula.projects.get(p.id)).etag,
    );
    await g.admin.keys.create(p.id, { name: "payments", owner: "dora" });
    const olivia = await g.as("olivia", []);
    const reviewOf = async (stopAtOnce: boolean) => {
      const review = await g.admin.reviews.create({ name: "pre-prod", kind: "keys", scope: { level: "project", projectId: p.id }, stages: [{ reviewers: { type: "users", users: ["olivia"] } }] });
      const started = await until(async () => {
        const r = await g.admin.reviews.get(review.id);
        return r.status === "inProgress" ? r : undefined;
      }, "review started");
      if (!stopAtOnce) for (const item of (await olivia.reviews.items(review.id)).items) await olivia.reviews.decide(review.id, item.id, { decision: "approve", justification: "in use" });
      await g.admin.reviews.stop(review.id, { reason: "reviewed" }, (await g.admin.reviews.get(started.id)).etag);
      await until(async () => ((await g.admin.reviews.get(review.id)).status === "completed" ? true : undefined), "review completed");
    };
    // A campaign stopped before anyone decided anything proves nothing.
    await reviewOf(true);
    expect((await paula.projects.gates(p.id, "prod")).gates.find((x) => x.gate === "accessReview")?.passed).toBe(false);
    await reviewOf(false);
    const passing = await paula.projects.gates(p.id, "prod");
    expect(passing.gates.filter((x) => !x.passed)).toEqual([]);

    // Two requests at once: one is recorded, the other refused — and no approval is left open for nothing.
    const both = await Promise.allSettled([paula.projects.promote(p.id, { to: "prod", justification: "go live" }), paula.projects.promote(p.id, { to: "prod", justification: "go live too" })]);
    const won = both.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    const lost = both.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect((lost.reason as ApiError).problem).toMatchObject({ status: 409, reason: "promotion_pending" });
    const asked = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<AigovClient["projects"]["promote"]>>>).value;
    expect(asked.promotion).toMatchObject({ to: "prod", requestedBy: "paula" });
    const open = (await g.admin.approvals.list({ status: "pending", requester: "paula", maxPageSize: 100 })).items.filter((a) => a.subject.resourceType === "projectPromotion" && a.subject.resourceId === p.id);
    expect(open.map((a) => a.id)).toEqual([asked.promotion!.approvalId]);
    // The other request was withdrawn when its write lost: nobody is asked to decide it.
    const withdrawn = (await g.admin.approvals.list({ status: "withdrawn", requester: "paula", maxPageSize: 100 })).items.filter((a) => a.subject.resourceType === "projectPromotion" && a.subject.resourceId === p.id);
    expect(withdrawn.map((a) => a.timeline.at(-1)?.type)).toEqual(["withdrawn"]);
    // The approval sweep, past its grace period, leaves the request the project records alone.
    g.t.appClock.advance(11 * 60_000);
    await g.t.app.host.invokeTimer("approvalDriverSweep");
    expect((await g.admin.approvals.get(asked.promotion!.approvalId)).status).toBe("pending");
    expect(asked.environment).toBe("dev");
    await approve(asked.promotion!.approvalId);
    const promoted = await until(async () => {
      const now = await g.admin.projects.get(p.id);
      return now.environment === "prod" ? now : undefined;
    }, "promoted");
    expect(promoted.promotion).toBeUndefined();
    expect(promoted.lastPromotion).toMatchObject({ to: "prod", outcome: "promoted", approvalId: asked.promotion!.approvalId });
    await g.t.relay();
    expect(g.t.events().some((e) => e.type === "aigov.project.promoted.v1" && e.subject === `/tenants/t-lifecycle/projects/${p.id}`)).toBe(true);

    // In prod the gates still hold: no edit sheds what they required, and no model switches a control off for itself.
    const inProd = await paula.projects.get(p.id);
    const controls = { contentSafety: { categories: { Violence: 4 } }, tokens: { perMinute: { limit: 10_000 } } };
    for (const patch of [{ settings: { tokens: controls.tokens } }, { settings: { contentSafety: controls.contentSafety } }, { settings: null }, { keyPolicy: null }, { costCenter: null }]) {
      expect(await reasonOf(paula.projects.update(p.id, patch, inProd.etag)), JSON.stringify(patch)).toBe("409 environment_gate_failed");
    }
    expect(await reasonOf(g.model(p.id, "unguarded-prod", { extra: { settings: { contentSafety: { enabled: false } } } }))).toBe("409 environment_gate_failed");
    expect(await reasonOf(g.model(p.id, "unlimited-prod", { extra: { settings: { tokens: { perMinute: { enabled: false } } } } }))).toBe("409 environment_gate_failed");
    // Nor does a ProjectAdmin take the project out of prod to shed them there; the TenantAdmin may move it.
    expect(await statusOf(paula.projects.update(p.id, { environment: "dev", settings: null }, inProd.etag))).toBe(403);
    expect(await paula.projects.get(p.id)).toMatchObject({ environment: "prod", settings: controls, keyPolicy: { rotateAfterDays: 30 }, costCenter: "CC-4711", etag: inProd.etag });
    // What keeps the gates is an ordinary edit: a description, a tighter limit, a model that inherits the controls.
    const edited = await paula.projects.update(p.id, { description: "live", settings: { ...controls, tokens: { perMinute: { limit: 5_000 } } } }, inProd.etag);
    expect(edited.description).toBe("live");
    expect((await g.model(p.id, "guarded-prod")).name).toBe("guarded-prod");
    // A control the project has only from the tenant stays too: the tenant may not take it away.
    const ts = await g.admin.settings.get();
    const tenantLimit = await g.admin.settings.put({ settings: { tokens: { perMinute: { limit: 50_000 } } }, services: ts.services as never }, ts.etag);
    const lean = await paula.projects.update(p.id, { settings: { contentSafety: controls.contentSafety } }, edited.etag); // the tenant's limit applies
    const taken = await g.admin.settings.put({ settings: {}, services: ts.services as never }, tenantLimit.etag).catch((e: unknown) => e as ApiError);
    expect((taken as ApiError).problem).toMatchObject({ status: 409, reason: "environment_gate_failed" });
    expect((taken as ApiError).problem!.detail).toContain(`prod project payments (${p.id}): no token limit, token quota or request rate applies to the project`);
    expect(await g.admin.settings.get()).toEqual(tenantLimit);
    expect((await g.admin.projects.update(p.id, { environment: "test" }, lean.etag)).environment).toBe("test");
  });
});
