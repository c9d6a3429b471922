// Clock-controlled tests of the exemption lifecycle on the real store (embedded Cosmos): the approval
// settle hook, the expiry sweep with its 7-day and 1-day notices, catch-up after an outage, renewals.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { ApprovalLinks } from "../../src/domain/approvals/links.js";
import { ApprovalRouteService } from "../../src/domain/approvals/routes.js";
import { ApprovalService } from "../../src/domain/approvals/service.js";
import { ChangeWriter, type AuditDoc, type OutboxDoc } from "../../src/domain/changes.js";
import type { RequestContext, Role } from "../../src/domain/common.js";
import type { ExemptionSpecInput } from "../../src/domain/exemptions/schema.js";
import { ExemptionService } from "../../src/domain/exemptions/service.js";
import { ModelService } from "../../src/pillars/models/service.js";
import { ProjectService } from "../../src/domain/projects/service.js";
import type { Clock } from "../../src/ports/clock.js";
import { TENANT_SCOPE } from "../../src/ports/store.js";

const DAY = 24 * 3600 * 1000;
const HOUR = 3600 * 1000;
const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const TENANT = "t-sweep";

let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let now = T0;
const clock: Clock = { now: () => new Date(now) };
const delivered: { to: string; subject: string; at: number }[] = [];
const publishes: { tenantId: string; reason: string }[] = [];
/** While true, asking for a publish fails (as when the publisher is unreachable). */
let publisherDown = false;
let approvals: ApprovalService;
let exemptions: ExemptionService;
let projectId: string;

const ctx = (user: string, roles: Role[]): RequestContext => ({ principal: { tenantId: TENANT, userId: user, roles: new Set(roles) }, correlationId: `test-${user}` });
const alice = ctx("alice", ["Developer"]);
const boss = ctx("boss", ["TenantAdmin"]);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-exm-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const changes = new ChangeWriter(store, clock);
  const projects = new ProjectService(store, changes, clock);
  const secrets = new EncryptedFileSecretStore(join(dir, "secrets"));
  const models = new ModelService(store, changes, clock, secrets, projects);
  const notifier = { deliver: async (to: string, m: { subject: string }) => void delivered.push({ to, subject: m.subject, at: now }) };
  approvals = new ApprovalService(store, changes, clock, new ApprovalLinks(secrets, clock), notifier, projects, () => "https://aigov.test", new ApprovalRouteService(store, changes, clock));
  exemptions = new ExemptionService({ store, changes, clock, approvals, projects, models, tenantSettings: async () => ({ contentSafety: { enabled: true } }), notifier, requestPublish: async (tenantId, cause) => {
      if (publisherDown) throw new Error("the publisher is unreachable");
      publishes.push({ tenantId, reason: cause.reason });
    } });
  projectId = (await projects.create(boss, { name: "sweep", environment: "dev", owner: "olga" })).id;
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

const spec = (days: number, extra: Partial<ExemptionSpecInput> = {}): ExemptionSpecInput => ({
  control: "contentSafety",
  scope: { level: "project", projectId },
  relaxation: { kind: "thresholds", categories: { Hate: 6 } },
  category: "waiver",
  owner: "olga",
  reason: { deliveryBlocker: "medical triage prompts are flagged", affectedControl: "Hate threshold 4 blocks clinical terms", expectedEndState: "custom blocklist replaces the threshold" },
  compensatingControls: ["human review of flagged sessions"],
  evidence: ["https://tickets.example.com/SEC-1"],
  expiresAt: new Date(now + days * DAY).toISOString(),
  ...extra,
});

/** Requests and approves an exemption, settling the approval as the orchestration would. */
async function activeExemption(days: number, owner = "olga") {
  const { exemption, approval } = await exemptions.request(alice, spec(days, { owner }));
  await approvals.decide(boss, approval.id, { decision: "approve", justification: "ok" }, approval.etag);
  expect(await approvals.settle(TENANT, approval.id, "test")).toBe("settled");
  const active = await exemptions.get(alice, exemption.id);
  expect(active.status).toBe("active");
  return active;
}

async function auditActions(id: string): Promise<string[]> {
  const page = await store.queryPage<AuditDoc>({ tenantId: TENANT, scopeId: TENANT_SCOPE }, { docType: "audit", maxPageSize: 100, orderBy: { field: "seq", direction: "ASC" } });
  let out = page.items.filter((a) => a.resource === `/exemptions/${id}`).map((a) => a.action);
  let token = page.continuationToken;
  while (token) {
    const next = await store.queryPage<AuditDoc>({ tenantId: TENANT, scopeId: TENANT_SCOPE }, { docType: "audit", maxPageSize: 100, orderBy: { field: "seq", direction: "ASC" }, continuationToken: token });
    out = out.concat(next.items.filter((a) => a.resource === `/exemptions/${id}`).map((a) => a.action));
    token = next.continuationToken;
  }
  return out;
}

async function eventTypes(id: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.queryPage<OutboxDoc>({ tenantId: TENANT, scopeId: TENANT_SCOPE }, { docType: "outbox", maxPageSize: 100, ...(token ? { continuationToken: token } : {}) });
    for (const o of page.items) if (o.event.subject.endsWith(`/exemptions/${id}`)) out.push(`${o.event.time}|${o.event.type}`);
    token = page.continuationToken;
  } while (token);
  // Several transitions can share one instant (the clock stands still): compare as a multiset.
  return out.map((e) => e.split("|")[1]!).sort();
}

/** Runs the sweep every `step` from now until `until`, skipping the runs inside `outage`. */
async function runSweeps(until: number, step: number, outage?: [number, number]) {
  while (now < until) {
    now += step;
    if (outage && now > outage[0] && now < outage[1]) continue;
    await exemptions.sweep("test-sweep");
  }
}

describe("exemption lifecycle with a controlled clock", () => {
  it("settling is idempotent: approve → activate once, one audit record and one event per transition", async () => {
    publishes.length = 0;
    const e = await activeExemption(30);
    // The orchestration and the sweep may both settle: nothing happens twice.
    expect(await approvals.settle(TENANT, e.approvalId, "again")).toBe("settled");
    await exemptions.settleApproval(await approvals.get(boss, e.approvalId), "direct");
    expect(await auditActions(e.id)).toEqual(["exemption.request", "exemption.approve", "exemption.activate"]);
    expect(await eventTypes(e.id)).toEqual(["aigov.exemption.activated.v1", "aigov.exemption.approved.v1", "aigov.exemption.requested.v1"]);
    expect(publishes).toEqual([{ tenantId: TENANT, reason: `exemption ${e.id} activated` }]);
    expect((await exemptions.listActive(TENANT, new Date(now))).map((x) => x.id)).toContain(e.id);
  });

  it("notices at 7 days and 1 day exactly once each, catching up after a 3-day outage, and expiry on time", async () => {
    delivered.length = 0;
    publishes.length = 0;
    const start = now;
    const e = await activeExemption(30, "olga-1");
    const expiry = Date.parse(e.expiresAt);
    // The sweep runs every 6 hours; it is down from day 21 to day 24, across the 7-day mark (day 23).
    await runSweeps(start + 28 * DAY, 6 * HOUR, [start + 21 * DAY, start + 24 * DAY]);
    const mine = () => delivered.filter((d) => d.to === "olga-1");
    expect(mine()).toHaveLength(1);
    expect(mine()[0]!.subject).toBe(`Exemption ${e.id} expires in 7 days`);
    expect(mine()[0]!.at).toBe(start + 24 * DAY); // the first run after the outage
    expect((await exemptions.get(alice, e.id)).status).toBe("expiring");

    // Up to one hour before expiry: the 1-day notice goes out once, at the 1-day mark.
    await runSweeps(expiry - HOUR, HOUR);
    expect(mine().map((d) => d.subject)).toEqual([`Exemption ${e.id} expires in 7 days`, `Exemption ${e.id} expires in 1 day`]);
    expect(mine()[1]!.at).toBe(expiry - DAY);
    // A publish at the expiry instant no longer carries it, even before the sweep has run.
    expect((await exemptions.listActive(TENANT, new Date(expiry))).map((x) => x.id)).not.toContain(e.id);

    await runSweeps(expiry, HOUR);
    await exemptions.sweep("again"); // idempotent: a second run at the same instant changes nothing
    const done = await exemptions.get(alice, e.id);
    expect(done).toMatchObject({ status: "expired", endedAt: new Date(expiry).toISOString(), notices: { "7d": { status: "sent" }, "1d": { status: "sent" } } });
    expect(mine()).toHaveLength(2);
    expect(publishes.filter((p) => p.reason.includes(e.id))).toEqual([
      { tenantId: TENANT, reason: `exemption ${e.id} activated` },
      { tenantId: TENANT, reason: `exemption ${e.id} expired` },
    ]);
    expect(await auditActions(e.id)).toEqual(["exemption.request", "exemption.approve", "exemption.activate", "exemption.notify", "exemption.notify", "exemption.expire"]);
    expect(await eventTypes(e.id)).toEqual([
      "aigov.exemption.activated.v1",
      "aigov.exemption.approved.v1",
      "aigov.exemption.expired.v1",
      "aigov.exemption.expiring.v1",
      "aigov.exemption.expiring.v1",
      "aigov.exemption.requested.v1",
    ]);
  });

  it("after an outage across both marks only the 1-day notice goes out; across the expiry it expires without late notices", async () => {
    delivered.length = 0;
    const start = now;
    const both = await activeExemption(10, "olga-2");
    const gone = await activeExemption(5, "olga-3");
    // Down from day 1 to day 9.5: both marks of `both` (day 3, day 9) and the expiry of `gone` (day 5) pass.
    now = start + 9.5 * DAY;
    await exemptions.sweep("catch-up");
    await exemptions.sweep("catch-up-again");
    expect(delivered.filter((d) => d.to === "olga-2").map((d) => d.subject)).toEqual([`Exemption ${both.id} expires in 1 day`]);
    expect((await exemptions.get(alice, both.id)).notices).toMatchObject({ "1d": { status: "sent" }, "7d": { status: "superseded" } });
    expect(delivered.filter((d) => d.to === "olga-3")).toEqual([]);
    expect(await exemptions.get(alice, gone.id)).toMatchObject({ status: "expired", endedAt: new Date(now).toISOString() });
  });

  it("a renewal is a new approval with updated evidence; history is kept and the notices start again", async () => {
    delivered.length = 0;
    const e = await activeExemption(8, "olga-4");
    now += 2 * DAY;
    await exemptions.sweep("s"); // 6 days left: the 7-day notice
    expect(delivered.filter((d) => d.to === "olga-4")).toHaveLength(1);
    const current = await exemptions.get(alice, e.id);
    await expect(exemptions.renew(alice, e.id, { expiresAt: new Date(now + 20 * DAY).toISOString(), evidence: current.evidence, justification: "still needed" }, current.etag)).rejects.toMatchObject({
      error: { kind: "validation", errors: [{ field: "body.evidence" }] },
    });
    const { exemption: pending, approval } = await exemptions.renew(alice, e.id, { expiresAt: new Date(now + 20 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-2"], justification: "blocklist work slipped" }, current.etag);
    expect(pending.renewals).toMatchObject([{ number: 1, status: "pending", approvalId: approval.id, previousExpiresAt: e.expiresAt }]);
    expect(pending.expiresAt).toBe(e.expiresAt); // unchanged until approved
    // One renewal at a time.
    await expect(exemptions.renew(alice, e.id, { expiresAt: new Date(now + 21 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-9"], justification: "another" }, pending.etag)).rejects.toMatchObject({
      error: { kind: "conflict", reason: "renewal_pending" },
    });
    await approvals.decide(boss, approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await approvals.settle(TENANT, approval.id, "test");
    const renewed = await exemptions.get(alice, e.id);
    expect(renewed).toMatchObject({ status: "active", expiresAt: new Date(now + 20 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-2"], notices: {} });
    expect(renewed.renewals).toMatchObject([{ number: 1, status: "approved" }]);
    // A rejected second renewal leaves the exemption as it is and stays in the history.
    const second = await exemptions.renew(alice, e.id, { expiresAt: new Date(now + 25 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-3"], justification: "again" }, renewed.etag);
    await approvals.decide(boss, second.approval.id, { decision: "reject", justification: "fix it" }, second.approval.etag);
    await approvals.settle(TENANT, second.approval.id, "test");
    const after = await exemptions.get(alice, e.id);
    expect(after.renewals.map((r) => r.status)).toEqual(["approved", "rejected"]);
    expect(after.expiresAt).toBe(renewed.expiresAt);
  });

  it("an activation whose republish was lost is published by the next sweep (within a day)", async () => {
    publishes.length = 0;
    publisherDown = true;
    const e = await activeExemption(30);
    publisherDown = false;
    expect(await exemptions.get(alice, e.id)).toMatchObject({ status: "active" });
    expect(publishes).toEqual([]);
    await exemptions.sweep("after the outage");
    expect(publishes).toEqual([{ tenantId: TENANT, reason: "exemptions activated or ended in the last day" }]);
  });

  it("a rejected request never takes effect; the approval sweep's settle path finds it", async () => {
    publishes.length = 0;
    const { exemption, approval } = await exemptions.request(alice, spec(10));
    await approvals.decide(boss, approval.id, { decision: "reject", justification: "no" }, approval.etag);
    // As the approval sweep does after a crash: every finished, unsettled approval.
    const unsettled: string[] = [];
    for await (const u of approvals.unsettledEverywhere()) unsettled.push(u.id);
    expect(unsettled).toContain(approval.id);
    for (const id of unsettled) await approvals.settle(TENANT, id, "sweep");
    const after: string[] = [];
    for await (const u of approvals.unsettledEverywhere()) after.push(u.id);
    expect(after).toEqual([]);
    expect(await exemptions.get(alice, exemption.id)).toMatchObject({ status: "rejected" });
    expect(publishes).toEqual([]);
  });
});
