import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { getServices, overrideServices } from "../../src/app/services.js";
import { type ApiError, type AigovClient } from "../../src/client/index.js";
import type { Approval, ApprovalSpecInput } from "../../src/domain/approvals/schema.js";
import { newId } from "../../src/domain/common.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { reasonOf, statusOf } from "../support/errors.js";
import { until } from "../support/until.js";

let t: TestApp;
let alice: AigovClient; // requester
let bob: AigovClient; // named approver, stage 1
let carol: AigovClient; // holds the Approver role
let auditor: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  // Deadlines and escalations are the services' time and the durable timers': both on the app's clock.
  overrideServices({ clock: t.appClock });
  alice = await t.as("t1", "alice", ["Developer"]);
  bob = await t.as("t1", "bob", ["Reader"]);
  carol = await t.as("t1", "carol", ["Approver"]);
  auditor = await t.as("t1", "audrey", ["Auditor", "TenantAdmin"]);
  // Who approves what is the tenant's: these routes give the engine's tests their stages.
  const routes = await auditor.approvals.routes();
  await auditor.approvals.putRoutes(
    {
      routes: [
        { name: "tools: bob, then an Approver", match: { subjectType: "model" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }, { approvers: [{ role: "Approver", scope: "tenant" }], decisionTimeout: "P1D" }] },
        { name: "agents: bob", match: { subjectType: "agent" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }] },
        { name: "promotions: bob, escalating to dave", match: { subjectType: "promotion" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "PT1H", escalateAfter: "PT30M", escalateTo: [{ user: "dave" }] }] },
      ],
    },
    routes.etag,
  );
});
afterAll(async () => {
  overrideServices({});
  await t.stop();
});

const spec = (extra: Partial<ApprovalSpecInput> = {}, resourceType = "model"): ApprovalSpecInput => ({
  subject: { resourceType, resourceId: "github-mcp", change: { action: "enable", scopes: ["repo:read"] } },
  justification: "the payments team needs read access to repositories",
  ...extra,
});


function inbox(user: string): { subject: string; link: string }[] {
  const file = FileNotifier.inboxFile(join(t.app.dataDir, "inbox"), user);
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { subject: string; link: string }) : [];
}


const linkFor = (user: string, approvalId: string) => until(() => inbox(user).find((m) => m.link.includes(`/approvals/${approvalId}/`))?.link);

describe("approval engine", () => {
  it("runs a two-stage request to approval, enforcing separation of duties at every step", async () => {
    const created = await alice.approvals.create(spec());
    expect(created).toMatchObject({ status: "pending", currentStage: 0, requester: "alice", decisions: [], route: { name: "tools: bob, then an Approver", source: "tenant", risk: "standard" } });
    expect(created.subject.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(created.stages[0]).toMatchObject({ status: "pending" });
    expect(created.stages[1]).toMatchObject({ status: "waiting" });

    // The orchestration sends bob (and only bob) a link.
    const link = await linkFor("bob", created.id);
    expect(inbox("alice")).toEqual([]);

    // Refusals change nothing.
    expect(await reasonOf(alice.approvals.decide(created.id, { decision: "approve", justification: "me" }, created.etag))).toBe("403 approver_is_requester");
    expect(await reasonOf(carol.approvals.decide(created.id, { decision: "approve", justification: "not my stage" }, created.etag))).toBe("403 approver_not_in_stage");
    expect(await statusOf(bob.approvals.decide(created.id, { decision: "approve", justification: "x" }, "stale"))).toBe(412);
    expect(await alice.approvals.get(created.id)).toEqual(created);

    const afterBob = await bob.approvals.decide(created.id, { decision: "approve", justification: "looks right" }, created.etag);
    expect(afterBob).toMatchObject({ status: "pending", currentStage: 1, decisions: [{ stage: 0, approver: "bob", decision: "approve", via: "api" }] });
    expect(afterBob.stages[1]!.status).toBe("pending");
    // An approver decides at most once, and the stage-1 link no longer works.
    expect(await reasonOf(bob.approvals.decide(created.id, { decision: "approve", justification: "again" }, afterBob.etag))).toBe("409 approver_already_decided");
    expect((await t.anonymous.approvals.openLink(link)).status).toBe(409);

    const done = await carol.approvals.decide(created.id, { decision: "approve", justification: "ok for prod" }, afterBob.etag);
    expect(done).toMatchObject({ status: "approved", currentStage: 1 });
    expect(done.timeline.map((e) => e.type)).toEqual(["requested", "stageStarted", "decided", "stageStarted", "decided", "approved"]);
    expect(await reasonOf(carol.approvals.decide(created.id, { decision: "reject", justification: "late" }, done.etag))).toBe("409 approval_not_awaiting");

    // Audited and evented, in order; the orchestration finishes.
    const audit = await auditor.audit.list({ resource: `/approvals/${created.id}` });
    expect(audit.items.map((r) => r.action)).toEqual(["approval.approve", "approval.approve", "approval.create"]);
    await t.relay();
    const events = t.events().filter((e) => e.subject === `/tenants/t1/approvals/${created.id}`).map((e) => e.type);
    expect(events).toEqual(["aigov.approval.requested.v1", "aigov.approval.advanced.v1", "aigov.approval.approved.v1"]);
  });

  it("any rejection ends the request", async () => {
    const created = await alice.approvals.create(spec());
    const rejected = await bob.approvals.decide(created.id, { decision: "reject", justification: "too broad" }, created.etag);
    expect(rejected).toMatchObject({ status: "rejected", stages: [{ status: "rejected" }, { status: "waiting" }] });
    expect(await reasonOf(carol.approvals.decide(created.id, { decision: "approve", justification: "x" }, rejected.etag))).toBe("409 approval_not_awaiting");
  });

  it("validates requests: justification, extra stages, peer roles, reserved types, durations", async () => {
    const cases: [Partial<ApprovalSpecInput>, string][] = [
      [{ justification: "" }, "body.justification"],
      [{ stages: [] }, "body.stages"],
      [{ stages: [1, 2, 3].map(() => ({ approvers: [{ user: "x" }], decisionTimeout: "P1D" })) }, "body.stages"],
      [{ stages: [{ approvers: [{ role: "Developer", scope: "tenant" }], decisionTimeout: "P1D" }] }, "body.stages.0.approvers"],
      [{ stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "1 day" }] }, "body.stages.0.decisionTimeout"],
      [{ stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "PT1H", escalateAfter: "PT2H", escalateTo: [{ user: "dave" }] }] }, "body.stages.0.escalateAfter"],
      [{ subject: { resourceType: "exemption", resourceId: "exm_x", change: {} } }, "body.subject.resourceType"],
      // A link acts as the user it names: only ids tokens carry (an address or an upper-case oid would
      // name nobody a token does, past the requester check).
      [{ stages: [{ approvers: [{ user: "alice@contoso.com" }], decisionTimeout: "P1D" }] }, "body.stages.0.approvers.0.user"],
      [{ stages: [{ approvers: [{ user: "9C4F1A2B-3D5E-4F60-8A7B-1C2D3E4F5A6B" }], decisionTimeout: "P1D" }] }, "body.stages.0.approvers.0.user"],
      [{ stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D", escalateAfter: "PT1H", escalateTo: [{ user: " alice" }] }] }, "body.stages.0.escalateTo.0.user"],
      [{ subject: { resourceType: "model", resourceId: "   ", change: {} } }, "body.subject.resourceId"],
    ];
    const before = (await auditor.approvals.list()).items.length;
    for (const [extra, field] of cases) {
      const err = await alice.approvals.create(spec(extra)).then(() => undefined, (e: unknown) => e as ApiError);
      expect(err?.status, field).toBe(400);
      expect(err?.problem?.errors?.map((e) => e.field), field).toContain(field);
    }
    // A change is frozen as asked: a number JSON cannot hold (1e309 parses as Infinity, stored as null) is refused.
    const raw = await fetch(`${t.url}/api/approvals`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await t.token("t1", "alice", ["Developer"])}` },
      body: '{"subject":{"resourceType":"model","resourceId":"github-mcp","change":{"limit":1e309}},"justification":"a limit beyond any"}',
    });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field)).toContain("body.subject.change");
    expect((await auditor.approvals.list()).items.length).toBe(before);
  });

  it("the route decides who approves; a requester only adds stages after it", async () => {
    const created = await alice.approvals.create(spec({ stages: [{ approvers: [{ user: "erin" }], decisionTimeout: "P1D" }] }));
    expect(created.stages.map((s) => [s.origin, s.approvers])).toEqual([
      ["route", [{ user: "bob" }]],
      ["route", [{ role: "Approver", scope: "tenant" }]],
      ["requester", [{ user: "erin" }]],
    ]);
    // erin's stage comes last: she cannot decide before the route's approvers.
    const erin = await t.as("t1", "erin", ["Developer"]);
    expect(await statusOf(erin.approvals.decide(created.id, { decision: "approve", justification: "me first" }, created.etag))).toBe(403);
    // Without a tenant route the product's applies: a TenantAdmin decides anything else.
    const other = await alice.approvals.create(spec({}, "dataset"));
    expect(other.route).toEqual({ name: "product: anything else", source: "product", risk: "standard" });
    expect(other.stages.map((s) => s.approvers)).toEqual([[{ role: "TenantAdmin", scope: "tenant" }]]);
    expect(await statusOf(bob.approvals.decide(other.id, { decision: "approve", justification: "peer" }, other.etag))).toBe(403);
  });

  it("routes are the TenantAdmin's, checked against the minimums, audited, and do not change requests already made", async () => {
    const current = await auditor.approvals.routes();
    expect(current.defaults.map((r) => r.name)).toContain("product: high-risk exemption");
    expect(current.minimums.length).toBeGreaterThan(3);
    // Not a TenantAdmin: refused.
    expect(await statusOf(alice.approvals.putRoutes({ routes: [] }, current.etag))).toBe(403);
    // Peers deciding exemptions, a one-stage route for high-risk exemptions, project roles at tenant scope: below the minimums.
    const below = [
      { name: "peers", match: { subjectType: "exemption" as const }, stages: [{ approvers: [{ role: "Developer" as const, scope: "tenant" as const }], decisionTimeout: "P1D" }] },
      { name: "one stage", match: { subjectType: "exemption" as const, risk: "high" as const }, stages: [{ approvers: [{ role: "TenantAdmin" as const, scope: "tenant" as const }], decisionTimeout: "P1D" }] },
      { name: "nobody", match: { scope: "tenant" as const, subjectType: "model" as const }, stages: [{ approvers: [{ role: "ProjectAdmin" as const, scope: "project" as const }], decisionTimeout: "P1D" }] },
    ];
    const err = await auditor.approvals.putRoutes({ routes: below }, current.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect(err?.status).toBe(400);
    expect(err?.problem?.reason).toBe("approval_route_below_minimum");
    expect(err?.problem?.errors?.map((e) => e.field)).toEqual(["body.routes.0.stages", "body.routes.0.stages", "body.routes.1.stages", "body.routes.2.stages.0.approvers"]);
    expect(await auditor.approvals.routes()).toEqual(current);

    // A request keeps the route it was given; a new one gets the new route.
    const before = await alice.approvals.create(spec({}, "agent"));
    const agentsByCarol = current.routes.map((r) => (r.match.subjectType === "agent" ? { ...r, name: "agents: carol", stages: [{ approvers: [{ user: "carol" }], decisionTimeout: "P1D" }] } : r));
    const updated = await auditor.approvals.putRoutes({ routes: agentsByCarol }, current.etag);
    expect(updated.etag).not.toBe(current.etag);
    expect(await statusOf(auditor.approvals.putRoutes({ routes: agentsByCarol }, current.etag))).toBe(412);
    const byAddress = current.routes.map((r) => (r.match.subjectType === "agent" ? { ...r, stages: [{ approvers: [{ user: "carol@contoso.com" }], decisionTimeout: "P1D" }] } : r));
    const refused = await auditor.approvals.putRoutes({ routes: byAddress }, updated.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect([refused?.status, refused?.problem?.errors?.[0]?.field]).toEqual([400, `body.routes.${current.routes.findIndex((r) => r.match.subjectType === "agent")}.stages.0.approvers.0.user`]);
    expect((await alice.approvals.get(before.id)).stages[0]!.approvers).toEqual([{ user: "bob" }]);
    const after = await alice.approvals.create(spec({}, "agent"));
    expect(after.stages[0]!.approvers).toEqual([{ user: "carol" }]);
    expect(after.route?.name).toBe("agents: carol");
    const audit = await auditor.audit.list({ resource: "/approval-routes" });
    expect(audit.items.map((r) => r.action)).toEqual(["approvalRoutes.update", "approvalRoutes.update"]);
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.approvalroutes.updated.v1").length).toBe(2);
    await auditor.approvals.putRoutes({ routes: current.routes }, updated.etag);
  });

  it("names no token carries (e-mail addresses written before the check) never decide: a stored route naming one is skipped, a request naming one sends it no link, a stage naming nobody else ends at once", async () => {
    const byId = async (id: string) => {
      const { resources } = await t.container().items.query<Record<string, unknown> & { _etag: string }>({ query: "SELECT * FROM c WHERE c.tenantId = 't1' AND c.id = @id", parameters: [{ name: "@id", value: id }] }).fetchAll();
      return resources[0]!;
    };
    const tamper = async (id: string, change: (doc: Record<string, unknown>) => void) => {
      const doc = await byId(id);
      change(doc);
      await t.container().items.upsert(doc);
    };
    // A route written before names had to be ids: the requester's own address decides agents.
    const legacy = { name: "legacy: by address", match: { subjectType: "agent", scope: "*", risk: "*" }, stages: [{ approvers: [{ user: "alice@contoso.com" }], decisionTimeout: "P1D" }] };
    await tamper("approvalRoutes.tenant", (d) => void (d.routes = [legacy, ...(d.routes as unknown[])]));
    const routes = await auditor.approvals.routes();
    expect(routes.unusable).toEqual([{ name: "legacy: by address", errors: [expect.objectContaining({ field: "routes.0.stages.0.approvers.0.user" })] }]);
    // Skipped: the request falls through to the next match.
    const agentRequest = await alice.approvals.create(spec({}, "agent"));
    expect(agentRequest.route?.name).toBe("agents: bob");
    expect(agentRequest.stages[0]!.approvers).toEqual([{ user: "bob" }]);

    // A request made before, whose second stage names the requester's address beside carol: no link goes to the address, and it cannot decide.
    const made = await alice.approvals.create(spec());
    await tamper(made.id, (d) => void ((d.stages as { approvers: unknown[] }[])[1]!.approvers = [{ user: "alice@contoso.com" }, { user: "carol" }]));
    const current = await auditor.approvals.get(made.id);
    await bob.approvals.decide(made.id, { decision: "approve", justification: "stage one" }, current.etag);
    const undelivered = await until(async () => {
      await t.relay();
      return t.events().find((e) => e.type === "aigov.approval.notification.failed.v1" && e.subject === `/tenants/t1/approvals/${made.id}`);
    }, "the undelivered link recorded");
    expect((undelivered.data as { undelivered: unknown[] }).undelivered).toEqual([{ recipient: "alice@contoso.com", error: "approver_id_refused" }]);
    expect(inbox("alice@contoso.com")).toEqual([]);
    await linkFor("carol", made.id);
    const byAddress = await t.as("t1", "alice@contoso.com", ["Reader"]);
    const pending = await auditor.approvals.get(made.id);
    expect(pending).toMatchObject({ status: "pending", currentStage: 1 });
    expect(await reasonOf(byAddress.approvals.decide(made.id, { decision: "approve", justification: "my own request, by address" }, pending.etag))).toBe("403 approver_name_not_an_id");
    expect(await auditor.approvals.get(made.id)).toEqual(pending);

    // A stage that names nobody who can decide ends when it starts, saying why; the requester need not wait for its deadline.
    const stuck = await alice.approvals.create(spec());
    await tamper(stuck.id, (d) => void ((d.stages as { approvers: unknown[] }[])[1]!.approvers = [{ user: "alice@contoso.com" }, { user: "alice" }]));
    await bob.approvals.decide(stuck.id, { decision: "approve", justification: "stage one" }, (await auditor.approvals.get(stuck.id)).etag);
    const ended = await until(async () => {
      const a = await auditor.approvals.get(stuck.id);
      return a.status === "pending" ? undefined : a;
    }, "the stuck request ended");
    expect(ended).toMatchObject({ status: "expired", currentStage: 1 });
    expect(ended.timeline.at(-1)).toMatchObject({ type: "expired", stage: 1, detail: "nobody can decide stage 2: it names only alice@contoso.com, alice, who never decide (a name no token carries, the requester or a party)" });
    // One already waiting on such a stage ends at the next sweep (and its orchestration winds down).
    const waiting = await alice.approvals.create(spec());
    await linkFor("bob", waiting.id);
    await tamper(waiting.id, (d) => void ((d.stages as { approvers: unknown[] }[])[0]!.approvers = [{ user: "alice@contoso.com" }]));
    expect((await auditor.approvals.get(waiting.id)).status).toBe("pending");
    await t.app.host.invokeTimer("approvalDriverSweep");
    const swept = await auditor.approvals.get(waiting.id);
    expect(swept).toMatchObject({ status: "expired", currentStage: 0 });
    expect(swept.timeline.at(-1)).toMatchObject({ type: "expired", stage: 0, detail: expect.stringMatching(/^nobody can decide stage 1: it names only alice@contoso.com,/) });
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.approval.expired.v1" && [stuck.id, waiting.id].some((id) => e.subject === `/tenants/t1/approvals/${id}`))).toHaveLength(2);
    expect(await reasonOf(bob.approvals.decide(waiting.id, { decision: "approve", justification: "too late" }, swept.etag))).toBe("409 approval_not_awaiting");

    await tamper("approvalRoutes.tenant", (d) => void (d.routes = (d.routes as { name: string }[]).filter((r) => r.name !== legacy.name)));
    expect((await auditor.approvals.routes()).unusable).toEqual([]);
  });

  it("separation of duties: one approver decides one stage, whatever the letter case of the object id their token carries", async () => {
    const oid = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
    const lower = await t.as("t1", oid, ["Approver"]);
    const upper = await t.as("t1", oid.toUpperCase(), ["Approver"]);
    // The route's two stages (bob, then an Approver), and a third the requester adds: another Approver.
    const created = await alice.approvals.create(spec({ stages: [{ approvers: [{ role: "Approver", scope: "tenant" }], decisionTimeout: "P1D" }] }));
    const afterBob = await bob.approvals.decide(created.id, { decision: "approve", justification: "ok" }, created.etag);
    const afterLower = await lower.approvals.decide(created.id, { decision: "approve", justification: "stage 2" }, afterBob.etag);
    expect(afterLower).toMatchObject({ status: "pending", currentStage: 2 });
    // The same user, the id in capitals: not a second, independent approver.
    expect(await reasonOf(upper.approvals.decide(created.id, { decision: "approve", justification: "stage 3, again me" }, afterLower.etag))).toBe("409 approver_already_decided");
    const stored = await auditor.approvals.get(created.id);
    expect(stored).toMatchObject({ status: "pending", currentStage: 2 });
    expect(stored.decisions.map((d) => d.approver)).toEqual(["bob", oid]);
    expect((await carol.approvals.decide(created.id, { decision: "approve", justification: "independent" }, stored.etag)).status).toBe("approved");
  });

  it("separation of duties: nobody the requester manages through a project assignment decides", async () => {
    const admin = await t.as("t1", "audrey", ["TenantAdmin"]);
    const project = await admin.projects.create({ ...projectSpec("sod"), roleAssignments: [{ principalId: "alice", role: "ProjectAdmin" }, { principalId: "carol", role: "Reader" }] });
    // carol holds the tenant Approver role, but alice administers a project carol is assigned to.
    const created = await alice.approvals.create(spec({ subject: { resourceType: "model", resourceId: "t", projectId: project.id, change: {} } }));
    const afterBob = await bob.approvals.decide(created.id, { decision: "approve", justification: "ok" }, created.etag);
    const err = await carol.approvals.decide(created.id, { decision: "approve", justification: "my admin asked" }, afterBob.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect(err?.status).toBe(403);
    expect(err?.problem?.reason).toBe("approver_managed_by_requester");
    expect((await alice.approvals.get(created.id)).status).toBe("pending");
    // An Approver alice does not manage decides.
    const frank = await t.as("t1", "frank", ["Approver"]);
    expect((await frank.approvals.decide(created.id, { decision: "approve", justification: "independent" }, afterBob.etag)).status).toBe("approved");
  });

  it("approver links open the page once; forged, replayed and expired links are refused and change nothing", async () => {
    const created = await alice.approvals.create(spec({}, "agent"));
    const link = await linkFor("bob", created.id);
    const page = await t.anonymous.approvals.openLink(link);
    expect(page.status).toBe(200);
    expect(page.html).toContain("the payments team needs read access to repositories");
    expect(page.html).toContain("github-mcp");
    expect(page.html).toContain("repo:read");
    expect(page.html).toContain(created.subject.digest);
    // A mail gateway's or tracker's own parameters on the link do not break it.
    expect((await t.anonymous.approvals.openLink(`${link}&utm_source=mail&utm_medium=email`)).status).toBe(200);

    const forged = link.replace(/token=([^&]+)/, (_, tok: string) => `token=${tok.slice(0, -4)}AAAA`);
    expect((await t.anonymous.approvals.openLink(forged)).status).toBe(403);
    expect((await t.anonymous.approvals.submitLink(forged, "approve", "forged")).status).toBe(403);
    expect(await auditor.approvals.get(created.id)).toMatchObject({ status: "pending", decisions: [] });

    const submitted = await t.anonymous.approvals.submitLink(link, "approve", "approved from the page");
    expect(submitted.status).toBe(200);
    expect(submitted.html).toContain("approved");
    const after = await auditor.approvals.get(created.id);
    expect(after).toMatchObject({ status: "approved", decisions: [{ approver: "bob", via: "link", justification: "approved from the page" }] });
    const replay = await t.anonymous.approvals.submitLink(link, "reject", "replayed");
    expect(replay.status).toBe(409);
    expect(await auditor.approvals.get(created.id)).toEqual(after);
    // The decision through the page is audited like one through the API, with bob as the actor.
    const audit = await auditor.audit.list({ resource: `/approvals/${created.id}` });
    expect(audit.items[0]).toMatchObject({ action: "approval.approve", actor: "bob" });
    // Links never reach events or the audit log.
    await t.relay();
    const token = new URL(link).searchParams.get("token")!;
    expect(JSON.stringify(t.events())).not.toContain(token.slice(3, 40));
    expect(JSON.stringify((await auditor.audit.list({ maxPageSize: 100 })).items)).not.toContain("token");
  });

  it("escalates once after escalateAfter, then denies at the timeout; events arrive in that order", async () => {
    const created = await alice.approvals.create(spec({}, "promotion"));
    await linkFor("bob", created.id); // the stage has started
    t.appClock.advance(30 * 60_000); // escalateAfter (PT30M) passes
    await linkFor("dave", created.id); // the escalation reached the alternate approver
    const escalated = await auditor.approvals.get(created.id);
    expect(escalated.stages[0]!.status).toBe("escalated");
    t.appClock.advance(30 * 60_000); // the decision timeout (PT1H) passes
    const expired = await until(async () => {
      const a = await auditor.approvals.get(created.id);
      return a.status === "expired" ? a : undefined;
    });
    expect(expired.timeline.map((e) => e.type)).toEqual(["requested", "stageStarted", "escalated", "expired"]);
    expect(expired.decisions).toEqual([]);
    await t.relay();
    const events = t.events().filter((e) => e.subject === `/tenants/t1/approvals/${created.id}`).map((e) => e.type);
    expect(events).toEqual(["aigov.approval.requested.v1", "aigov.approval.escalated.v1", "aigov.approval.expired.v1"]);
    // The expired request's links are refused.
    const link = inbox("dave").find((m) => m.link.includes(created.id))!.link;
    const opened = await t.anonymous.approvals.openLink(link);
    expect(opened.status).toBe(403);
    expect(opened.html).toContain("expired");
    expect((await t.anonymous.approvals.submitLink(link, "approve", "too late")).status).toBe(403);
    expect(await auditor.approvals.get(created.id)).toEqual(expired);
  });

  it("lists what awaits me, and reports metrics", async () => {
    const mine = await bob.approvals.list({ approver: "me" });
    expect(mine.items.every((a: Approval) => a.status === "pending" && a.stages[a.currentStage]!.approvers.some((r) => "user" in r && r.user === "bob"))).toBe(true);
    const metrics = await auditor.approvals.metrics();
    expect(metrics.counts.approved).toBeGreaterThanOrEqual(2);
    expect(metrics.counts.rejected).toBeGreaterThanOrEqual(1);
    expect(metrics.counts.expired).toBeGreaterThanOrEqual(1);
    expect(metrics.decided).toBe(metrics.counts.approved + metrics.counts.rejected);
    expect(metrics.decidedWithin24hShare).toBe(1);
    expect(metrics.timeToDecisionMs.p95).toBeGreaterThanOrEqual(metrics.timeToDecisionMs.p50!);
  });
});

describe("approval driver sweep", () => {
  it("starts the orchestration of a pending request that has none (e.g. its start failed), exactly once", async () => {
    const created = await alice.approvals.create(spec({}, "agent"));
    await linkFor("bob", created.id);
    // Lose the driver: terminate and purge the instance, as if it had never started.
    const base = `${t.url}/runtime/webhooks/durabletask/instances/${created.id}`;
    const hook = (url: string, init: RequestInit = {}) => fetch(url, { ...init, headers: { "x-functions-key": t.app.durableKey } });
    expect((await hook(`${base}/terminate?reason=lost`, { method: "POST" })).status).toBe(202);
    await until(async () => ((await (await hook(base)).json()) as { runtimeStatus: string }).runtimeStatus === "Terminated" || undefined);
    expect((await hook(base, { method: "DELETE" })).status).toBe(200);
    expect((await hook(base)).status).toBe(404);

    await t.app.host.invokeTimer("approvalDriverSweep");
    const running = await until(async () => {
      const res = await hook(base);
      return res.status === 200 || res.status === 202 ? ((await res.json()) as { runtimeStatus: string }) : undefined;
    });
    expect(["Running", "Pending"]).toContain(running.runtimeStatus);
    // A second sweep finds it and starts nothing.
    await t.app.host.invokeTimer("approvalDriverSweep");
    const decided = await bob.approvals.decide(created.id, { decision: "approve", justification: "driven again" }, created.etag);
    expect(decided.status).toBe("approved");
    const done = await until(async () => {
      const body = (await (await hook(base)).json()) as { runtimeStatus: string; output: unknown };
      return body.runtimeStatus === "Completed" ? body : undefined;
    });
    expect(done.output).toBe("approved");
  });
});

describe("key requests' approvals", () => {
  it("the sweep withdraws a key request's approval whose key was never written (a crash in between) or was revoked while it waited; one its key awaits stays pending", async () => {
    const project = await auditor.projects.create(projectSpec("guarded-keys", { keyPolicy: { requireApproval: true } }));
    const awaited = await alice.keys.create(project.id, { name: "awaited", justification: "the fraud model's evaluation" });
    const ended = await alice.keys.create(project.id, { name: "ended", justification: "the fraud model's evaluation" });
    await alice.keys.revoke(project.id, ended.id, { reason: "not needed after all" }, (await alice.keys.get(project.id, ended.id)).etag);
    // Key creation opens the request first, then writes the key: the process died in between.
    const lostKey = newId("key");
    const { approvals } = await getServices();
    const orphan = await approvals.request(
      { principal: { tenantId: "t1", userId: "alice", roles: new Set(["Developer"]) }, correlationId: "crashed-create" },
      {
        subject: { resourceType: "keyRequest", resourceId: lostKey, projectId: project.id, change: { keyId: lostKey, projectId: project.id, name: "lost", scopes: {} } },
        justification: "the fraud model's evaluation",
        route: { subjectType: "keyRequest", scope: "project", risk: "standard" },
      },
    );
    // Within the grace period the key may still be about to be written: nothing is withdrawn.
    await t.app.host.invokeTimer("approvalDriverSweep");
    expect((await auditor.approvals.get(orphan.id)).status).toBe("pending");

    t.appClock.advance(11 * 60 * 1000);
    await t.app.host.invokeTimer("approvalDriverSweep");
    expect((await auditor.approvals.get(orphan.id)).status).toBe("withdrawn");
    expect((await auditor.approvals.get(ended.approval!.approvalId)).status).toBe("withdrawn");
    expect((await auditor.approvals.get(awaited.approval!.approvalId)).status).toBe("pending");
    // Audited and evented like every withdrawal; nobody can approve it any more.
    const audit = await auditor.audit.list({ resource: `/approvals/${orphan.id}` });
    expect(audit.items.map((a) => a.action)).toEqual(expect.arrayContaining(["approval.create", "approval.withdraw"]));
    await t.relay();
    expect(t.events().filter((e) => e.subject === `/tenants/t1/approvals/${orphan.id}`).map((e) => e.type)).toContain("aigov.approval.withdrawn.v1");
    const withdrawn = await auditor.approvals.get(orphan.id);
    expect(await reasonOf(auditor.approvals.decide(orphan.id, { decision: "approve", justification: "late" }, withdrawn.etag))).toBe("409 approval_not_awaiting");
    // The key that awaits its request is untouched: still suspended and pending.
    expect(await alice.keys.get(project.id, awaited.id)).toMatchObject({ status: "suspended", approval: { state: "pending" } });
    expect(await alice.keys.get(project.id, ended.id)).toMatchObject({ status: expect.stringMatching(/^revoked|revocationPending$/) });
  });
});
