// Deadlines hold without the orchestration: clock-controlled tests of the approval engine on the real
// store (embedded Cosmos), with no durable host at all — decisions after a stage's deadline, links used
// under another request's URL, notifier failures, and the exemption sweep settling what a dead
// orchestration left undecided.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { NoChannelNotifier } from "../../src/adapters/notify/no-channel.js";
import { ApprovalLinks } from "../../src/domain/approvals/links.js";
import type { ApprovalRouteService } from "../../src/domain/approvals/routes.js";
import type { ApproverRef } from "../../src/domain/approvals/schema.js";
import { ApprovalService } from "../../src/domain/approvals/service.js";
import { ChangeWriter, type AuditDoc, type OutboxDoc } from "../../src/domain/changes.js";
import type { RequestContext, Role } from "../../src/domain/common.js";
import { AppError } from "../../src/domain/errors.js";
import { ExemptionService } from "../../src/domain/exemptions/service.js";
import { ModelService } from "../../src/pillars/models/service.js";
import { ProjectService } from "../../src/domain/projects/service.js";
import type { Clock } from "../../src/ports/clock.js";
import { TENANT_SCOPE, type StoredDoc, unversioned } from "../../src/ports/store.js";
import { canonicalUser, sameUser } from "../../src/domain/users.js";

const DAY = 24 * 3600 * 1000;
const TENANT = "t-deadlines";

let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let now = Date.parse("2026-05-04T08:00:00.000Z");
const clock: Clock = { now: () => new Date(now) };
const delivered: { to: string; link?: string }[] = [];
/** Recipients whose channel fails. */
const unreachable = new Set<string>();
/** While true, deliveries go through Azure's notifier: no channel to anyone. */
let noChannel = false;
/** The stages every request gets (the tenant's route, as far as these tests are concerned). */
let routeStages: { approvers: ApproverRef[]; decisionTimeout: string }[] = [];
let approvals: ApprovalService;
let exemptions: ExemptionService;
let projectId: string;

const ctx = (user: string, roles: Role[]): RequestContext => ({ principal: { tenantId: TENANT, userId: user, roles: new Set(roles) }, correlationId: `test-${user}` });
const alice = ctx("alice", ["Developer"]);
const bob = ctx("bob", ["Reader"]);
const boss = ctx("boss", ["TenantAdmin", "Auditor"]);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-deadlines-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const changes = new ChangeWriter(store, clock);
  const projects = new ProjectService(store, changes, clock);
  const secrets = new EncryptedFileSecretStore(join(dir, "secrets"));
  const models = new ModelService(store, changes, clock, secrets, projects);
  const notifier = {
    deliver: async (to: string, m: { subject: string; body: string; link?: string }) => {
      if (noChannel) return new NoChannelNotifier().deliver();
      if (unreachable.has(to)) throw Object.assign(new Error(`mailbox of ${to} refused ${m.link ?? ""}`), { code: "EMAILREFUSED" });
      delivered.push({ to, ...(m.link ? { link: m.link } : {}) });
    },
  };
  // Who approves is the routes' business (the lead's ApprovalRouteService): here every request gets routeStages.
  const routes = { resolve: async () => ({ name: "test route", source: "tenant" as const, stages: routeStages }) } as unknown as ApprovalRouteService;
  approvals = new ApprovalService(store, changes, clock, new ApprovalLinks(secrets, clock), notifier, projects, () => "https://aigov.test", routes);
  exemptions = new ExemptionService({ store, changes, clock, approvals, projects, models, tenantSettings: async () => ({}), notifier, requestPublish: async () => undefined });
  projectId = (await projects.create(boss, { name: "deadlines", environment: "dev", owner: "olga" })).id;
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

const request = (stages = [{ approvers: [{ user: "bob" }] as ApproverRef[], decisionTimeout: "P1D" }]) => {
  routeStages = stages;
  return approvals.create(alice, { subject: { resourceType: "model", resourceId: "github-mcp", change: { enable: true } }, justification: "needed for the payments team" }).then((r) => r.approval);
};

describe("a request its subject never recorded is withdrawn", () => {
  /** An active exemption (approved by boss, settled as the orchestration would). */
  async function activeExemption() {
    const { exemption, approval } = await requestExemption("SEC-10", 10);
    await approvals.decide(boss, approval.id, { decision: "approve", justification: "ok" }, (await approvals.get(boss, approval.id)).etag);
    await approvals.settle(TENANT, approval.id, "settle");
    const active = await exemptions.get(alice, exemption.id);
    expect(active.status).toBe("active");
    return active;
  }
  const requestsFor = async (exemptionId: string) => (await approvals.list(boss, { maxPageSize: 100 })).items.filter((a) => a.subject.resourceType === "exemption" && a.subject.resourceId === exemptionId);
  /** Leaves nothing pending for the other tests' sweeps: the renewals still open are rejected and settled. */
  async function closeRequests(exemptionId: string) {
    for (const a of await requestsFor(exemptionId)) {
      if (a.status !== "pending") continue;
      await approvals.decide(boss, a.id, { decision: "reject", justification: "test over" }, a.etag);
      await approvals.settle(TENANT, a.id, "cleanup");
    }
  }

  it("two renewals at once: the one whose write lost is withdrawn at once (audited, announced); its settlement changes nothing", async () => {
    const active = await activeExemption();
    // Both requests read the exemption before either records its renewal: the race the ETag decides.
    let arrived = 0;
    let release!: () => void;
    const bothIn = new Promise<void>((r) => (release = r));
    const original = approvals.request.bind(approvals);
    const spy = vi.spyOn(approvals, "request").mockImplementation(async (c, input) => {
      if (++arrived === 2) release();
      await bothIn;
      return original(c, input);
    });
    const renew = (n: number) => exemptions.renew(alice, active.id, { expiresAt: new Date(now + 30 * DAY).toISOString(), evidence: [`https://tickets.example.com/SEC-10-${n}`], justification: `renewal ${n}` }, active.etag);
    const outcomes = await Promise.allSettled([renew(1), renew(2)]).finally(() => spy.mockRestore());
    const won = outcomes.filter((o) => o.status === "fulfilled");
    expect(won).toHaveLength(1);
    const lost = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
    expect((lost.reason as AppError).error.kind).toBe("preconditionFailed");

    const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<ExemptionService["renew"]>>>).value.approval;
    const renewalRequests = (await requestsFor(active.id)).filter((a) => (a.subject.change as { kind?: string }).kind === "renewal");
    expect(renewalRequests.map((a) => [a.id === winner.id, a.status]).sort()).toEqual([
      [false, "withdrawn"],
      [true, "pending"],
    ]);
    const withdrawn = renewalRequests.find((a) => a.status === "withdrawn")!;
    expect(withdrawn.timeline.at(-1)).toMatchObject({ type: "withdrawn", actor: "system:approval-withdraw", detail: "its subject did not record the request" });
    expect(withdrawn.stages[0]!.status).toBe("withdrawn");
    expect((await auditOf(`/approvals/${withdrawn.id}`)).map((a) => a.action)).toEqual(["approval.create", "approval.withdraw"]);
    expect((await eventsOf(`/approvals/${withdrawn.id}`)).map((e) => e.type)).toEqual(["aigov.approval.requested.v1", "aigov.approval.withdrawn.v1"]);
    // Nobody can decide it any more; settling it (the sweep does) leaves the exemption and the winner's renewal alone.
    expect(await refusal(approvals.decide(boss, withdrawn.id, { decision: "approve", justification: "late" }, withdrawn.etag))).toEqual({ kind: "conflict", reason: "approval_not_awaiting" });
    const before = await exemptions.get(alice, active.id);
    expect(await approvals.settle(TENANT, withdrawn.id, "sweep")).toBe("settled");
    const after = await exemptions.get(alice, active.id);
    expect(after.etag).toBe(before.etag);
    expect(after.renewals.map((r) => [r.approvalId, r.status])).toEqual([[winner.id, "pending"]]);
    expect((await approvals.metrics(boss)).counts.withdrawn).toBeGreaterThanOrEqual(1);
    await closeRequests(active.id);
  });

  it("a revoked exemption's open requests are withdrawn: the request itself while requested, a renewal while pending", async () => {
    const requested = await requestExemption("SEC-12", 10);
    await exemptions.revoke(alice, requested.exemption.id, { reason: "not needed" }, (await exemptions.get(alice, requested.exemption.id)).etag);
    expect((await approvals.get(boss, requested.approval.id)).status).toBe("withdrawn");
    const active = await activeExemption();
    const renewal = (await exemptions.renew(alice, active.id, { expiresAt: new Date(now + 30 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-12-r"], justification: "renewal" }, active.etag)).approval;
    await exemptions.revoke(alice, active.id, { reason: "done early" }, (await exemptions.get(alice, active.id)).etag);
    expect((await approvals.get(boss, renewal.id)).status).toBe("withdrawn");
    expect(await approvals.withdrawIfOrphaned(TENANT, renewal.id, "sweep")).toBe(false); // once
  });

  it("after a crash between the two writes, the sweep withdraws it once its grace period is over — and only it", async () => {
    const active = await activeExemption();
    // The request was opened; the process died before the exemption recorded it.
    const orphan = await approvals.request(alice, {
      subject: { resourceType: "exemption", resourceId: active.id, projectId, change: { kind: "renewal", renewal: 1 } },
      justification: "renewal",
      route: { subjectType: "exemption", scope: "project", risk: "standard" },
    });
    const recorded = (await exemptions.renew(alice, active.id, { expiresAt: new Date(now + 30 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-11"], justification: "renewal" }, active.etag)).approval;
    const unowned = await request();
    expect(await approvals.withdrawIfOrphaned(TENANT, orphan.id, "sweep-1")).toBe(false); // it may still be about to be recorded
    now += 11 * 60 * 1000;
    expect(await approvals.withdrawIfOrphaned(TENANT, orphan.id, "sweep-2")).toBe(true);
    expect(await approvals.withdrawIfOrphaned(TENANT, recorded.id, "sweep-2")).toBe(false);
    expect(await approvals.withdrawIfOrphaned(TENANT, unowned.id, "sweep-2")).toBe(false); // no owner to ask: never judged orphaned
    expect((await approvals.get(boss, orphan.id)).status).toBe("withdrawn");
    expect((await approvals.get(boss, recorded.id)).status).toBe("pending");
    expect((await approvals.get(boss, unowned.id)).status).toBe("pending");
    expect(await approvals.withdrawIfOrphaned(TENANT, orphan.id, "sweep-3")).toBe(false); // once
    expect((await auditOf(`/approvals/${orphan.id}`)).map((a) => [a.action, a.correlationId])).toEqual([
      ["approval.create", "test-alice"],
      ["approval.withdraw", "sweep-2"],
    ]);
    await closeRequests(active.id);
    await approvals.decide(bob, unowned.id, { decision: "reject", justification: "test over" }, (await approvals.get(boss, unowned.id)).etag);
  });
});

describe("who has a stake in an exemption never decides its requests", () => {
  it("its owner does not approve the request; its requester and owner do not approve a renewal; someone independent does", async () => {
    const olga = ctx("olga", ["TenantAdmin"]);
    const aliceAdmin = ctx("alice", ["TenantAdmin"]);
    const { exemption, approval } = await requestExemption("SEC-20", 10);
    expect(approval.parties).toEqual(["olga"]);
    expect(await refusal(approvals.decide(olga, approval.id, { decision: "approve", justification: "mine" }, approval.etag))).toEqual({ kind: "forbidden", reason: "approver_is_party" });
    await approvals.decide(boss, approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await approvals.settle(TENANT, approval.id, "settle");
    const active = await exemptions.get(alice, exemption.id);
    expect(active.status).toBe("active");
    // The owner renews it; the original requester (a TenantAdmin too) may not approve that alone.
    const renewal = (await exemptions.renew(olga, active.id, { expiresAt: new Date(now + 30 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-20-r"], justification: "another month" }, active.etag)).approval;
    expect(renewal.parties).toEqual(["alice"]);
    expect(await refusal(approvals.decide(aliceAdmin, renewal.id, { decision: "approve", justification: "fine" }, renewal.etag))).toEqual({ kind: "forbidden", reason: "approver_is_party" });
    await approvals.decide(boss, renewal.id, { decision: "approve", justification: "ok" }, renewal.etag);
    expect((await approvals.get(boss, renewal.id)).status).toBe("approved");
    await approvals.settle(TENANT, renewal.id, "settle");
    expect((await exemptions.get(alice, active.id)).renewals.map((r) => r.status)).toEqual(["approved"]);
  });
});

describe("an object id names its user in any case", () => {
  const OID = "c0ffee00-0000-4000-8000-00000000000a";
  it("an owner written in capitals is still the owner: kept in lower case, a party to the request, and refused as its approver", async () => {
    const owner = ctx(OID, ["TenantAdmin"]);
    const { exemption, approval } = await requestExemption("SEC-30", 10, OID.toUpperCase());
    expect(exemption.owner).toBe(OID);
    expect(approval.parties).toEqual([OID]);
    expect(await refusal(approvals.decide(owner, approval.id, { decision: "approve", justification: "mine" }, approval.etag))).toEqual({ kind: "forbidden", reason: "approver_is_party" });
    // A request stored before parties were kept so (its party in capitals) is judged the same way.
    routeStages = [{ approvers: [{ role: "TenantAdmin", scope: "tenant" }], decisionTimeout: "P7D" }];
    const older = (await approvals.create(alice, { subject: { resourceType: "model", resourceId: "m-older", change: { enable: true } }, justification: "needed" })).approval;
    const at = { tenantId: TENANT, scopeId: TENANT_SCOPE };
    const doc = await store.read<StoredDoc & { parties?: string[] }>(at, older.id);
    if (!doc) throw new Error("the request is not stored under the tenant scope");
    expect(await store.batch(at, [{ kind: "replace", doc: { ...unversioned(doc), parties: [OID.toUpperCase()] }, ifMatch: doc._etag }])).toMatchObject({ ok: true });
    const stored = await approvals.get(boss, older.id);
    expect(await refusal(approvals.decide(owner, older.id, { decision: "approve", justification: "mine" }, stored.etag))).toEqual({ kind: "forbidden", reason: "approver_is_party" });
    await approvals.decide(boss, approval.id, { decision: "reject", justification: "test over" }, approval.etag);
    await approvals.decide(boss, older.id, { decision: "reject", justification: "test over" }, stored.etag);
  });

  it("the same user in capitals and in lower case; other names as written", () => {
    expect(sameUser(OID.toUpperCase(), OID)).toBe(true);
    expect(canonicalUser(OID.toUpperCase())).toBe(OID);
    expect(sameUser("Olga", "olga")).toBe(false);
    expect(canonicalUser("Platform-Team")).toBe("Platform-Team");
    expect(sameUser(undefined, OID)).toBe(false);
  });
});

/** A project's content-safety waiver requested by alice, on a route of TenantAdmins (P7D). */
function requestExemption(ticket: string, days: number, owner = "olga") {
  routeStages = [{ approvers: [{ role: "TenantAdmin", scope: "tenant" }], decisionTimeout: "P7D" }];
  return exemptions.request(alice, {
    control: "contentSafety",
    scope: { level: "project", projectId },
    relaxation: { kind: "thresholds", categories: { Hate: 6 } },
    category: "waiver",
    owner,
    reason: { deliveryBlocker: "clinical terms are flagged", affectedControl: "Hate threshold 4", expectedEndState: "a custom blocklist" },
    compensatingControls: ["human review"],
    evidence: [`https://tickets.example.com/${ticket}`],
    expiresAt: new Date(now + days * DAY).toISOString(),
  });
}

/** Sends the stage's links (what the orchestration's first activity does) and returns bob's token. */
async function tokenFor(user: string, approvalId: string): Promise<string> {
  await approvals.issueLinks(TENANT, approvalId, 0, false);
  const link = delivered.filter((d) => d.to === user && d.link?.includes(`/approvals/${approvalId}/`)).at(-1)!.link!;
  return new URL(link).searchParams.get("token")!;
}

async function refusal(p: Promise<unknown>): Promise<{ kind: string; reason?: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  const e = (err as AppError).error;
  return { kind: e.kind, ...("reason" in e && e.reason ? { reason: e.reason } : {}) };
}

async function auditOf(resource: string): Promise<AuditDoc[]> {
  const page = await store.queryPage<AuditDoc>({ tenantId: TENANT, scopeId: TENANT_SCOPE }, { docType: "audit", maxPageSize: 500, orderBy: { field: "seq", direction: "ASC" } });
  return page.items.filter((a) => a.resource === resource);
}

async function eventsOf(subject: string): Promise<OutboxDoc["event"][]> {
  const page = await store.queryPage<OutboxDoc>({ tenantId: TENANT, scopeId: TENANT_SCOPE }, { docType: "outbox", maxPageSize: 500 });
  return page.items.map((o) => o.event).filter((e) => e.subject === `/tenants/${TENANT}${subject}`);
}

describe("a decision after the stage's deadline never counts", () => {
  it("through the API: 409 approval_deadline_passed, and the request is expired right then (the timer's transition)", async () => {
    const created = await request();
    const deadline = Date.parse(created.stages[0]!.deadline!);
    now = deadline + 40_000; // the orchestration is gone: nothing expired it at the deadline
    expect(await refusal(approvals.decide(bob, created.id, { decision: "approve", justification: "late" }, created.etag))).toEqual({ kind: "conflict", reason: "approval_deadline_passed" });
    const after = await approvals.get(boss, created.id);
    expect(after).toMatchObject({ status: "expired", decisions: [], stages: [{ status: "expired" }] });
    expect(after.timeline.map((e) => e.type)).toEqual(["requested", "stageStarted", "expired"]);
    expect((await auditOf(`/approvals/${created.id}`)).map((a) => [a.action, a.actor])).toEqual([
      ["approval.create", "alice"],
      ["approval.expire", "system:approval-timer"],
    ]);
    expect((await eventsOf(`/approvals/${created.id}`)).map((e) => e.type).sort()).toEqual(["aigov.approval.expired.v1", "aigov.approval.requested.v1"]);
    // Trying again changes nothing.
    expect((await refusal(approvals.decide(bob, created.id, { decision: "approve", justification: "again" }, after.etag))).kind).toBe("conflict");
    expect(await approvals.get(boss, created.id)).toEqual(after);
  });

  it("the deadline itself is too late; a millisecond before it is in time", async () => {
    const inTime = await request();
    now = Date.parse(inTime.stages[0]!.deadline!) - 1;
    expect((await approvals.decide(bob, inTime.id, { decision: "approve", justification: "just in time" }, inTime.etag)).status).toBe("approved");
    const late = await request();
    now = Date.parse(late.stages[0]!.deadline!);
    expect((await refusal(approvals.decide(bob, late.id, { decision: "reject", justification: "on the dot" }, late.etag))).reason).toBe("approval_deadline_passed");
    expect((await approvals.get(boss, late.id)).status).toBe("expired");
  });

  it("through an approver link: the (authentic, expired) link expires the request and is refused with the same reason", async () => {
    const created = await request();
    const token = await tokenFor("bob", created.id);
    now = Date.parse(created.stages[0]!.deadline!) + 40_000;
    expect(await refusal(approvals.decideByLink(created.id, token, { decision: "approve", justification: "late link" }, "corr-link"))).toEqual({ kind: "conflict", reason: "approval_deadline_passed" });
    const after = await approvals.get(boss, created.id);
    expect(after).toMatchObject({ status: "expired", decisions: [] });
    expect((await auditOf(`/approvals/${created.id}`)).at(-1)).toMatchObject({ action: "approval.expire", correlationId: "corr-link" });
    // Opening the page changes nothing: the link is expired.
    expect(await refusal(approvals.inspectLink(created.id, token))).toEqual({ kind: "forbidden", reason: "approval_link_expired" });
    expect(await approvals.get(boss, created.id)).toEqual(after);
  });

  it("the sweep's expireIfDue expires only what is past due", async () => {
    const created = await request();
    expect((await approvals.expireIfDue(TENANT, created.id, "sweep")).expired).toBe(false);
    expect((await approvals.get(boss, created.id)).status).toBe("pending");
    now = Date.parse(created.stages[0]!.deadline!) + 1;
    const { approval, expired } = await approvals.expireIfDue(TENANT, created.id, "sweep");
    expect(expired).toBe(true);
    expect(approval.status).toBe("expired");
    // A second run finds nothing due: nothing new is written.
    expect(await approvals.expireIfDue(TENANT, created.id, "sweep")).toMatchObject({ expired: false, approval: { status: "expired" } });
    expect((await auditOf(`/approvals/${created.id}`)).map((a) => a.action)).toEqual(["approval.create", "approval.expire"]);
  });
});

describe("approver links belong to their request's URL", () => {
  it("a link for B used under A's URL is refused (403 approval_link_mismatch), on the page and in the form; neither request changes", async () => {
    const a = await request();
    const b = await request();
    const tokenB = await tokenFor("bob", b.id);
    expect(await refusal(approvals.decideByLink(a.id, tokenB, { decision: "approve", justification: "wrong URL" }, "c"))).toEqual({ kind: "forbidden", reason: "approval_link_mismatch" });
    expect(await refusal(approvals.inspectLink(a.id, tokenB))).toEqual({ kind: "forbidden", reason: "approval_link_mismatch" });
    expect(await approvals.get(boss, a.id)).toEqual(a);
    expect(await approvals.get(boss, b.id)).toEqual(b);
    // Under its own URL the link still works (its nonce was not burnt by the refusal).
    expect((await approvals.inspectLink(b.id, tokenB)).approval.id).toBe(b.id);
    expect((await approvals.decideByLink(b.id, tokenB, { decision: "approve", justification: "right URL" }, "c")).status).toBe("approved");
  });
});

describe("an escalation whose links failed to go out", () => {
  it("sends them when the timer's activity is retried (the request is escalated already)", async () => {
    const stages = [{ approvers: [{ user: "bob" }] as ApproverRef[], decisionTimeout: "P1D", escalateAfter: "PT1H", escalateTo: [{ user: "dave" }] as ApproverRef[] }];
    const created = await request(stages);
    const linksTo = (user: string) => delivered.filter((d) => d.to === user && d.link?.includes(`/approvals/${created.id}/`)).length;
    // Signing the escalation's link fails once (the secret store did not answer): the activity fails after the escalation was written.
    const spy = vi.spyOn(ApprovalLinks.prototype, "issue").mockRejectedValueOnce(new Error("the vault did not answer"));
    try {
      await expect(approvals.timeout(TENANT, created.id, 0, "escalate", "timer-1")).rejects.toThrow(/vault/);
    } finally {
      spy.mockRestore();
    }
    expect((await approvals.get(boss, created.id)).stages[0]!.status).toBe("escalated");
    expect(linksTo("dave")).toBe(0);
    await approvals.timeout(TENANT, created.id, 0, "escalate", "timer-1-retry");
    expect(linksTo("dave")).toBe(1);
  });
});

describe("a link decision that races another change", () => {
  it("is made on the request as it is now, not answered with a 412 that loses the approver's justification; a race that ends the stage refuses it", async () => {
    const stages = [{ approvers: [{ user: "bob" }] as ApproverRef[], decisionTimeout: "P1D", escalateAfter: "PT1H", escalateTo: [{ user: "dave" }] as ApproverRef[] }];
    const created = await request(stages);
    const token = await tokenFor("bob", created.id);
    // The escalation timer lands between bob's page reading the request and his decision being written.
    const record = (approvals as unknown as { record: (...a: unknown[]) => Promise<unknown> }).record.bind(approvals);
    let raced = 0;
    const spy = vi.spyOn(approvals as unknown as { record: (...a: unknown[]) => Promise<unknown> }, "record").mockImplementation(async (...args) => {
      if (raced++ === 0) await approvals.timeout(TENANT, created.id, 0, "escalate", "test-timer");
      return record(...args);
    });
    try {
      const decided = await approvals.decideByLink(created.id, token, { decision: "approve", justification: "typed once" }, "c");
      expect(decided).toMatchObject({ status: "approved", decisions: [{ approver: "bob", justification: "typed once", via: "link" }] });
      expect(decided.timeline.map((e) => e.type)).toEqual(["requested", "stageStarted", "escalated", "decided", "approved"]);
      // A race that decides the stage first: the link is checked again and refused (not a 412).
      const other = await request([{ approvers: [{ user: "bob" }, { user: "carol" }] as ApproverRef[], decisionTimeout: "P1D" }]);
      const bobs = await tokenFor("bob", other.id);
      raced = 1;
      spy.mockImplementationOnce(async (...args) => {
        await approvals.decide(ctx("carol", ["Reader"]), other.id, { decision: "reject", justification: "carol first" }, (await approvals.get(boss, other.id)).etag);
        return record(...args);
      });
      expect((await refusal(approvals.decideByLink(other.id, bobs, { decision: "approve", justification: "too late" }, "c"))).kind).toBe("conflict");
      expect(await approvals.get(boss, other.id)).toMatchObject({ status: "rejected", decisions: [{ approver: "carol" }] });
    } finally {
      spy.mockRestore();
    }
  });
});

describe("notifier failures do not fail the approval", () => {
  it("the other approvers get their links; the failure is audited and announced without the link; the request is untouched", async () => {
    const created = await request([{ approvers: [{ user: "bob" }, { user: "carol" }, { user: "dave" }], decisionTimeout: "P1D" }]);
    unreachable.add("carol");
    delivered.length = 0;
    const state = await approvals.issueLinks(TENANT, created.id, 0, false);
    unreachable.clear();
    expect(state).toMatchObject({ status: "pending", currentStage: 0 });
    expect(delivered.map((d) => d.to).sort()).toEqual(["bob", "dave"]);
    // Recorded without changing the request: approvers' ETags stay valid.
    expect(await approvals.get(boss, created.id)).toEqual(created);
    const audit = await auditOf(`/approvals/${created.id}`);
    expect(audit.map((a) => [a.action, a.actor])).toEqual([
      ["approval.create", "alice"],
      ["approval.notify.failed", "system:approval-notifier"],
    ]);
    const [warning] = (await eventsOf(`/approvals/${created.id}`)).filter((e) => e.type === "aigov.approval.notification.failed.v1");
    expect(warning!.data).toMatchObject({ id: created.id, stage: 0, escalation: false, undelivered: [{ recipient: "carol", error: "EMAILREFUSED" }] });
    expect(JSON.stringify(warning)).not.toContain("token");
    expect(JSON.stringify(warning)).not.toContain("https://aigov.test");
    // In a deployment with no channel at all (Azure's notifier today), every link is recorded undelivered.
    const silent = await request([{ approvers: [{ user: "bob" }, { user: "carol" }], decisionTimeout: "P1D" }]);
    delivered.length = 0;
    noChannel = true;
    await approvals.issueLinks(TENANT, silent.id, 0, false);
    noChannel = false;
    expect(delivered).toEqual([]);
    const [none] = (await eventsOf(`/approvals/${silent.id}`)).filter((e) => e.type === "aigov.approval.notification.failed.v1");
    expect((none!.data as { undelivered: unknown[] }).undelivered).toEqual([
      { recipient: "bob", error: "no_notification_channel" },
      { recipient: "carol", error: "no_notification_channel" },
    ]);
    // Carol can still decide through the API.
    expect((await approvals.decide(ctx("carol", ["Reader"]), created.id, { decision: "approve", justification: "saw it in the list" }, created.etag)).status).toBe("approved");
  });
});

describe("the exemption sweep settles what a dead orchestration left undecided", () => {
  it("an exemption whose approval is past its deadline is rejected by the sweep (approval expired and settled)", async () => {
    const { exemption, approval } = await requestExemption("SEC-9", 20);
    // Before the deadline the sweep leaves the request alone.
    await exemptions.sweep("sweep-1");
    expect((await exemptions.get(alice, exemption.id)).status).toBe("requested");
    now = Date.parse(approval.stages[0]!.deadline!) + 1000;
    const result = await exemptions.sweep("sweep-2");
    expect(result.settled).toBe(1);
    expect(await approvals.get(boss, approval.id)).toMatchObject({ status: "expired" });
    const after = await exemptions.get(alice, exemption.id);
    expect(after.status).toBe("rejected");
    expect((await auditOf(`/exemptions/${exemption.id}`)).map((a) => a.action)).toEqual(["exemption.request", "exemption.reject"]);
    expect(await approvals.settle(TENANT, approval.id, "again")).toBe("settled");
    // Idempotent: another run changes nothing.
    await exemptions.sweep("sweep-3");
    expect((await exemptions.get(alice, exemption.id)).etag).toBe(after.etag);
  });
});
