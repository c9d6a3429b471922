// Deadlines hold without the orchestration, and every long workflow's driver is brought back by its
// sweep: the real app (local host, durable engine, embedded Cosmos) with the services' clock moved by
// hand (ServiceOverrides.clock) and the ARM publisher on the recording fake. Orchestrations are killed
// through the durable HTTP API the way an operator (or a crash) would; the timers are run by hand.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createHttpHeaders, type PipelineResponse } from "@azure/core-rest-pipeline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { overrideServices } from "../../src/app/services.js";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { armPublisherOn, createArmFake, type ArmFake } from "../support/arm-fake.js";
import { until } from "../support/until.js";

const DAY = 24 * 3600 * 1000;
const TENANT = "t-drivers";
/** A 200-character approver id: its inbox file name must still be valid. */
const LONG_ID = `approver-${"x".repeat(191)}`;

let t: TestApp;
let fake: ArmFake;
/** How far the services' clock is ahead of the real one. */
let skew = 0;
/** While set, the gateway holds the next call until released, then refuses it (400: not retried). */
let stall: { hit: () => void; gate: Promise<void> } | undefined;
/** While true, the gateway answers every call with 500. */
let broken = false;
/** While set, the gateway holds the next call until released, then serves it (once). */
let hold: { hit: () => void; gate: Promise<void> } | undefined;
let alice: AigovClient; // Developer, requester
let bob: AigovClient; // named approver
let admin: AigovClient; // TenantAdmin, Auditor
let project: Project;

const refuse = (request: Parameters<Parameters<typeof armPublisherOn>[2] & object>[0], status: number): PipelineResponse => ({ request, status, headers: createHttpHeaders() });

beforeAll(async () => {
  fake = createArmFake();
  overrideServices({
    clock: { now: () => new Date(Date.now() + skew) },
    gatewayPublisher: (resolveSecret) =>
      armPublisherOn(fake, resolveSecret, async (req, send) => {
        if (hold) {
          const { hit, gate } = hold;
          hold = undefined;
          hit();
          await gate;
          return send(req);
        }
        if (stall) {
          const { hit, gate } = stall;
          hit();
          await gate;
          return refuse(req, 400);
        }
        return broken ? refuse(req, 500) : send(req);
      }),
  });
  t = await startTestApp();
  alice = await t.as(TENANT, "alice", ["Developer"]);
  bob = await t.as(TENANT, "bob", ["Reader"]);
  admin = await t.as(TENANT, "audrey", ["TenantAdmin", "Auditor"]);
  // The tenant's routes: tools go to bob, agents to bob and an approver with a very long id.
  const routes = await admin.approvals.routes();
  await admin.approvals.putRoutes(
    {
      routes: [
        { name: "tools: bob", match: { subjectType: "model" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }] },
        { name: "agents: bob and a long id", match: { subjectType: "agent" }, stages: [{ approvers: [{ user: LONG_ID }, { user: "bob" }], decisionTimeout: "P1D" }] },
      ],
    },
    routes.etag,
  );
  project = await admin.projects.create(projectSpec("drivers"));
});
afterAll(async () => {
  overrideServices({});
  await t.stop();
});

/** The durable HTTP API, with the host's system key (as Azure requires). */
const durable = (path: string, init: RequestInit = {}) =>
  fetch(`${t.url}/runtime/webhooks/durabletask${path}`, { ...init, headers: { "x-functions-key": t.app.durableKey } });
async function instance(id: string): Promise<{ runtimeStatus: string; output: unknown } | undefined> {
  const res = await durable(`/instances/${id}`);
  return res.status === 404 ? undefined : ((await res.json()) as { runtimeStatus: string; output: unknown });
}
const statusIs = (id: string, ...wanted: string[]) => until(async () => ((await instance(id)) && wanted.includes((await instance(id))!.runtimeStatus) ? (await instance(id))! : undefined), `${id} ${wanted.join("|")}`);
async function terminate(id: string): Promise<void> {
  expect((await durable(`/instances/${id}/terminate?reason=lost`, { method: "POST" })).status).toBe(202);
  await statusIs(id, "Terminated");
}

function inbox(user: string): { link: string }[] {
  const file = FileNotifier.inboxFile(join(t.app.dataDir, "inbox"), user);
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { link: string }) : [];
}
const linksFor = (user: string, approvalId: string) => inbox(user).filter((m) => m.link.includes(`/approvals/${approvalId}/`));
const linkFor = (user: string, approvalId: string) => until(() => linksFor(user, approvalId)[0]?.link, `link for ${user}`);

const request = (resourceType = "model") => alice.approvals.create({ subject: { resourceType, resourceId: "github-mcp", change: { enable: true } }, justification: "the payments team needs it" });
const reasonOf = (p: Promise<unknown>) => p.then(() => "accepted", (e: unknown) => (e instanceof ApiError ? `${e.status} ${e.problem?.reason}` : String(e)));
const dataReason = (html: string) => /data-reason="([^"]+)"/.exec(html)?.[1];

describe("deadlines hold without the orchestration", () => {
  it("an approval 40 s after the deadline, its orchestration terminated, is refused (409 approval_deadline_passed) and expires the request", async () => {
    const created = await request();
    await linkFor("bob", created.id);
    await terminate(created.id);
    skew += Date.parse(created.stages[0]!.deadline!) - (Date.now() + skew) + 40_000;
    expect(await reasonOf(bob.approvals.decide(created.id, { decision: "approve", justification: "late" }, created.etag))).toBe("409 approval_deadline_passed");
    const after = await admin.approvals.get(created.id);
    expect(after).toMatchObject({ status: "expired", decisions: [] });
    const audit = await admin.audit.list({ resource: `/approvals/${created.id}` });
    expect(audit.items.map((r) => r.action)).toEqual(["approval.expire", "approval.create"]);
  });

  it("a late decision through the link is refused the same way; the waiting orchestration is woken and finishes", async () => {
    const created = await request();
    const link = await linkFor("bob", created.id);
    skew += Date.parse(created.stages[0]!.deadline!) - (Date.now() + skew) + 1000;
    const late = await t.anonymous.approvals.submitLink(link, "approve", "too late");
    expect(late.status).toBe(409);
    expect(dataReason(late.html)).toBe("approval_deadline_passed");
    expect((await admin.approvals.get(created.id)).status).toBe("expired");
    expect((await statusIs(created.id, "Completed")).output).toBe("expired");
  });
});

describe("approval driver sweep", () => {
  it("expires a past-due request whose orchestration was terminated, and the exemption it guarded is rejected", async () => {
    const exemption = await alice.exemptions.request({
      control: "contentSafety",
      scope: { level: "project", projectId: project.id },
      relaxation: { kind: "thresholds", categories: { Hate: 6 } },
      category: "waiver",
      owner: "olga",
      reason: { deliveryBlocker: "clinical terms are flagged", affectedControl: "Hate threshold 4", expectedEndState: "a custom blocklist" },
      compensatingControls: ["human review"],
      evidence: ["https://tickets.example.com/SEC-11"],
      expiresAt: new Date(Date.now() + skew + 20 * DAY).toISOString(),
    });
    const approval = await admin.approvals.get(exemption.approvalId);
    await statusIs(approval.id, "Running");
    await terminate(approval.id);
    skew += Date.parse(approval.stages[0]!.deadline!) - (Date.now() + skew) + 60_000;
    await t.app.host.invokeTimer("approvalDriverSweep");
    expect(await admin.approvals.get(approval.id)).toMatchObject({ status: "expired", decisions: [] });
    expect((await admin.exemptions.get(exemption.id)).status).toBe("rejected");
    // A past-due request is expired, never given a new driver.
    expect((await instance(approval.id))!.runtimeStatus).toBe("Terminated");
  });

  it("starts a terminated orchestration of a request that is not due yet again, once; it then drives the request to its end", async () => {
    const created = await request();
    await linkFor("bob", created.id);
    await terminate(created.id);
    await t.app.host.invokeTimer("approvalDriverSweep");
    await statusIs(created.id, "Running", "Pending");
    expect((await admin.approvals.get(created.id)).status).toBe("pending");
    // The new driver sends the stage's links again.
    await until(() => linksFor("bob", created.id).length === 2 || undefined, "a new link from the new driver");
    // A second sweep finds it alive and starts nothing (a new driver would send a third link).
    await t.app.host.invokeTimer("approvalDriverSweep");
    await t.app.host.invokeTimer("approvalDriverSweep");
    expect(linksFor("bob", created.id)).toHaveLength(2);
    const link = linksFor("bob", created.id)[1]!.link;
    expect((await t.anonymous.approvals.submitLink(link, "approve", "driven again")).status).toBe(200);
    expect((await statusIs(created.id, "Completed")).output).toBe("approved");
  });
});

describe("a new driver picks up where the request is", () => {
  it("a two-stage request decided past stage 1 while it had no driver: the new driver sends stage 2's links, not stage 1's", async () => {
    const created = await alice.approvals.create({
      subject: { resourceType: "model", resourceId: "github-mcp", change: { enable: true } },
      justification: "two stages",
      stages: [{ approvers: [{ user: "carol" }], decisionTimeout: "P1D" }],
    });
    const first = await linkFor("bob", created.id);
    await terminate(created.id);
    expect((await t.anonymous.approvals.submitLink(first, "approve", "stage one")).status).toBe(200);
    expect(await admin.approvals.get(created.id)).toMatchObject({ status: "pending", currentStage: 1 });
    expect(linksFor("carol", created.id)).toHaveLength(0);
    await t.app.host.invokeTimer("approvalDriverSweep");
    const second = await linkFor("carol", created.id);
    expect(linksFor("bob", created.id)).toHaveLength(1);
    expect((await t.anonymous.approvals.submitLink(second, "approve", "stage two")).status).toBe(200);
    expect((await statusIs(created.id, "Completed")).output).toBe("approved");
  });
});

describe("approver links and delivery", () => {
  it("a link for B is refused under A's URL (page and form: 403 approval_link_mismatch) and changes neither", async () => {
    const a = await request();
    const b = await request();
    const linkB = await linkFor("bob", b.id);
    await linkFor("bob", a.id);
    const crossed = linkB.replace(`/approvals/${b.id}/`, `/approvals/${a.id}/`);
    const page = await t.anonymous.approvals.openLink(crossed);
    expect(page.status).toBe(403);
    expect(dataReason(page.html)).toBe("approval_link_mismatch");
    const posted = await t.anonymous.approvals.submitLink(crossed, "approve", "wrong request");
    expect(posted.status).toBe(403);
    expect(dataReason(posted.html)).toBe("approval_link_mismatch");
    expect(await admin.approvals.get(a.id)).toMatchObject({ status: "pending", decisions: [], etag: a.etag });
    expect(await admin.approvals.get(b.id)).toMatchObject({ status: "pending", decisions: [], etag: b.etag });
    expect((await t.anonymous.approvals.submitLink(linkB, "approve", "right request")).status).toBe(200);
  });

  it("an approver with a 200-character id gets a link like everyone else; the orchestration keeps running", async () => {
    const created = await request("agent");
    const long = await linkFor(LONG_ID, created.id);
    await linkFor("bob", created.id);
    expect(FileNotifier.inboxFile("/inbox", LONG_ID).length).toBeLessThan(140);
    expect(new URL(long).pathname).toBe(`/api/approvals/${created.id}/review`);
    expect((await instance(created.id))!.runtimeStatus).toBe("Running");
    const audit = await admin.audit.list({ resource: `/approvals/${created.id}` });
    expect(audit.items.map((r) => r.action)).toEqual(["approval.create"]); // nothing failed
  });
});

describe("the other drivers come back too", () => {
  it("a publish whose orchestration was terminated mid-apply is applied by the gateway publish sweep", async () => {
    let hit!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (hit = r));
    stall = { hit, gate: new Promise<void>((r) => (release = r)) };
    const result = await admin.policy.publish({ reason: "driver test" });
    const revisionId = result.revision!.id;
    await reached;
    await terminate(revisionId);
    stall = undefined;
    release(); // the terminated orchestration's apply gets a refusal; nothing picks up its result
    expect((await admin.policy.revision(revisionId)).status).toBe("pending");
    await t.app.host.invokeTimer("gatewayPublishSweep");
    expect((await statusIs(revisionId, "Completed")).output).toBe("published");
    expect((await admin.policy.revision(revisionId)).status).toBe("published");
  });

  it("a publish that stalled past its lease never records itself over the newer one that took the gateway meanwhile", async () => {
    skew = 0;
    const setLimit = async (limit: number) => {
      const s = await admin.settings.get();
      await admin.settings.put({ settings: { tokens: { perMinute: { limit } } } }, s.etag);
    };
    await setLimit(1111);
    let hit!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (hit = r));
    hold = { hit, gate: new Promise<void>((r) => (release = r)) };
    const older = (await admin.policy.publish({ reason: "stalls" })).revision!;
    await reached;
    skew = 11 * 60 * 1000; // its lease has run out
    await setLimit(2222);
    const newer = (await admin.policy.publish({ reason: "takes over" })).revision!;
    expect((await statusIs(newer.id, "Completed")).output).toBe("published");
    release();
    await statusIs(older.id, "Completed", "Failed");
    expect((await admin.policy.revision(older.id)).status).toBe("superseded");
    expect((await admin.policy.revision(newer.id)).status).toBe("published");
    // The gateway's published revision is the newer one (what drift checks compare with).
    expect((await admin.policy.checkDrift()).revisionId).toBe(newer.id);
    skew = 0;
  });

  it("a drift check while a publish holds the gateway reports nothing new: what differs then is the publish", async () => {
    skew = 0;
    const before = await admin.policy.checkDrift();
    const policy = [...fake.state.keys()].find((k) => /^apis\/[^/]+\/policies\/policy$/.test(k))!;
    fake.edit(policy, (p) => (p.value = `${String(p.value)}<!-- edited meanwhile -->`.replace("<inbound>", "<inbound><set-header name=\"x-edited\" exists-action=\"override\"><value>1</value></set-header>")));
    let hit!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (hit = r));
    hold = { hit, gate: new Promise<void>((r) => (release = r)) };
    const s = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 3333 } } } }, s.etag);
    const revision = (await admin.policy.publish({ reason: "holds the gateway" })).revision!;
    await reached;
    const during = await admin.policy.checkDrift();
    expect([during.status, during.checkedAt, during.revisionId]).toEqual([before.status, before.checkedAt, before.revisionId]);
    release();
    expect((await statusIs(revision.id, "Completed")).output).toBe("published");
    // Once it is over, a check compares again (the publish rewrote the edited policy).
    expect(await admin.policy.checkDrift()).toMatchObject({ status: "inSync", revisionId: revision.id });
  });

  it("a key rotation whose orchestration was terminated is started again by the key lifecycle job and completes", async () => {
    // The overlap's end is the services' time and its durable timer runs on the real one: line them up.
    skew = 0;
    const key = await admin.keys.create(project.id, { name: "rotating" });
    const synced = await until(async () => {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      await t.app.host.invokeTimer("keyLifecycle");
      const k = await admin.keys.get(project.id, key.id);
      return k.gateway.state === "synced" ? k : undefined;
    }, "key synced");
    broken = true; // the rotation cannot confirm: its orchestration retries, then pauses
    await admin.keys.rotate(project.id, key.id, { overlap: "PT0S" }, synced.etag);
    // The rotation's instance id is `<keyId>.<rotationId>`.
    const id = await until(async () => {
      const all = (await (await durable("/instances")).json()) as { instanceId: string; runtimeStatus: string }[];
      return all.find((i) => i.instanceId.startsWith(`${key.id}.`) && i.runtimeStatus === "Running")?.instanceId;
    }, "the rotation's orchestration");
    await terminate(id);
    broken = false;
    await t.app.host.invokeTimer("keyLifecycle");
    expect((await statusIs(id, "Completed")).output).toBe("done");
    const done = await admin.keys.get(project.id, key.id);
    expect(done.rotationCount).toBe(1);
    expect(done.rotation).toBeUndefined();
  });
});
