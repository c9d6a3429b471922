/**
 * Conformance: access reviews driven by gateway activity. Keys are used (or not) through the local
 * gateway, the usage job ingests the gateway's logs, and a campaign's orchestration recommends, collects
 * decisions, completes on the app's clock and applies its removals — which the local gateway then enforces.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { NoChannelNotifier } from "../../src/adapters/notify/no-channel.js";
import { overrideServices } from "../../src/app/services.js";
import { runCli } from "../../src/cli/main.js";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import type { AccessReview, AccessReviewSpecInput } from "../../src/domain/reviews/schema.js";
import { reasonOf } from "../support/errors.js";
import { convertedServer } from "../support/tools.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { until } from "../support/until.js";

const DAY = 86_400_000;
let g: Governed;
let olivia: AigovClient; // the project's owner: reviews through "projectOwners"
let paula: AigovClient; // a ProjectAdmin assigned on the project: reviews too
let dora: AigovClient; // a Developer: holds the keys
let p: Project;
let used: { id: string; key: string };
let unused: { id: string; key: string };

async function ingest(): Promise<void> {
  await g.t.gateway.flushLogs();
  await g.t.app.host.invokeTimer("usageIngest");
}

function inbox(user: string): { subject: string; link?: string }[] {
  const file = FileNotifier.inboxFile(join(g.t.app.dataDir, "inbox"), user);
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { subject: string; link?: string }) : [];
}

const campaign = (extra: Partial<AccessReviewSpecInput> = {}): AccessReviewSpecInput => ({
  name: "quarterly key review",
  kind: "keys",
  scope: { level: "project", projectId: p.id },
  stages: [{ reviewers: { type: "projectOwners" }, durationDays: 14 }],
  ...extra,
});

async function reaches(id: string, status: AccessReview["status"]): Promise<AccessReview> {
  return until(async () => {
    const r = await g.admin.reviews.get(id);
    return r.status === status ? r : undefined;
  }, `access review ${id} ${status}`);
}

const itemFor = async (reviewId: string, targetId: string) => (await g.admin.reviews.items(reviewId, { maxPageSize: 100 })).items.find((i) => i.target.id === targetId)!;

beforeAll(async () => {
  g = await Governed.start("t-reviews");
  // Stage ends and reminders are the services' time and the durable timers': both on the app's clock.
  overrideServices({ clock: g.t.appClock });
  olivia = await g.as("olivia", []);
  paula = await g.as("paula", []);
  dora = await g.as("dora", ["Developer"]);
  p = await g.project("reviewed", { owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }, { principalId: "dora", role: "Developer" }] });
  const model = await g.model(p.id, "gpt-4o-mini");
  await g.publish("access reviews");
  used = await g.key(dora, p.id, { name: "used", scopes: { models: [model.id] } });
  unused = await g.key(dora, p.id, { name: "unused", scopes: { models: [model.id] } });
  // Usage is recorded from here on: recommendations can judge a month from now.
  await ingest();
  // A month later (both clocks): only one key has been used since.
  g.t.appClock.advance(31 * DAY);
  g.t.clock.advance(31 * DAY);
  expect((await g.chat(p.id, used.key, "gpt-4o-mini")).status).toBe(200);
  await ingest();
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

/** A per-minute waiver of dora's at `scope`, requested by `requester`, approved (each of `approvers` in turn, while it waits) and in force; its id. */
async function activeWaiver(requester: AigovClient, scope: { level: "tenant" } | { level: "project"; projectId: string }, approvers: AigovClient[] = [g.admin]): Promise<string> {
  const requested = await requester.exemptions.request({
    control: "tokens.perMinute",
    scope,
    relaxation: { kind: "limit", value: 5000 },
    category: "waiver",
    owner: "dora",
    reason: { deliveryBlocker: "load test", affectedControl: "tokens.perMinute too low", expectedEndState: "limits reviewed" },
    compensatingControls: ["watched"],
    expiresAt: new Date(g.t.appClock.ms() + 7 * DAY).toISOString(),
  });
  for (const approver of approvers) {
    const approval = await approver.approvals.get(requested.approvalId);
    if (approval.status === "pending") await approver.approvals.decide(approval.id, { decision: "approve", justification: "load test" }, approval.etag);
  }
  await until(async () => ((await g.admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
  return requested.id;
}

describe("access reviews", () => {
  it("recommends removing only the unused key; auto-apply with the recommendation default revokes it at the gateway, and the decisions are audited", async () => {
    const created = await g.admin.reviews.create(campaign({ completion: { autoApply: true, defaultDecision: "recommendation" } }));
    expect(created).toMatchObject({ status: "scheduled", occurrence: 1, currentStage: 0 });
    expect(created.warnings[0]).toContain("all unused access is removed");
    const started = await reaches(created.id, "inProgress");
    expect(started.itemCount).toBe(2);
    expect(started.activityThrough).toBeDefined();

    const usedItem = await itemFor(created.id, used.id);
    const unusedItem = await itemFor(created.id, unused.id);
    expect(usedItem).toMatchObject({ recommendation: "keep", target: { holder: "dora" }, reviewers: ["olivia", "paula"] });
    expect(usedItem.lastActivityAt).toBeDefined();
    expect(unusedItem).toMatchObject({ recommendation: "remove", recommendationReason: "not used through the gateway in the last 30 days" });
    expect(unusedItem.lastActivityAt).toBeUndefined();
    // The stage's reviewers heard about it, the holder did not.
    await until(() => inbox("olivia").find((m) => m.link?.includes(created.id)), "olivia's notice");
    expect(inbox("dora").filter((m) => m.subject.includes("Access review"))).toEqual([]);

    // Refusals: the holder, someone not reviewing, an approval without justification.
    expect(await reasonOf(dora.reviews.decide(created.id, usedItem.id, { decision: "approve", justification: "mine" }))).toBe("403 reviewer_is_holder");
    expect(await reasonOf(g.admin.reviews.decide(created.id, usedItem.id, { decision: "approve", justification: "admin" }))).toBe("403 not_item_reviewer");
    expect(await reasonOf(olivia.reviews.decide(created.id, usedItem.id, { decision: "approve" }))).toBe("400 validation_failed");
    // A reviewer sees their items only; the campaign lists under reviewer=me.
    expect((await olivia.reviews.items(created.id)).items.map((i) => i.id).sort()).toEqual([usedItem.id, unusedItem.id].sort());
    expect((await olivia.reviews.list()).items.map((r) => r.id)).toContain(created.id);
    expect((await dora.reviews.list()).items.map((r) => r.id)).not.toContain(created.id);

    const decided = await olivia.reviews.decide(created.id, usedItem.id, { decision: "approve", justification: "used daily by the payments service" });
    expect(decided.decisions).toMatchObject([{ stage: 0, decision: "approve", by: "olivia" }]);

    // Halfway: paula (nothing decided by her, items still waiting) gets a reminder; then the stage ends.
    g.t.appClock.advance(7 * DAY + 60_000);
    await until(() => inbox("paula").find((m) => m.subject.startsWith("Reminder") && m.link?.includes(created.id)), "paula's reminder");
    g.t.appClock.advance(7 * DAY);
    const done = await reaches(created.id, "completed");
    expect(done.report).toMatchObject({
      items: 2,
      recommendations: { keep: 1, remove: 1, none: 0 },
      decided: { approve: 1, deny: 0 },
      notReviewed: 1,
      outcomes: { keep: 1, remove: 1 },
      followedRecommendation: 1,
      applied: { removed: 1, alreadyGone: 0, failed: 0 },
    });
    expect(await itemFor(created.id, unused.id)).toMatchObject({ outcome: "remove", outcomeSource: "default", applied: { result: "removed" } });
    expect(await itemFor(created.id, used.id)).toMatchObject({ outcome: "keep", outcomeSource: "decision" });

    // At the gateway: the unused key is refused, the used one still works.
    await g.synced(p.id, unused.id);
    expect((await g.admin.keys.get(p.id, unused.id)).status).toBe("revoked");
    expect((await g.chat(p.id, unused.key, "gpt-4o-mini")).status).toBe(401);
    expect((await g.chat(p.id, used.key, "gpt-4o-mini")).status).toBe(200);

    // The audit log has the reviewer's decision and the campaign's revocation, with its reason.
    const audit = await g.admin.audit.list({ maxPageSize: 100 });
    expect(audit.items.find((r) => r.action === "accessReview.decide")).toMatchObject({ actor: "olivia", resource: `/access-reviews/${created.id}/items/${usedItem.id}` });
    const projectAudit = await g.admin.audit.list({ scope: p.id, resource: `/projects/${p.id}/keys/${unused.id}`, maxPageSize: 100 });
    expect(projectAudit.items.find((r) => r.action === "key.revoke")).toMatchObject({ actor: "system:access-reviews" });
    await g.t.relay();
    const events = g.t.events().filter((e) => e.subject === `/tenants/t-reviews/access-reviews/${created.id}`).map((e) => e.type);
    expect(events).toEqual(expect.arrayContaining(["aigov.accessReview.created.v1", "aigov.accessReview.started.v1", "aigov.accessReview.reminded.v1", "aigov.accessReview.completed.v1", "aigov.accessReview.applied.v1"]));
    expect(g.t.events().some((e) => e.type === "aigov.accessReview.decided.v1" && (e.data as { itemId?: string }).itemId === usedItem.id)).toBe(true);
    // Decisions are closed once the campaign is over.
    expect(await reasonOf(olivia.reviews.decide(created.id, unusedItem.id, { decision: "deny" }))).toBe("409 access_review_closed");
  });

  it("with no reviewer answer and the default 'keep', nothing changes — even with auto-apply", async () => {
    const fresh = await g.key(dora, p.id, { name: "fresh" });
    const created = await g.admin.reviews.create(campaign({ name: "nobody answers", completion: { autoApply: true, defaultDecision: "keep" } }));
    expect(created.warnings).toEqual([]);
    const started = await reaches(created.id, "inProgress");
    // A key newer than the look-back window gets no recommendation.
    expect(await itemFor(created.id, fresh.id)).toMatchObject({ recommendation: "none" });
    const stopped = await g.admin.reviews.stop(created.id, { reason: "ending early" }, started.etag);
    expect(stopped.status).toBe("inProgress");
    const done = await reaches(created.id, "completed");
    expect(done.report).toMatchObject({ items: 2, notReviewed: 2, outcomes: { keep: 2 } });
    expect(done.report!.applied).toBeUndefined();
    for (const id of [used.id, fresh.id]) expect((await g.admin.keys.get(p.id, id)).status).toBe("active");
    expect((await g.chat(p.id, used.key, "gpt-4o-mini")).status).toBe(200);
    expect(await reasonOf(g.admin.reviews.apply(created.id, done.etag))).toBe("409 access_review_applied");
  });

  it("with no channel to people (Azure has none yet), a campaign still starts and completes; reviewers find their items through the API", async () => {
    overrideServices({ clock: g.t.appClock, notifier: new NoChannelNotifier() });
    try {
      const before = inbox("olivia").length;
      const created = await g.admin.reviews.create(campaign({ name: "no channel" }));
      const started = await reaches(created.id, "inProgress");
      expect((await olivia.reviews.items(created.id)).items.length).toBe(2);
      expect(inbox("olivia")).toHaveLength(before);
      await g.admin.reviews.stop(created.id, { reason: "seen it start" }, started.etag);
      await reaches(created.id, "completed");
    } finally {
      overrideServices({ clock: g.t.appClock });
    }
  });

  it("runs stages in turn: each stage's reviewers are notified when it starts, and a later stage's decision overrides an earlier one", async () => {
    const created = await g.admin.reviews.create(
      campaign({ name: "two stages", stages: [{ reviewers: { type: "users", users: ["olivia"] }, durationDays: 3 }, { reviewers: { type: "users", users: ["paula"] }, durationDays: 3 }], reminders: false }),
    );
    await reaches(created.id, "inProgress");
    const item = await itemFor(created.id, used.id);
    expect(item.reviewers).toEqual(["olivia"]);
    // Stage 2's reviewer cannot decide in stage 1.
    expect(await reasonOf(paula.reviews.decide(created.id, item.id, { decision: "approve", justification: "early" }))).toBe("403 not_item_reviewer");
    await olivia.reviews.decide(created.id, item.id, { decision: "deny", justification: "first look" });
    g.t.appClock.advance(3 * DAY + 60_000);
    const second = await until(async () => {
      const r = await g.admin.reviews.get(created.id);
      return r.currentStage === 1 ? r : undefined;
    }, "stage 2");
    expect(second.stageStates.map((s) => s.status)).toEqual(["completed", "inProgress"]);
    await until(() => inbox("paula").find((m) => m.subject.includes("stage 2 of 2") && m.link?.includes(created.id)), "paula's notice");
    expect((await itemFor(created.id, used.id)).reviewers).toEqual(["paula"]);
    expect(await reasonOf(olivia.reviews.decide(created.id, item.id, { decision: "deny" }))).toBe("403 not_item_reviewer");
    await paula.reviews.decide(created.id, item.id, { decision: "approve", justification: "still used" });
    g.t.appClock.advance(3 * DAY + 60_000);
    const done = await reaches(created.id, "completed");
    expect(await itemFor(created.id, used.id)).toMatchObject({ outcome: "keep", outcomeSource: "decision", decisions: [{ stage: 0, decision: "deny", by: "olivia" }, { stage: 1, decision: "approve", by: "paula" }] });
    expect(done.report).toMatchObject({ decided: { approve: 1 }, outcomes: { keep: done.itemCount } });
  });

  it("fallback reviewers review what the stage's reviewers cannot: a project whose only owner holds the access", async () => {
    const solo = await g.project("solo", { owner: "dora" });
    const own = await g.admin.keys.create(solo.id, { name: "dora's own", owner: "dora" });
    const created = await g.admin.reviews.create(campaign({ name: "solo", scope: { level: "project", projectId: solo.id }, stages: [{ reviewers: { type: "projectOwners" }, fallbackReviewers: ["fiona", "dora"] }] }));
    await reaches(created.id, "inProgress");
    // The owner is the holder: never their own reviewer, not even as a fallback.
    expect(await itemFor(created.id, own.id)).toMatchObject({ reviewers: ["fiona"], target: { holder: "dora" } });
    const fiona = await g.as("fiona", []);
    expect((await fiona.reviews.list()).items.map((r) => r.id)).toContain(created.id);
    expect((await fiona.reviews.decide(created.id, (await itemFor(created.id, own.id)).id, { decision: "deny", justification: "unused" })).decisions).toHaveLength(1);
  });

  it("reviews role assignments by activity; without auto-apply a denial is applied on request and the assignment is gone", async () => {
    const created = await g.admin.reviews.create(campaign({ name: "who may act", kind: "roleAssignments", stages: [{ reviewers: { type: "users", users: ["olivia"] }, durationDays: 7 }] }));
    await reaches(created.id, "inProgress");
    const paulaItem = await itemFor(created.id, "paula/ProjectAdmin");
    const doraItem = await itemFor(created.id, "dora/Developer");
    // dora's key was used through the gateway; paula never acted in the project.
    expect(doraItem.recommendation).toBe("keep");
    expect(paulaItem).toMatchObject({ recommendation: "remove", target: { holder: "paula" }, reviewers: ["olivia"] });

    // The CLI, as a reviewer would use it.
    const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-reviews-")), "config.json") };
    const cli = async (...args: string[]) => {
      const out: string[] = [];
      const code = await runCli(["--endpoint", g.t.url, ...args], { out: (x) => out.push(x), err: (x) => out.push(x), env });
      return { code, out: out.join("\n") };
    };
    expect((await cli("login", "--dev", "--tenant", "t-reviews", "--user", "olivia")).code).toBe(0);
    const mine = await cli("--output", "json", "reviews", "items", created.id, "--mine", "--recommendation", "remove");
    expect(mine.code).toBe(0);
    expect((JSON.parse(mine.out) as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([paulaItem.id]);
    expect((await cli("reviews", "decide", created.id, paulaItem.id, "--decision", "deny")).code).toBe(0);

    const reviewNow = await g.admin.reviews.get(created.id);
    await g.admin.reviews.stop(created.id, { reason: "decided" }, reviewNow.etag);
    const done = await reaches(created.id, "completed");
    expect(done.report).toMatchObject({ outcomes: { remove: 1, keep: 1 } });
    // Not auto-applied: paula still holds the role until someone applies.
    expect((await g.admin.projects.get(p.id)).roleAssignments).toContainEqual({ principalId: "paula", role: "ProjectAdmin" });
    const applying = await g.admin.reviews.apply(created.id, done.etag);
    expect(applying.status).toBe("applying");
    const applied = await reaches(created.id, "completed");
    expect(applied.report!.applied).toEqual({ removed: 1, alreadyGone: 0, failed: 0 });
    expect((await g.admin.projects.get(p.id)).roleAssignments).not.toContainEqual({ principalId: "paula", role: "ProjectAdmin" });
    expect(await reasonOf(paula.projects.update(p.id, { description: "still mine?" }, (await g.admin.projects.get(p.id)).etag))).toBe("403 forbidden");
  });

  it("a decision sent with the item's ETag is made only on what the reviewer read: over another reviewer's since, 412", async () => {
    const created = await g.admin.reviews.create(campaign({ name: "two reviewers", stages: [{ reviewers: { type: "users", users: ["olivia", "paula"] }, durationDays: 3 }], reminders: false, completion: { autoApply: false, defaultDecision: "keep" } }));
    await reaches(created.id, "inProgress");
    const read = await itemFor(created.id, used.id);
    await paula.reviews.decide(created.id, read.id, { decision: "approve", justification: "paula first" }, read.etag);
    expect(await reasonOf(olivia.reviews.decide(created.id, read.id, { decision: "deny", justification: "on a stale read" }, read.etag))).toBe("412 precondition_failed");
    expect((await itemFor(created.id, used.id)).decisions.map((d) => [d.by, d.decision])).toEqual([["paula", "approve"]]);
    // Read again, it decides (the later decision of a stage is the stage's).
    const fresh = await itemFor(created.id, used.id);
    expect((await olivia.reviews.decide(created.id, fresh.id, { decision: "deny", justification: "read paula's" }, fresh.etag)).decisions.map((d) => d.by)).toEqual(["olivia"]);
    await g.admin.reviews.stop(created.id, { reason: "done" }, (await g.admin.reviews.get(created.id)).etag);
    await reaches(created.id, "completed");
  });

  it("a stake taken during the campaign counts: a reviewer an agent's key passed to, or who asked to renew an exemption, decides neither", async () => {
    // An agent's key, dora's, reviewed by the project's owner; then the agent (and its key) passes to olivia.
    const q = await g.project("stakes", { owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const m = await g.model(q.id, "stakes-model");
    await g.publish("the stakes model");
    const agent = await g.admin.agents.create(q.id, { name: "handed over", owner: "dora", guardrails: { models: [m.id] } });
    const issued = await g.admin.agents.issueKey(q.id, agent.id, {});
    const keysReview = await g.admin.reviews.create(
      campaign({ name: "agent keys", scope: { level: "project", projectId: q.id }, stages: [{ reviewers: { type: "projectOwners" }, durationDays: 3 }, { reviewers: { type: "projectOwners" }, durationDays: 3 }], reminders: false }),
    );
    await reaches(keysReview.id, "inProgress");
    expect(await itemFor(keysReview.id, issued.id)).toMatchObject({ target: { holder: "dora" }, reviewers: ["olivia", "paula"] });
    await g.admin.agents.update(q.id, agent.id, { owner: "olivia" }, (await g.admin.agents.get(q.id, agent.id)).etag);
    expect((await g.admin.keys.get(q.id, issued.id)).owner).toBe("olivia");
    const keyItem = await itemFor(keysReview.id, issued.id);
    expect(await reasonOf(olivia.reviews.decide(keysReview.id, keyItem.id, { decision: "approve", justification: "mine now" }))).toBe("403 reviewer_is_holder");
    // The next stage leaves her out (its reviewers are who has no stake now).
    g.t.appClock.advance(3 * DAY + 60_000);
    await until(async () => ((await g.admin.reviews.get(keysReview.id)).currentStage === 1 ? true : undefined), "stage 2");
    expect((await itemFor(keysReview.id, issued.id)).reviewers).toEqual(["paula"]);
    expect((await itemFor(keysReview.id, issued.id)).decisions).toEqual([]);
    await g.admin.reviews.stop(keysReview.id, { reason: "seen" }, (await g.admin.reviews.get(keysReview.id)).etag);
    await reaches(keysReview.id, "completed");

    // An exemption of dora's, reviewed by tara (a TenantAdmin), who then asks to renew it.
    await g.admin.projects.update(q.id, { settings: { tokens: { perMinute: { limit: 1_000, per: "key" } } } }, (await g.admin.projects.get(q.id)).etag);
    await g.publish("a per-minute limit to exempt from");
    const waiverId = await activeWaiver(dora, { level: "project", projectId: q.id });
    const tara = await g.as("tara", ["TenantAdmin"]);
    const exemptionsReview = await g.admin.reviews.create(campaign({ name: "waivers", kind: "exemptions", scope: { level: "project", projectId: q.id }, stages: [{ reviewers: { type: "users", users: ["tara"] } }] }));
    await reaches(exemptionsReview.id, "inProgress");
    const exemptionItem = await itemFor(exemptionsReview.id, waiverId);
    expect(exemptionItem.reviewers).toEqual(["tara"]);
    await tara.exemptions.renew(waiverId, { expiresAt: new Date(g.t.appClock.ms() + 14 * DAY).toISOString(), evidence: ["https://evidence.example/load-test-2"], justification: "one more week" }, (await tara.exemptions.get(waiverId)).etag);
    expect(await reasonOf(tara.reviews.decide(exemptionsReview.id, exemptionItem.id, { decision: "approve", justification: "renewing it" }))).toBe("403 reviewer_is_party");
    expect((await itemFor(exemptionsReview.id, waiverId)).decisions).toEqual([]);
    await g.admin.reviews.stop(exemptionsReview.id, { reason: "seen" }, (await g.admin.reviews.get(exemptionsReview.id)).etag);
    await reaches(exemptionsReview.id, "completed");
  });

  it("a ProjectAdmin assigned on the project (no tenant role) starts and stops its campaigns; others are refused", async () => {
    const pia = await g.as("pia", []);
    const q = await g.project("pia's", { owner: "olivia", roleAssignments: [{ principalId: "pia", role: "ProjectAdmin" }] });
    const spec = (extra: Partial<AccessReviewSpecInput> = {}) => campaign({ name: "pia's review", scope: { level: "project", projectId: q.id }, startAt: new Date(g.t.appClock.now().getTime() + 2 * DAY).toISOString(), ...extra });
    const mine = await pia.reviews.create(spec());
    expect(mine).toMatchObject({ status: "scheduled", createdBy: "pia" });
    expect(await reasonOf(pia.reviews.create(spec({ scope: { level: "tenant" } })))).toBe("403 forbidden");
    expect(await reasonOf(pia.reviews.create(campaign()))).toBe("403 forbidden");
    expect(await reasonOf(dora.reviews.create(spec()))).toBe("403 forbidden");
    expect(await reasonOf(dora.reviews.stop(mine.id, { reason: "not mine" }, mine.etag))).toBe("403 forbidden");
    const stopped = await pia.reviews.stop(mine.id, { reason: "not needed" }, mine.etag);
    expect(stopped).toMatchObject({ status: "canceled", canceledReason: "not needed", updatedBy: "pia" });
  });

  it("a recurring review schedules its next campaign one period on, and the sweep drives it", async () => {
    const created = await g.admin.reviews.create(campaign({ name: "weekly", recurrence: { frequency: "weekly", occurrences: 2 } }));
    const started = await reaches(created.id, "inProgress");
    await g.admin.reviews.stop(created.id, { reason: "this week's is done" }, started.etag);
    const done = await reaches(created.id, "completed");
    expect(done.nextId).toBeDefined();
    const next = await g.admin.reviews.get(done.nextId!);
    expect(next).toMatchObject({ status: "scheduled", occurrence: 2, previousId: created.id, name: "weekly", kind: "keys" });
    expect(Date.parse(next.startAt)).toBe(Date.parse(done.startAt) + 7 * DAY);
    await g.t.app.host.invokeTimer("accessReviewSweep");
    g.t.appClock.advance(7 * DAY);
    const second = await reaches(next.id, "inProgress");
    const secondStopped = await g.admin.reviews.stop(second.id, { reason: "done" }, second.etag);
    expect(secondStopped.status).toBe("inProgress");
    // The last occurrence schedules nothing.
    expect((await reaches(next.id, "completed")).nextId).toBeUndefined();
  });

  it("shares, tool approvals and exemptions: what reviewers deny is removed when applied", async () => {
    // A key shared with another project (the target's admin approves).
    const other = await g.project("other", { owner: "olivia" });
    await g.model(other.id, "gpt-4o-mini");
    await g.publish("a project to share into");
    const key = await g.key(dora, p.id, { name: "shared" });
    const { approval: shareApproval } = await dora.keys.share(p.id, key.id, { projectId: other.id, justification: "evaluation" }, (await dora.keys.get(p.id, key.id)).etag);
    await g.admin.approvals.decide(shareApproval.id, { decision: "approve", justification: "ok" }, (await g.admin.approvals.get(shareApproval.id)).etag);
    await until(async () => ((await g.admin.keys.get(p.id, key.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.systemPublish(`key ${key.id} shared with ${other.id}`);
    await g.synced(p.id, key.id);
    expect((await g.chat(other.id, key.key, "gpt-4o-mini")).status).toBe(200);
    // A tool approved for the project.
    const server = await convertedServer(g.admin, p.id, "items");
    await g.admin.tools.putSettings(p.id, { approvalMode: "all" }, (await g.admin.tools.getSettings(p.id)).etag);
    const asked = await dora.tools.requestApproval(p.id, server.id, "getItem", { justification: "lookups" });
    await g.admin.approvals.decide(asked.approval.id, { decision: "approve", justification: "ok" }, (await g.admin.approvals.get(asked.approval.id)).etag);
    await until(async () => ((await g.admin.tools.getTool(p.id, server.id, "getItem")).approval.state === "approved" ? true : undefined), "tool approved");
    // An exemption in force, relaxing a per-minute limit the project has.
    await g.admin.projects.update(p.id, { settings: { tokens: { perMinute: { limit: 1_000, per: "key" } } } }, (await g.admin.projects.get(p.id)).etag);
    await g.publish("a per-minute limit to exempt from");
    /** A week's waiver of the per-minute limit, owned by dora, at a scope. */
    const exemptionId = await activeWaiver(dora, { level: "project", projectId: p.id });
    await g.systemPublish(exemptionId);
    const perMinuteLeft = async () => {
      const answer = await g.chat(p.id, key.key, "gpt-4o-mini");
      expect(answer.status).toBe(200);
      return answer.headers.get("x-aigov-tokens-remaining-minute-key");
    };
    // At the gateway: the waiver's 5,000 tokens a minute are in force (what a call has left is over the project's 1,000).
    expect(Number(await perMinuteLeft())).toBeGreaterThan(1_000);

    const denyAll = async (kind: "keyShares" | "toolApprovals" | "exemptions", targetId: string) => {
      const created = await g.admin.reviews.create(campaign({ name: `deny ${kind}`, kind, stages: [{ reviewers: { type: "users", users: ["olivia"] } }], completion: { autoApply: true, defaultDecision: "keep" } }));
      const started = await reaches(created.id, "inProgress");
      const item = await itemFor(created.id, targetId);
      expect(item, `${kind}: ${targetId} is reviewed`).toBeDefined();
      await olivia.reviews.decide(created.id, item.id, { decision: "deny", justification: "no longer needed" });
      await g.admin.reviews.stop(created.id, { reason: "decided" }, (await g.admin.reviews.get(started.id)).etag);
      const done = await reaches(created.id, "completed");
      expect(done.report!.applied, kind).toMatchObject({ removed: 1, failed: 0 });
    };

    await denyAll("keyShares", `${key.id}>${other.id}`);
    expect((await g.admin.keys.get(p.id, key.id)).shares[0]?.status).toBe("revoked");
    expect((await g.admin.keys.shared(other.id)).items).toEqual([]);
    // At the gateway: the key no longer reaches the project it was shared with, and still works in its own.
    await g.synced(p.id, key.id);
    expect(refusal(await g.chat(other.id, key.key, "gpt-4o-mini"))).toEqual(NOT_SERVED);

    await denyAll("toolApprovals", `${server.id}/getItem`);
    expect((await g.admin.tools.getTool(p.id, server.id, "getItem")).approval.state).toBe("withdrawn");
    await g.systemPublish("items/getItem approval withdrawn");

    await denyAll("exemptions", exemptionId);
    expect((await g.admin.exemptions.get(exemptionId)).status).toBe("revoked");
    await g.systemPublish(`${exemptionId} revoked`);
    // At the gateway: the project's own limit is back.
    expect(Number(await perMinuteLeft())).toBeLessThanOrEqual(1_000);

    // A tenant-scope exemption (two TenantAdmins approve it: it is high risk) is reviewed by a tenant-wide
    // campaign, under `_tenant`, by the fallback reviewers when the stage's are project owners.
    const tara = await g.as("tara", ["TenantAdmin"]);
    const rhea = await g.as("rhea", ["TenantAdmin"]);
    const wideId = await activeWaiver(rhea, { level: "tenant" }, [g.admin, tara]);
    const tenantWide = await g.admin.reviews.create(
      campaign({ name: "tenant exemptions", kind: "exemptions", scope: { level: "tenant" }, stages: [{ reviewers: { type: "projectOwners" }, fallbackReviewers: ["olivia"] }], completion: { autoApply: true, defaultDecision: "keep" } }),
    );
    const running = await reaches(tenantWide.id, "inProgress");
    const item = await itemFor(tenantWide.id, wideId);
    expect(item).toMatchObject({ projectId: "_tenant", reviewers: ["olivia"], target: { holder: "dora", label: "exemption from tokens.perMinute (tenant)" } });
    await olivia.reviews.decide(tenantWide.id, item.id, { decision: "deny", justification: "no longer needed" });
    await g.admin.reviews.stop(tenantWide.id, { reason: "decided" }, (await g.admin.reviews.get(running.id)).etag);
    expect((await reaches(tenantWide.id, "completed")).report!.applied).toMatchObject({ removed: 1, failed: 0 });
    expect((await g.admin.exemptions.get(wideId)).status).toBe("revoked");
  });

  it("a tool approval withdrawn by an apply whose publish failed is published by the next apply", async () => {
    const server = await convertedServer(g.admin, p.id, "again", "https://again.mock.localhost");
    await g.admin.tools.putSettings(p.id, { approvalMode: "all" }, (await g.admin.tools.getSettings(p.id)).etag);
    await g.publish("the again server");
    const asked = await dora.tools.requestApproval(p.id, server.id, "getItem", { justification: "lookups" });
    await g.admin.approvals.decide(asked.approval.id, { decision: "approve", justification: "ok" }, (await g.admin.approvals.get(asked.approval.id)).etag);
    await until(async () => ((await g.admin.tools.getTool(p.id, server.id, "getItem")).approval.state === "approved" ? true : undefined), "tool approved");
    await g.systemPublish(asked.approval.id);
    const key = (await g.key(dora, p.id, { name: "again", scopes: { tools: [server.id] } })).key;
    const call = () =>
      fetch(`${g.t.gateway.url}/${g.names.mcpApiPath(p.id, "again")}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "getItem", arguments: { id: "1" } } }),
      }).then(async (r) => [r.status, ((await r.json()) as { error?: { data?: { reason?: string } } }).error?.data?.reason]);
    expect((await call())[1]).not.toBe("tool_not_approved");

    const created = await g.admin.reviews.create(campaign({ name: "deny again", kind: "toolApprovals", stages: [{ reviewers: { type: "users", users: ["olivia"] } }], completion: { autoApply: false, defaultDecision: "keep" } }));
    const started = await reaches(created.id, "inProgress");
    const item = await itemFor(created.id, `${server.id}/getItem`);
    await olivia.reviews.decide(created.id, item.id, { decision: "deny", justification: "no longer needed" });
    await g.admin.reviews.stop(created.id, { reason: "decided" }, (await g.admin.reviews.get(started.id)).etag);
    const done = await reaches(created.id, "completed");
    // An earlier apply withdrew the grant, and the publish it then asked for failed (written here as it left the store).
    const grants = (await g.t.container().items.query<{ id: string; tool: string; serverId: string }>({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.docType = 'toolGrant'", parameters: [{ name: "@t", value: g.tenant }] }).fetchAll()).resources;
    const grant = grants.find((x) => x.serverId === server.id && x.tool === "getItem")!;
    await g.t.container().item(grant.id, [g.tenant, p.id]).replace({ ...grant, state: "withdrawn", cause: "access review" });
    // Applying (again) finds nothing approved to withdraw, and still asks for the publish.
    await g.admin.reviews.apply(created.id, done.etag);
    await reaches(created.id, "completed");
    await g.systemPublish("again/getItem approval withdrawn");
    expect(await call()).toEqual([403, "tool_not_approved"]);
  });
});
