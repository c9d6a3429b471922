import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import type { ExemptionSpecInput } from "../../src/domain/exemptions/schema.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { errorOf, reasonOf, statusOf } from "../support/errors.js";
import { until } from "../support/until.js";

let t: TestApp;
let alice: AigovClient; // developer, requester
let carol: AigovClient; // tenant admin, approver
let auditor: AigovClient;
let project: Project;
const DAY = 24 * 3600 * 1000;

beforeAll(async () => {
  t = await startTestApp();
  alice = await t.as("t1", "alice", ["Developer"]);
  carol = await t.as("t1", "carol", ["TenantAdmin"]);
  auditor = await t.as("t1", "audrey", ["Auditor"]);
  project = await carol.projects.create(projectSpec("exempt me"));
});
afterAll(() => t.stop());

const spec = (extra: Partial<ExemptionSpecInput> = {}): ExemptionSpecInput => ({
  control: "contentSafety",
  scope: { level: "project", projectId: project.id },
  relaxation: { kind: "thresholds", categories: { Hate: 6 } },
  category: "waiver",
  owner: "olga",
  reason: { deliveryBlocker: "clinical prompts are flagged", affectedControl: "Hate threshold 4", expectedEndState: "a clinical blocklist" },
  compensatingControls: ["human review of flagged sessions"],
  evidence: ["https://tickets.example.com/SEC-1"],
  expiresAt: new Date(Date.now() + 14 * DAY).toISOString(),
  ...extra,
});


async function fieldsOf(p: Promise<unknown>): Promise<string[]> {
  const err = await errorOf(p);
  expect(err).toBeInstanceOf(ApiError);
  expect((err as ApiError).status).toBe(400);
  return ((err as ApiError).problem?.errors ?? []).map((e) => e.field);
}

describe("exemptions API", () => {
  it("refuses unsafe requests with 400 field errors and stores nothing", async () => {
    const auditBefore = (await auditor.audit.list()).items.length;
    const { owner: _o, ...noOwner } = spec();
    const { expiresAt: _e, ...noExpiry } = spec();
    expect(await fieldsOf(alice.exemptions.request(noOwner as ExemptionSpecInput))).toContain("body.owner");
    expect(await fieldsOf(alice.exemptions.request(noExpiry as ExemptionSpecInput))).toContain("body.expiresAt");
    expect(await fieldsOf(alice.exemptions.request(spec({ expiresAt: new Date(Date.now() + 31 * DAY).toISOString() })))).toEqual(["body.expiresAt"]);
    expect(await fieldsOf(alice.exemptions.request(spec({ compensatingControls: [] })))).toEqual(["body.compensatingControls"]);
    // The requester does not pick the approvers: the tenant's route does. Peers ("any Developer",
    // "any Reader") cannot even be added after it (the security review's walk-around).
    const peers = { stages: [{ approvers: [{ role: "Developer" as const }], decisionTimeout: "P1D" }, { approvers: [{ role: "Reader" as const }], decisionTimeout: "P1D" }] };
    const peerErr = await errorOf(alice.exemptions.request(spec({ control: "tokens.perMinute", relaxation: { kind: "off" }, approval: peers })));
    expect((peerErr as ApiError).problem).toMatchObject({ status: 400, reason: "approver_role_not_allowed" });
    expect((peerErr as ApiError).problem?.errors?.map((e) => e.field)).toEqual(["body.approval.stages.0.approvers", "body.approval.stages.1.approvers"]);
    // Allow-lists: widened (allow) or lifted (off) for a project or a model only, with values valid for the list.
    expect(await fieldsOf(alice.exemptions.request(spec({ control: "headers.required", relaxation: { kind: "off" } })))).toContain("body.control");
    expect(await fieldsOf(alice.exemptions.request(spec({ control: "regions.allowed", relaxation: { kind: "limit", value: 3 } })))).toEqual(["body.relaxation"]);
    expect(await fieldsOf(alice.exemptions.request(spec({ control: "regions.allowed", relaxation: { kind: "allow", values: ["eastus", "westeurope2"] }, scope: { level: "key", projectId: project.id, keyId: "key_0000000000000000000k" } })))).toEqual(["body.scope"]);
    expect(await fieldsOf(alice.exemptions.request(spec({ control: "dataClass.allowed", relaxation: { kind: "allow", values: ["Secret"] } })))).toEqual(["body.relaxation"]);
    expect(await fieldsOf(alice.exemptions.request(spec({ control: "regions.allowed", relaxation: { kind: "allow", values: ["<script>"] } })))).toContain("body.relaxation.values.0");
    expect(await fieldsOf(alice.exemptions.request(spec({ control: "contentSafety", relaxation: { kind: "allow", values: ["eastus"] } })))).toEqual(["body.relaxation"]);
    expect(
      await fieldsOf(carol.exemptions.request(spec({ control: "regions.allowed", scope: { level: "tenant" }, relaxation: { kind: "allow", values: ["eastus"] }, approval: { stages: [{ approvers: [{ role: "TenantAdmin" }], decisionTimeout: "P1D" }, { approvers: [{ role: "TenantAdmin" }], decisionTimeout: "P1D" }] } }))),
    ).toEqual(["body.scope"]);
    expect(await fieldsOf(alice.exemptions.request(spec({ scope: { level: "key", projectId: project.id, keyId: "key_x" } })))).toContain("body.scope.keyId");
    // Per-control maxima (tenant-configurable): both the category's and the control's apply.
    const policy = await carol.exemptions.policy();
    expect(policy).toMatchObject({ maxDays: { waiver: 30, mitigated: 90 }, etag: "initial" });
    await carol.exemptions.putPolicy({ maxDays: { waiver: 30, mitigated: 90 }, controls: { contentSafety: { mitigated: 10 } } }, "initial");
    expect(await fieldsOf(alice.exemptions.request(spec({ category: "mitigated", expiresAt: new Date(Date.now() + 11 * DAY).toISOString() })))).toEqual(["body.expiresAt"]);
    expect(await reasonOf(alice.exemptions.request(spec({ category: "mitigated", expiresAt: new Date(Date.now() + 11 * DAY).toISOString() })))).toBe("400 exemption_lifetime_exceeded");

    expect((await alice.exemptions.list()).items).toEqual([]);
    expect((await carol.approvals.list()).items).toEqual([]);
    const audit = await auditor.audit.list();
    // Only the policy change was recorded.
    expect(audit.items.map((r) => r.action)).toEqual(["exemptionPolicy.update", "project.create"]);
    expect(auditBefore).toBe(1);
  });

  it("requested → approved through the approval engine → active; the requester cannot approve; revoke ends it", async () => {
    const created = await alice.exemptions.request(spec());
    expect(created).toMatchObject({ status: "requested", requester: "alice", owner: "olga", renewals: [], notices: {} });
    // Only an exemption in force renews.
    expect(await reasonOf(alice.exemptions.renew(created.id, { expiresAt: new Date(Date.now() + 20 * DAY).toISOString(), evidence: ["https://e.example.com/2"], justification: "x" }, created.etag))).toBe("409 exemption_not_active");
    const approval = await carol.approvals.get(created.approvalId);
    expect(approval.subject).toMatchObject({ resourceType: "exemption", resourceId: created.id, projectId: project.id });
    expect(await reasonOf(alice.approvals.decide(approval.id, { decision: "approve", justification: "mine" }, approval.etag))).toBe("403 approver_is_requester");
    await carol.approvals.decide(approval.id, { decision: "approve", justification: "compensated" }, approval.etag);
    // The orchestration's settle activity activates it.
    const active = await until(async () => {
      const e = await alice.exemptions.get(created.id);
      return e.status === "active" ? e : undefined;
    });
    expect(active.timeline.map((x) => x.type)).toEqual(["requested", "approved", "activated"]);
    expect((await alice.exemptions.list({ status: "active", projectId: project.id })).items.map((e) => e.id)).toEqual([created.id]);
    expect((await alice.exemptions.list({ control: "tokens.quota" })).items).toEqual([]);

    // Renewals need updated evidence and the current ETag.
    expect(await fieldsOf(alice.exemptions.renew(created.id, { expiresAt: new Date(Date.now() + 20 * DAY).toISOString(), evidence: active.evidence, justification: "x" }, active.etag))).toEqual(["body.evidence"]);
    expect(await statusOf(alice.exemptions.renew(created.id, { expiresAt: new Date(Date.now() + 20 * DAY).toISOString(), evidence: ["https://e.example.com/2"], justification: "x" }, "stale"))).toBe(412);
    // Someone who is neither owner, requester nor TenantAdmin may not revoke.
    const dev = await t.as("t1", "dave", ["Developer"]);
    expect(await reasonOf(dev.exemptions.revoke(created.id, { reason: "no" }, active.etag))).toBe("403 exemption_owner_only");

    const revoked = await (await t.as("t1", "olga", ["Developer"])).exemptions.revoke(created.id, { reason: "blocklist shipped" }, active.etag);
    expect(revoked).toMatchObject({ status: "revoked", revokeReason: "blocklist shipped" });
    expect(await reasonOf(alice.exemptions.revoke(created.id, { reason: "again" }, revoked.etag))).toBe("409 exemption_ended");

    await t.relay();
    const types = t.events().filter((e) => e.subject.endsWith(`/exemptions/${created.id}`)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["aigov.exemption.requested.v1", "aigov.exemption.approved.v1", "aigov.exemption.activated.v1", "aigov.exemption.revoked.v1"]));
    const actions = (await auditor.audit.list({ resource: `/exemptions/${created.id}` })).items.map((r) => r.action);
    expect(actions).toEqual(["exemption.revoke", "exemption.activate", "exemption.approve", "exemption.request"]);
  });

  it("a high-risk exemption goes through the tenant's governance route, whatever approvers the requester adds", async () => {
    // The token limit switched off for a whole project, with two named peers added: the product route for high-risk
    // exemptions (an Approver or TenantAdmin, then a TenantAdmin) comes first.
    const created = await alice.exemptions.request(
      spec({
        control: "tokens.perMinute",
        relaxation: { kind: "off" },
        approval: { stages: [{ approvers: [{ user: "dev2" }], decisionTimeout: "P1D" }, { approvers: [{ user: "dev3" }], decisionTimeout: "P1D" }] },
      }),
    );
    let approval = await carol.approvals.get(created.approvalId);
    expect(approval.route).toEqual({ name: "product: high-risk exemption", source: "product", risk: "high" });
    expect(approval.stages.map((s) => s.origin)).toEqual(["route", "route", "requester", "requester"]);
    const dev2 = await t.as("t1", "dev2", ["Developer"]);
    const dev3 = await t.as("t1", "dev3", ["Developer"]);
    expect(await reasonOf(dev2.approvals.decide(approval.id, { decision: "approve", justification: "peer" }, approval.etag))).toBe("403 approver_not_in_stage");
    expect(await reasonOf(dev3.approvals.decide(approval.id, { decision: "approve", justification: "peer" }, approval.etag))).toBe("403 approver_not_in_stage");
    approval = await carol.approvals.decide(approval.id, { decision: "approve", justification: "risk accepted" }, approval.etag);
    // Two different people: carol cannot take the second governance stage too.
    expect(await reasonOf(carol.approvals.decide(approval.id, { decision: "approve", justification: "again" }, approval.etag))).toBe("409 approver_already_decided");
    const second = await t.as("t1", "tess", ["TenantAdmin"]);
    approval = await second.approvals.decide(approval.id, { decision: "approve", justification: "second pair of eyes" }, approval.etag);
    approval = await dev2.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    expect((await alice.exemptions.get(created.id)).status).toBe("requested");
    approval = await dev3.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    expect(approval.status).toBe("approved");
    const revoked = await until(async () => {
      const e = await alice.exemptions.get(created.id);
      return e.status === "active" ? e : undefined;
    });
    await carol.exemptions.revoke(created.id, { reason: "test over" }, revoked.etag);
  });

  it("a rejection reaches the exemption", async () => {
    const created = await alice.exemptions.request(spec({ category: "mitigated", compensatingControls: [], expiresAt: new Date(Date.now() + 5 * DAY).toISOString() }));
    const approval = await carol.approvals.get(created.approvalId);
    await carol.approvals.decide(approval.id, { decision: "reject", justification: "fix the prompts" }, approval.etag);
    const rejected = await until(async () => {
      const e = await alice.exemptions.get(created.id);
      return e.status === "rejected" ? e : undefined;
    });
    expect(rejected.endedAt).toBeDefined();
  });
});

describe("allow-list exemptions", () => {
  it("a region exemption for a project is accepted and, once approved, listed as active for the compiler", async () => {
    const created = await alice.exemptions.request(spec({ control: "regions.allowed", relaxation: { kind: "allow", values: ["westeurope", "eastus"] } }));
    expect(created).toMatchObject({ status: "requested", control: "regions.allowed", relaxation: { kind: "allow", values: ["westeurope", "eastus"] } });
    const approval = await carol.approvals.get(created.approvalId);
    expect(approval.subject.change).toMatchObject({ control: "regions.allowed", relaxation: { kind: "allow", values: ["westeurope", "eastus"] } });
    await carol.approvals.decide(approval.id, { decision: "approve", justification: "EU data residency review done" }, approval.etag);
    const active = await until(async () => {
      const e = await alice.exemptions.get(created.id);
      return e.status === "active" ? e : undefined;
    });
    expect((await alice.exemptions.list({ control: "regions.allowed", status: "active" })).items.map((e) => e.id)).toEqual([active.id]);
    await alice.exemptions.revoke(active.id, { reason: "done" }, active.etag);
  });
});

describe("portfolio review", () => {
  const T = "t-review";
  const iso = (ms: number) => new Date(ms).toISOString();
  const P = ["prj_0000000000000000000a", "prj_0000000000000000000b", "prj_0000000000000000000c", "prj_0000000000000000000d"];
  let admin: AigovClient;

  /** A stored exemption (seeded straight into the store: ages and renewal histories need past dates). */
  function seed(n: number, o: { control: string; projectId?: string; level?: "tenant" | "project" | "model" | "key"; status: string; owner: string; ageDays: number; compensating?: number; renewals?: string[]; expiresInDays?: number }) {
    const now = Date.now();
    const id = `exm_${String(n).padStart(20, "0")}`;
    const level = o.level ?? "project";
    const scope =
      level === "tenant" ? { level } : level === "model" ? { level, projectId: o.projectId, modelId: "mdl_00000000000000000001" } : level === "key" ? { level, projectId: o.projectId, keyId: "key_00000000000000000001" } : { level, projectId: o.projectId };
    return t.container().items.create({
      id,
      tenantId: T,
      scopeId: "_tenant",
      docType: "exemption",
      projectId: o.projectId ?? "",
      scopeLevel: level,
      control: o.control,
      scope,
      relaxation: { kind: "off" },
      category: o.compensating === 0 ? "mitigated" : "waiver",
      owner: o.owner,
      reason: { deliveryBlocker: "b", affectedControl: "a", expectedEndState: "e" },
      compensatingControls: Array.from({ length: o.compensating ?? 1 }, (_, i) => `c${i}`),
      evidence: [],
      expiresAt: iso(now + (o.expiresInDays ?? 20) * DAY),
      status: o.status,
      requester: "alice",
      approvalId: `apr_${String(n).padStart(20, "0")}`,
      notices: {},
      renewals: (o.renewals ?? []).map((status, i) => ({ number: i + 1, approvalId: `apr_r${i}`, requestedAt: iso(now - DAY), requestedBy: "alice", previousExpiresAt: iso(now), expiresAt: iso(now + DAY), evidence: [], justification: "j", status })),
      timeline: [],
      createdAt: iso(now - o.ageDays * DAY),
      createdBy: "alice",
      updatedAt: iso(now),
      updatedBy: "alice",
    });
  }

  beforeAll(async () => {
    admin = await t.as(T, "root", ["TenantAdmin"]);
    await seed(1, { control: "contentSafety", projectId: P[0], status: "active", owner: "olga", ageDays: 2, renewals: ["approved", "approved", "rejected"] });
    await seed(2, { control: "contentSafety", projectId: P[1], status: "expiring", owner: "olga", ageDays: 12, expiresInDays: 3 });
    await seed(3, { control: "contentSafety", projectId: P[2], level: "model", status: "requested", owner: "pete", ageDays: 40, compensating: 0 });
    await seed(4, { control: "tokens.perMinute", projectId: P[0], level: "key", status: "active", owner: "pete", ageDays: 100, renewals: ["approved"] });
    await seed(5, { control: "tokens.perMinute", projectId: P[3], status: "active", owner: "quinn", ageDays: 5, renewals: ["approved", "approved"] });
    await seed(6, { control: "contentSafety", projectId: P[3], status: "expired", owner: "quinn", ageDays: 200, renewals: ["approved", "approved", "approved"] });
    await seed(7, { control: "prompt.maxBytes", level: "tenant", status: "active", owner: "root", ageDays: 8 });
    await seed(8, { control: "contentSafety", projectId: P[0], status: "revoked", owner: "olga", ageDays: 1 });
  });

  it("reports counts, ageing, repeat renewals, clusters, missing compensating controls and breadth exactly", async () => {
    const r = await admin.exemptions.review();
    expect(r.total).toBe(8);
    expect(r.open).toBe(6);
    expect(r.byStatus).toEqual({ requested: 1, approved: 0, active: 4, expiring: 1, expired: 1, rejected: 0, revoked: 1 });
    expect(r.byControl).toEqual([{ control: "contentSafety", count: 3 }, { control: "tokens.perMinute", count: 2 }, { control: "prompt.maxBytes", count: 1 }]);
    expect(r.byProject).toEqual([{ projectId: P[0], count: 2 }, { projectId: P[1], count: 1 }, { projectId: P[2], count: 1 }, { projectId: P[3], count: 1 }]);
    expect(r.byOwner).toEqual([{ owner: "olga", count: 2 }, { owner: "pete", count: 2 }, { owner: "quinn", count: 1 }, { owner: "root", count: 1 }]);
    expect(r.ageing.buckets).toEqual({ "0-7d": 2, "8-30d": 2, "31-90d": 1, "91d+": 1 });
    expect(r.ageing.oldestDays).toBe(100);
    expect(r.ageing.averageDays).toBe(27.8); // (2 + 12 + 40 + 100 + 5 + 8) / 6
    expect(r.ageing.expiringWithin7Days).toBe(1);
    expect(r.repeatRenewals.map((x) => [x.id, x.renewals])).toEqual([
      ["exm_00000000000000000006", 3],
      ["exm_00000000000000000001", 2],
      ["exm_00000000000000000005", 2],
    ]);
    expect(r.clusters).toEqual([{ control: "contentSafety", projects: [P[0], P[1], P[2]], count: 3 }]);
    expect(r.withoutCompensatingControls).toEqual([{ id: "exm_00000000000000000003", control: "contentSafety", category: "mitigated" }]);
    expect(r.breadth).toEqual({ tenant: 1, project: 3, model: 1, key: 1 });

    const two = await admin.exemptions.review({ clusterMinProjects: 2, repeatMinRenewals: 3 });
    expect(two.clusters.map((c) => [c.control, c.count])).toEqual([["contentSafety", 3], ["tokens.perMinute", 2]]);
    expect(two.repeatRenewals.map((x) => x.id)).toEqual(["exm_00000000000000000006"]);
  });

  it("the CLI prints the review as readable tables, and the other verbs work", async () => {
    const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-")), "config.json") };
    const aigov = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(["--endpoint", t.url, ...args], { out: (s) => out.push(s), err: (s) => err.push(s), env });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect((await aigov("login", "--dev", "--tenant", T, "--user", "root", "--roles", "TenantAdmin")).code).toBe(0);
    const review = await aigov("exemptions", "review");
    expect(review.code).toBe(0);
    expect(review.out).toContain("Exemptions: 8 in total, 6 open");
    expect(review.out).toMatch(/Clusters \(one control in >= 3 projects\)[\s\S]*contentSafety[\s\S]*3/);
    expect(review.out).toContain("Without compensating controls");
    expect(review.out).toContain("exm_00000000000000000003");
    const list = await aigov("exemptions", "list", "--status", "active");
    expect(list.out).toContain("exm_00000000000000000004");
    expect(list.out).toContain(`${P[0]}/key_00000000000000000001`);
    const show = await aigov("exemptions", "show", "exm_00000000000000000001");
    expect(show.code).toBe(0);
    expect(show.out).toContain("approved");
    const bad = await aigov("exemptions", "request", "--control", "contentSafety", "--scope", `project:${P[0]}`, "--off", "--category", "waiver", "--days", "5");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("body.owner");
  });
});

describe("high risk by effect", () => {
  const T = "t-risk";
  let admin: AigovClient;
  let dev: AigovClient;
  let riskProject: Project;
  const limitSpec = (value: number): ExemptionSpecInput => ({
    ...spec({ control: "tokens.perMinute", relaxation: { kind: "limit", value } }),
    scope: { level: "project", projectId: riskProject.id },
  });
  const routeOf = async (approvalId: string) => {
    const approval = await admin.approvals.get(approvalId);
    return { risk: approval.route?.risk, why: (approval.subject.change as { risk?: { why: string } }).risk?.why };
  };

  beforeAll(async () => {
    admin = await t.as(T, "root", ["TenantAdmin"]);
    dev = await t.as(T, "dana", ["Developer"]);
    const settings = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 1000 } } } }, settings.etag);
    // The project holds itself to 800 tokens a minute, under the tenant's 1,000.
    riskProject = await admin.projects.create(projectSpec("risky", { settings: { tokens: { perMinute: { limit: 800 } } } }));
  });

  it("a project-wide limit raised to many times the one in force takes the high-risk route, by the tenant's rules, also on renewal", async () => {
    expect((await admin.exemptions.policy()).highRisk).toEqual({ limitFactor: 10, thresholdLevel: 6, allowValues: 5 });
    // 6.25× the 800 tokens a minute in force: one stage.
    const modest = await dev.exemptions.request(limitSpec(5000));
    expect(await routeOf(modest.approvalId)).toEqual({ risk: "standard", why: "a project-wide relaxation within the tenant's high-risk thresholds" });
    // 10×: as good as switching the limit off, so two stages.
    const huge = await dev.exemptions.request(limitSpec(10_000));
    expect(await routeOf(huge.approvalId)).toEqual({ risk: "high", why: "10000 is at least 10 times the tokens.perMinute limit in force (800)" });
    expect((await admin.approvals.get(huge.approvalId)).route).toEqual({ name: "product: high-risk exemption", source: "product", risk: "high" });

    // The modest one goes live; the tenant then lowers its floor to 400. The project's stored 800 is held to
    // it (as the gateway holds it), so renewing is now a 12.5× raise.
    const approval = await admin.approvals.get(modest.approvalId);
    await admin.approvals.decide(approval.id, { decision: "approve", justification: "load test" }, approval.etag);
    const active = await until(async () => {
      const e = await dev.exemptions.get(modest.id);
      return e.status === "active" ? e : undefined;
    });
    const settings = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 400 } }, regions: { allowed: ["northeurope", "westeurope"] } } }, settings.etag);
    const renewal = await dev.exemptions.renew(active.id, { expiresAt: new Date(Date.now() + 20 * DAY).toISOString(), evidence: ["https://tickets.example.com/SEC-2"], justification: "the load test runs longer" }, active.etag);
    const renewalApproval = renewal.renewals.at(-1)!.approvalId;
    expect(await routeOf(renewalApproval)).toEqual({ risk: "high", why: "5000 is at least 10 times the tokens.perMinute limit in force (400)" });

    // The tenant may set its own thresholds: at 100× the same raise is standard again.
    const policy = await admin.exemptions.policy();
    const written = await admin.exemptions.putPolicy({ maxDays: policy.maxDays, controls: {}, highRisk: { limitFactor: 100, thresholdLevel: 7, allowValues: 2 } }, policy.etag);
    expect(written.highRisk).toEqual({ limitFactor: 100, thresholdLevel: 7, allowValues: 2 });
    expect((await admin.exemptions.policy()).highRisk).toEqual({ limitFactor: 100, thresholdLevel: 7, allowValues: 2 });
    // A policy file from before the high-risk rules (none given) keeps the rules the tenant tuned.
    expect((await admin.exemptions.putPolicy({ maxDays: policy.maxDays, controls: {} }, written.etag)).highRisk).toEqual({ limitFactor: 100, thresholdLevel: 7, allowValues: 2 });
    const again = await dev.exemptions.request(limitSpec(10_000));
    expect(await routeOf(again.approvalId)).toEqual({ risk: "standard", why: "a project-wide relaxation within the tenant's high-risk thresholds" });
    // Three regions the project does not admit are more than the tenant's 2 (westeurope it admits already).
    const regions = await dev.exemptions.request({ ...limitSpec(1), control: "regions.allowed", relaxation: { kind: "allow", values: ["eastus", "westeurope", "swedencentral", "westus"] } });
    expect(await routeOf(regions.approvalId)).toEqual({ risk: "high", why: "it adds 3 values to regions.allowed (more than 2)" });
    // Bad rules are a 400 naming the field, and change nothing.
    const current = await admin.exemptions.policy();
    expect(await fieldsOf(admin.exemptions.putPolicy({ maxDays: policy.maxDays, highRisk: { limitFactor: 1, thresholdLevel: 9, allowValues: 2 } } as never, current.etag))).toEqual(["body.highRisk.limitFactor", "body.highRisk.thresholdLevel"]);
    expect((await admin.exemptions.policy()).etag).toBe(current.etag);
  });

  it("a project or model relaxation at or below what binds there is refused with 400 relaxation_not_looser and stores nothing", async () => {
    // The project holds 350 tokens a minute (under the tenant's, whichever the tests before left); its model 200 of its own.
    const bound = await admin.projects.create(projectSpec("bound", { settings: { tokens: { perMinute: { limit: 350 } } } }));
    const model = await admin.models.create(bound.id, {
      name: "gpt-4o",
      provider: "azure-openai",
      modelName: "gpt-4o",
      backends: [{ id: "weu", url: "https://bound.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
      settings: { tokens: { perMinute: { limit: 200 } } },
    });
    const at = (scope: ExemptionSpecInput["scope"], value: number) => ({ ...limitSpec(value), scope });
    const wholeProject = { level: "project" as const, projectId: bound.id };
    const oneModel = { level: "model" as const, projectId: bound.id, modelId: model.id };
    const before = { exemptions: (await admin.exemptions.list({ projectId: bound.id })).items.length, approvals: (await admin.approvals.list()).items.length };
    for (const [scope, value] of [[wholeProject, 200], [wholeProject, 100], [oneModel, 200]] as const) {
      const err = (await errorOf(dev.exemptions.request(at(scope, value)))) as ApiError;
      expect([err.status, err.problem?.reason], `${scope.level} ${value}`).toEqual([400, "relaxation_not_looser"]);
      expect(err.problem?.errors).toEqual([{ field: "body.relaxation", message: expect.stringMatching(/^relaxes nothing: \d+ is not above the tokens\.perMinute limit in force/) }]);
    }
    // Nothing was written: no exemption, no approval.
    expect((await admin.exemptions.list({ projectId: bound.id })).items).toHaveLength(before.exemptions);
    expect((await admin.approvals.list()).items).toHaveLength(before.approvals);
    // Above the lowest in force (the model's 200) it relaxes the model: accepted, for the whole project or the model.
    expect((await dev.exemptions.request(at(wholeProject, 201))).status).toBe("requested");
    expect((await dev.exemptions.request(at(oneModel, 201))).status).toBe("requested");
  });

  it("an exemption requested when its control applied nowhere in the project is latent: it never outranks a limit set later", async () => {
    const later = await admin.projects.create(projectSpec("quota later"));
    await admin.models.create(later.id, { name: "gpt-4o", provider: "azure-openai", modelName: "gpt-4o", backends: [{ id: "weu", url: "https://later.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }] });
    const requested = await dev.exemptions.request({ ...spec({ control: "tokens.quota", relaxation: { kind: "limit", value: 1_000_000_000_000 } }), scope: { level: "project", projectId: later.id } });
    expect(await routeOf(requested.approvalId)).toEqual({ risk: "standard", why: "tokens.quota is not configured in the project, so the exemption changes nothing there" });
    expect(requested.latent).toBe(true);
    const approval = await admin.approvals.get(requested.approvalId);
    await admin.approvals.decide(approval.id, { decision: "approve", justification: "nothing to relax" }, approval.etag);
    await until(async () => ((await dev.exemptions.get(requested.id)).status === "active" ? true : undefined));
    // The tenant sets a quota afterwards: the project gets it, not the exemption's 10¹².
    const settings = await admin.settings.get();
    const current = settings.settings as { tokens?: Record<string, unknown> };
    await admin.settings.put({ settings: { ...current, tokens: { ...current.tokens, quota: { limit: 50_000, period: "Monthly" } } } } as never, settings.etag);
    const xml = (await admin.policy.show(later.id)).artifacts.filter((a) => a.kind === "policy" && String(a.ref).includes(later.id)).map((a) => String(a.xml)).join("\n");
    expect(xml).toMatch(/token-quota="50000"/);
    expect(xml).not.toContain("1000000000000");
    expect((await dev.exemptions.get(requested.id))).toMatchObject({ status: "active", latent: true });
  });

  it("a relaxation split into requests each within the thresholds is judged as the whole it adds up to", async () => {
    // (The tenant's rules from the test above: at most 2 values per allow-list widening; regions northeurope and westeurope.)
    const split = await admin.projects.create(projectSpec("split"));
    const regions = (values: string[]): ExemptionSpecInput => ({ ...spec({ control: "regions.allowed", relaxation: { kind: "allow", values } }), scope: { level: "project", projectId: split.id } });
    const first = await dev.exemptions.request(regions(["eastus", "westus"]));
    expect(await routeOf(first.approvalId)).toEqual({ risk: "standard", why: "a project-wide relaxation within the tenant's high-risk thresholds" });
    // Two more: four regions together, open at once for the same project.
    const second = await dev.exemptions.request(regions(["swedencentral", "francecentral"]));
    expect(await routeOf(second.approvalId)).toEqual({ risk: "high", why: `with ${first.id} (open for regions.allowed in the project), it adds 4 values to regions.allowed (more than 2)` });
    // Once the first is over (rejected here), a request is judged with what is still open.
    const approval = await admin.approvals.get(first.approvalId);
    await admin.approvals.decide(approval.id, { decision: "reject", justification: "too broad" }, approval.etag);
    await until(async () => ((await dev.exemptions.get(first.id)).status === "rejected" ? true : undefined));
    const third = await dev.exemptions.request(regions(["eastus"]));
    expect(await routeOf(third.approvalId)).toEqual({ risk: "high", why: `with ${second.id} (open for regions.allowed in the project), it adds 3 values to regions.allowed (more than 2)` });
  });

  /** The request `make` sends is judged while `id` is not stored (as when two are made at the same moment). */
  const whileHidden = async <T>(id: string, make: () => Promise<T>): Promise<T> => {
    const container = t.container();
    const { resources } = await container.items.query<Record<string, unknown>>({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: id }] }).fetchAll();
    const { _rid: _r, _self: _s, _etag: _e, _attachments: _a, _ts: _t, ...original } = resources[0]!;
    await container.items.upsert({ ...original, status: "rejected" });
    try {
      return await make();
    } finally {
      await container.items.upsert(original);
    }
  };
  const approve = async (approvalId: string) => {
    const a = await admin.approvals.get(approvalId);
    await admin.approvals.decide(a.id, { decision: "approve", justification: "fine" }, a.etag);
  };
  const settled = (id: string) =>
    until(async () => {
      const e = await dev.exemptions.get(id);
      return e.status === "requested" || e.status === "approved" ? undefined : e;
    });

  it("a standard request made at the same moment as a high-risk one is judged again with it: the high-risk one's two stages never saw it", async () => {
    const racing = await admin.projects.create(projectSpec("racing high"));
    const regions = (values: string[]): ExemptionSpecInput => ({ ...spec({ control: "regions.allowed", relaxation: { kind: "allow", values } }), scope: { level: "project", projectId: racing.id } });
    const high = await dev.exemptions.request(regions(["eastus", "westus", "centralus"]));
    expect((await routeOf(high.approvalId)).risk).toBe("high");
    const small = await whileHidden(high.id, () => dev.exemptions.request(regions(["swedencentral"])));
    expect(await routeOf(small.approvalId)).toEqual({ risk: "standard", why: "a project-wide relaxation within the tenant's high-risk thresholds" });
    expect(small.judgedWith).toBeUndefined();
    await approve(small.approvalId);
    const refused = await settled(small.id);
    expect(refused.status).toBe("rejected");
    expect(refused.timeline.at(-1)?.detail).toMatch(new RegExp(`^approved as standard risk, but high risk now: with ${high.id} \\(open for regions.allowed in the project\\), it adds 4 values`));
    // Made one after the other, the later one is judged with the earlier: approved, it stands (its approvers saw the whole).
    const later = await dev.exemptions.request(regions(["francecentral"]));
    expect(later.judgedWith).toEqual([high.id]);
    expect((await routeOf(later.approvalId)).risk).toBe("high");
  });

  it("judged again with everything open once any was made at the same moment: three small requests never all apply", async () => {
    const racing = await admin.projects.create(projectSpec("racing three"));
    const regions = (values: string[]): ExemptionSpecInput => ({ ...spec({ control: "regions.allowed", relaxation: { kind: "allow", values } }), scope: { level: "project", projectId: racing.id } });
    const b = await dev.exemptions.request(regions(["eastus"]));
    const a = await dev.exemptions.request(regions(["westus"]));
    expect(a.judgedWith).toEqual([b.id]);
    // C is made while A is not stored yet: judged with B only. Each pair is two values: standard.
    const c = await whileHidden(a.id, () => dev.exemptions.request(regions(["centralus"])));
    expect(c.judgedWith).toEqual([b.id]);
    for (const e of [b, a, c]) expect((await routeOf(e.approvalId)).risk).toBe("standard");
    await approve(b.approvalId);
    expect((await settled(b.id)).status).toBe("active"); // every exemption open was judged with it
    await approve(a.approvalId);
    expect((await settled(a.id)).status).toBe("rejected"); // C was made without it: the three together are three values
    await approve(c.approvalId);
    expect((await settled(c.id)).status).toBe("active"); // with A gone, B and C were judged together
  });

  it("a request whose risk rose alone while it waited (the tenant lowered its floor) is not activated either, and says why", async () => {
    // A tenant of its own: the tests above tuned this one's rules and floors.
    const root = await t.as("t-risk-rose", "root", ["TenantAdmin"]);
    const requester = await t.as("t-risk-rose", "dana", ["Developer"]);
    const settings = await root.settings.get();
    await root.settings.put({ settings: { tokens: { perMinute: { limit: 1000 } } } }, settings.etag);
    const waiting = await root.projects.create(projectSpec("floor lowered", { settings: { tokens: { perMinute: { limit: 800 } } } }));
    const raise = await requester.exemptions.request({ ...spec({ control: "tokens.perMinute", relaxation: { kind: "limit", value: 5000 } }), scope: { level: "project", projectId: waiting.id } });
    expect((await root.approvals.get(raise.approvalId)).route?.risk).toBe("standard");
    // While it waits the tenant lowers its floor to 400: the project's 800 is held to it, so 5000 is now a 12.5× raise.
    const now = await root.settings.get();
    await root.settings.put({ settings: { tokens: { perMinute: { limit: 400 } } } }, now.etag);
    const a = await root.approvals.get(raise.approvalId);
    await root.approvals.decide(a.id, { decision: "approve", justification: "fine" }, a.etag);
    const refused = await until(async () => {
      const e = await requester.exemptions.get(raise.id);
      return e.status === "requested" || e.status === "approved" ? undefined : e;
    });
    expect(refused.status).toBe("rejected");
    expect(refused.timeline.at(-1)?.detail).toBe("approved as standard risk, but high risk now: 5000 is at least 10 times the tokens.perMinute limit in force (400) (the settings in force or the tenant's rules changed while it waited); request it again");
    // Its approval reads "approved": the owner and the requester are told why it is not in force.
    // The notices follow the recorded rejection (delivered after the write), so they are waited for.
    for (const who of ["olga", "dana"]) {
      const inbox = join(t.app.dataDir, "inbox", `${Buffer.from(who).toString("base64url")}.ndjson`);
      const notices = await until(async () => {
        const found = existsSync(inbox) ? readFileSync(inbox, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { subject: string; body: string }).filter((n) => n.subject.includes(raise.id)) : [];
        return found.length > 0 ? found : undefined;
      });
      expect(notices).toEqual([{ at: expect.any(String), recipient: who, subject: `Exemption ${raise.id} was approved but not activated`, body: `The exemption from tokens.perMinute for ${waiting.id} was ${refused.timeline.at(-1)!.detail}. The control applies as before.` }]);
    }
  });

  it("two split requests made at the same moment (each judged without the other) are judged again when approved: no standard approval activates the whole", async () => {
    const racing = await admin.projects.create(projectSpec("racing split"));
    const regions = (values: string[]): ExemptionSpecInput => ({ ...spec({ control: "regions.allowed", relaxation: { kind: "allow", values } }), scope: { level: "project", projectId: racing.id } });
    const first = await dev.exemptions.request(regions(["eastus", "westus"]));
    // The race, made certain: while the second is judged, the first is not stored yet (here: hidden in the store).
    const second = await whileHidden(first.id, () => dev.exemptions.request(regions(["swedencentral", "francecentral"])));
    expect((await routeOf(first.approvalId)).risk).toBe("standard");
    expect((await routeOf(second.approvalId)).risk).toBe("standard");
    // One approver each, as the standard route asks: the first approved is judged with the second open — high — and not activated.
    await approve(first.approvalId);
    const refused = await settled(first.id);
    expect(refused.status).toBe("rejected");
    expect(refused.timeline.at(-1)?.detail).toBe(`approved as standard risk, but high risk now: with ${second.id} (open for regions.allowed in the project), it adds 4 values to regions.allowed (more than 2); request the whole relaxation as one exemption`);
    // The second, approved once the first is over, is judged with what is still open: it stands alone, and applies.
    await approve(second.approvalId);
    await until(async () => ((await dev.exemptions.get(second.id)).status === "active" ? true : undefined));
    const inForce = (await dev.exemptions.list({ control: "regions.allowed", status: "active" })).items.filter((e) => e.scope.level === "project" && e.scope.projectId === racing.id);
    expect(inForce.map((e) => e.id)).toEqual([second.id]);
    await t.relay();
    const events = t.events().filter((e) => e.type === "aigov.exemption.rejected.v1" && (e.data as { id?: string }).id === first.id);
    expect(events.map((e) => (e.data as { cause?: string }).cause)).toEqual(["risk_rose"]);
  });
});
