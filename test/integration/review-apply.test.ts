/**
 * An access review's outcome is about the grant its reviewers saw. Applied later, it removes that grant
 * only: the same role assigned again since (a new decision nobody reviewed) stays, and the item says
 * what it reviewed is already gone. Found by an attack helper (stop 41).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import type { AccessReview } from "../../src/domain/reviews/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { until } from "../support/until.js";

const DAY = 86_400_000;
let t: TestApp;
let admin: AigovClient;
let rita: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  overrideServices({ clock: t.appClock });
  admin = await t.as("t1", "tina", ["TenantAdmin"]);
  rita = await t.as("t1", "rita", []);
});
afterAll(async () => {
  overrideServices({});
  await t.stop();
});

async function reaches(id: string, status: AccessReview["status"]): Promise<AccessReview> {
  return until(async () => {
    const r = await admin.reviews.get(id);
    return r.status === status ? r : undefined;
  }, `access review ${id} ${status}`);
}

/** A campaign over one project, rita its one reviewer for 7 days, under way. */
async function reviewStarted(name: string, kind: "roleAssignments" | "keyShares", projectId: string, defaultDecision: "keep" | "remove"): Promise<AccessReview> {
  const created = await admin.reviews.create({
    name,
    kind,
    scope: { level: "project", projectId },
    stages: [{ reviewers: { type: "users", users: ["rita"] }, durationDays: 7 }],
    completion: { autoApply: false, defaultDecision },
  });
  return reaches(created.id, "inProgress");
}

/** A project where dora is a Developer, and a completed review (not applied) in which rita denied that assignment. */
async function deniedRole(name: string) {
  const project = await admin.projects.create(projectSpec(name, { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] }));
  const created = await reviewStarted(`role review of ${name}`, "roleAssignments", project.id, "keep");
  const item = (await admin.reviews.items(created.id)).items.find((i) => i.target.id === "dora/Developer")!;
  await rita.reviews.decide(created.id, item.id, { decision: "deny", justification: "left the team" });
  t.appClock.advance(8 * DAY);
  const review = await reaches(created.id, "completed");
  return { project, review };
}

describe("deciding while a campaign completes", () => {
  it("an item whose outcome the completion has fixed takes no decision, though the campaign read as in progress", async () => {
    const project = await admin.projects.create(projectSpec("late-decision", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] }));
    const created = await reviewStarted("late decision", "roleAssignments", project.id, "remove");
    const item = (await admin.reviews.items(created.id)).items.find((i) => i.target.id === "dora/Developer")!;
    // A stop's completion has written this item's outcome; the campaign document is not completed yet (as a
    // decision that read it just before the stop sees it).
    const stored = t.container().item(item.id, ["t1", "_tenant"]);
    const { resource } = await stored.read<Record<string, unknown>>();
    await stored.replace({ ...resource, outcome: "remove", outcomeSource: "default", applyDue: true });
    expect((await admin.reviews.get(created.id)).status).toBe("inProgress");
    expect(await rita.reviews.decide(created.id, item.id, { decision: "approve", justification: "still needed" }).then(
      () => "decided",
      (e: { status?: number; problem?: { reason?: string } }) => `${e.status} ${e.problem?.reason}`,
    )).toBe("409 access_review_closed");
    expect((await admin.reviews.items(created.id)).items.find((i) => i.id === item.id)?.decisions).toEqual([]);
  });
});

describe("applying an access review", () => {
  it("removes only the grant that was reviewed: a role assigned again after the review stays", async () => {
    const { project, review: done } = await deniedRole("stale-apply");
    let p = project;
    const created = done;
    expect(done.report?.outcomes.remove).toBe(1);

    // The TenantAdmin takes the access away by hand, and a week later grants it again (a new decision).
    p = await admin.projects.update(p.id, { roleAssignments: [] }, p.etag);
    t.appClock.advance(7 * DAY);
    p = await admin.projects.update(p.id, { roleAssignments: [{ principalId: "dora", role: "Developer" }] }, p.etag);
    expect(p.roleAssignments).toEqual([{ principalId: "dora", role: "Developer" }]);

    // Someone then applies the old campaign: it must not take away the grant it never reviewed.
    await admin.reviews.apply(created.id, (await admin.reviews.get(created.id)).etag);
    await reaches(created.id, "completed");
    const after = await admin.projects.get(p.id);
    expect(after.roleAssignments).toEqual([{ principalId: "dora", role: "Developer" }]);
    const applied = (await admin.reviews.items(created.id)).items.find((i) => i.target.id === "dora/Developer")!;
    expect(applied.applied?.result).toBe("alreadyGone");
    expect((await admin.reviews.get(created.id)).report?.applied).toEqual({ removed: 0, alreadyGone: 1, failed: 0 });
  });

  it("an outcome applied while the reviewed grant still stands removes it", async () => {
    const { project: p, review: created } = await deniedRole("fresh-apply");
    await admin.reviews.apply(created.id, (await admin.reviews.get(created.id)).etag);
    await until(async () => ((await admin.reviews.get(created.id)).report?.applied ? true : undefined), "applied");
    expect((await admin.projects.get(p.id)).roleAssignments).toEqual([]);
    expect((await admin.reviews.get(created.id)).report?.applied).toEqual({ removed: 1, alreadyGone: 0, failed: 0 });
  });

  it("a key shared again after the review keeps its new share; the share reviewed, still standing elsewhere, is ended", async () => {
    const source = await admin.projects.create(projectSpec("share-source", { owner: "olivia" }));
    const [again, still] = [await admin.projects.create(projectSpec("share-again", { owner: "olivia" })), await admin.projects.create(projectSpec("share-still", { owner: "olivia" }))];
    const key = await admin.keys.create(source.id, { name: "shared twice" });
    const approver = await t.as("t1", "tony", ["TenantAdmin"]);
    const share = async (target: string) => {
      const { approval } = await admin.keys.share(source.id, key.id, { projectId: target, justification: "evaluation" }, (await admin.keys.get(source.id, key.id)).etag);
      await approver.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
      await until(async () => ((await admin.keys.get(source.id, key.id)).shares.some((x) => x.projectId === target && x.status === "active") ? true : undefined), `shared with ${target}`);
    };
    await share(again.id);
    await share(still.id);
    const created = await reviewStarted("share review", "keyShares", source.id, "keep");
    const items = (await admin.reviews.items(created.id)).items;
    expect(items.map((i) => i.target.id).sort()).toEqual([`${key.id}>${again.id}`, `${key.id}>${still.id}`].sort());
    for (const item of items) await rita.reviews.decide(created.id, item.id, { decision: "deny", justification: "evaluation over" });
    t.appClock.advance(8 * DAY);
    await reaches(created.id, "completed");

    // One share is ended by hand and, a week later, made again (a new approval nobody reviewed).
    await admin.keys.unshare(source.id, key.id, again.id, (await admin.keys.get(source.id, key.id)).etag);
    t.appClock.advance(7 * DAY);
    await share(again.id);

    await admin.reviews.apply(created.id, (await admin.reviews.get(created.id)).etag);
    await until(async () => ((await admin.reviews.get(created.id)).report?.applied ? true : undefined), "applied");
    const shares = (await admin.keys.get(source.id, key.id)).shares;
    expect(shares.filter((x) => x.status === "active").map((x) => x.projectId)).toEqual([again.id]);
    expect(shares.find((x) => x.projectId === still.id)?.status).toMatch(/^(revoked|revocationPending)$/);
    const results = Object.fromEntries((await admin.reviews.items(created.id)).items.map((i) => [i.target.id, i.applied?.result]));
    expect(results).toEqual({ [`${key.id}>${again.id}`]: "alreadyGone", [`${key.id}>${still.id}`]: "removed" });
    expect((await admin.reviews.get(created.id)).report?.applied).toEqual({ removed: 1, alreadyGone: 1, failed: 0 });
  });
});
