/**
 * Who may do what, checked on every route: each operation of the served OpenAPI document is called
 * as each tenant role alone and as each project-scoped assignment alone (no tenant role), and the
 * answer must be what the operation's declaration (`x-aigov-access`, src/api/access.ts) says — the
 * same declaration the gate enforces and docs/api.md tabulates. One app, one tenant, shared fixtures.
 *
 * - refused ("–"): 403 problem+json, and nothing in the tenant changes (no audit record, no document).
 * - own: refused (403, nothing changes) on someone else's resource, allowed on one of the caller's.
 * - allowed ("✓"): the operation's success status with the valid request this test sends, except
 *   where ALLOWED_BUT says otherwise and why.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CALLERS, isProjectScoped, verdict, type Access, type Caller, type Verdict } from "../../src/api/access.js";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { convertedServer } from "../support/tools.js";
import { until } from "../support/until.js";
import { fillPath, operationsOf, validBodies, type OpenApiOperation } from "../support/walk.js";

const TENANT = "t-roles";
const userOf = (c: Caller) => `u-${c.label.replace(" ", "-")}`;
/** Owners of the shared fixtures: nobody who calls. */
const KEY_OWNER = "key-owner";
const SOMEONE_ELSE = "someone-else";

/**
 * Allowed calls that answer something other than the operation's success status with this test's
 * fixtures: the call passed the gate and the service's own check, then met a state the valid body
 * cannot change. Anything else from an allowed caller (401, 403, another 4xx, 5xx) fails the test.
 */
const ALLOWED_BUT: Record<string, { status: number; why: string }> = {
  // The owner check passes; no scheduled rotation has left a new secret waiting to be collected.
  collectKey: { status: 409, why: "no rotated secret is waiting for collection" },
  // The caller may renew; but the exemption is still `requested` (its approval is open) and only an
  // active exemption renews. Making it active needs its approval settled — not what this test is about.
  renewExemption: { status: 409, why: "only an active exemption can be renewed" },
  // The manager check passes; the campaign is in progress, and only a completed one is applied.
  applyAccessReview: { status: 409, why: "only a completed access review can be applied" },
  // The caller may ask; the fixture project passes no prod gate (no cost center, no controls, no review).
  promoteProject: { status: 409, why: "the promotion's gates fail" },
  // The caller may ask; the fixture project is not a sandbox.
  extendProject: { status: 409, why: "only a sandbox has a review date to extend" },
};

/** Operations whose allowed callers each get a fixture of their own (allowedTarget). */
const OWN_FIXTURE = new Set(["deleteProject", "deleteModel", "deleteMcpServer", "deleteToolbox", "requestMcpToolApproval", "deleteAgent", "transitionAgent", "issueAgentKey", "deleteAgentConnection", "rotateKey", "revokeKey", "suspendKey", "resumeKey", "collectKey", "shareKey", "unshareKey", "getApproval", "decideApproval", "renewExemption", "revokeExemption", "createAccessReview", "getAccessReview", "listAccessReviewItems", "decideAccessReviewItem", "applyAccessReview", "stopAccessReview"]);

interface Target {
  values: Record<string, string>;
  body?: unknown;
  ifMatch?: string;
  query?: Record<string, string>;
}

interface Op extends OpenApiOperation {
  access: Access;
  success: number;
}

let t: TestApp;
let boss: AigovClient;
let gatekeeper: AigovClient;
let project: Project;
let other: Project;
let shared: Record<string, string>;
let leakedKey: string;
const tokens = new Map<string, string>();
let seq = 0;
const unique = () => `r${++seq}x${Date.now().toString(36)}`;

async function settledRevisions(): Promise<void> {
  await until(async () => (await boss.policy.revisions()).items.every((r) => r.status !== "pending"), "revisions settled");
}

async function freshKey(owner: string): Promise<{ id: string; key: string }> {
  const k = await boss.keys.create(project.id, { name: `fixture ${unique()}`, owner });
  return { id: k.id, key: k.key };
}

/** An approval request whose current stage names `user` (stages of the tenant's route before it are decided by the gatekeeper). */
async function approvalAwaiting(user: string): Promise<string> {
  const body = validBodies.createApproval!(unique()) as { subject: { resourceType: string }; stages: { approvers: { user: string }[] }[] };
  // A subject type of its own, so the routes the walk's PUT /approval-routes writes (for tools) do not apply.
  body.subject = { ...body.subject, resourceType: "role-matrix" };
  body.stages = [{ ...body.stages[0]!, approvers: [{ user }] }];
  let a = await boss.approvals.create(body as Parameters<AigovClient["approvals"]["create"]>[0]);
  for (;;) {
    const stage = a.stages[a.currentStage]!;
    if (stage.approvers.some((r) => "user" in r && r.user === user)) return a.id;
    a = await gatekeeper.approvals.decide(a.id, { decision: "approve", justification: "the route's own stage" }, a.etag);
    expect(a.status, "the gatekeeper advances the route's stages").toBe("pending");
  }
}

/** A campaign over the fixture project's keys (or the tenant's) whose one stage `reviewer` reviews, started, and an item they may decide. */
async function reviewedBy(reviewer: string, level: "project" | "tenant" = "project", projectId = project.id): Promise<{ reviewId: string; itemId: string }> {
  const scope = level === "project" ? { level, projectId } : { level };
  const r = await boss.reviews.create({ name: `matrix ${unique()}`, kind: "keys", scope, stages: [{ reviewers: { type: "users", users: [reviewer] } }] });
  await until(async () => ((await boss.reviews.get(r.id)).status === "inProgress" ? true : undefined), `${r.id} in progress`);
  const item = (await boss.reviews.items(r.id, { maxPageSize: 100 })).items.find((i) => i.target.holder !== reviewer && i.reviewers.includes(reviewer));
  expect(item, `an item of ${r.id} that ${reviewer} reviews`).toBeDefined();
  return { reviewId: r.id, itemId: item!.id };
}

/** A project `user` is ProjectAdmin of by assignment (with a key, so its campaigns have an item), made once per user. */
const managed = new Map<string, Promise<string>>();
function managedBy(user: string): Promise<string> {
  let p = managed.get(user);
  if (!p) {
    p = (async () => {
      const created = await boss.projects.create(projectSpec(`managed by ${user}`, { roleAssignments: [{ principalId: user, role: "ProjectAdmin" }, { principalId: KEY_OWNER, role: "Developer" }] }));
      await (await t.as(TENANT, KEY_OWNER, [])).keys.create(created.id, { name: `reviewed ${unique()}` });
      return created.id;
    })();
    managed.set(user, p);
  }
  return p;
}

async function exemptionOwnedBy(owner: string): Promise<string> {
  const body = validBodies.requestExemption!(unique()) as Record<string, unknown>;
  const e = await boss.exemptions.request({ ...body, owner, scope: { level: "project", projectId: project.id } } as Parameters<AigovClient["exemptions"]["request"]>[0]);
  return e.id;
}

async function raw(op: OpenApiOperation, token: string, target: Target) {
  const url = new URL(`/api${fillPath(op.path, target.values)}`, t.url);
  for (const [k, v] of Object.entries(target.query ?? {})) url.searchParams.set(k, v);
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (op.ifMatch) headers["if-match"] = `"${target.ifMatch}"`;
  let body: string | undefined;
  if (op.hasBody) {
    body = JSON.stringify(target.body);
    headers["content-type"] = "application/json";
  }
  const res = await fetch(url, { method: op.method, headers, ...(body ? { body } : {}) });
  return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
}

/** The resource an If-Match refers to: the path without the action, decision or share suffix. */
async function etagOf(op: OpenApiOperation, values: Record<string, string>): Promise<string> {
  const path = op.path.replace(/\/shares\/\{targetProjectId\}$/, "").replace(/\/decisions$/, "").replace(/:\w+$/, "");
  const res = await fetch(new URL(`/api${fillPath(path, values)}`, t.url), { headers: { authorization: `Bearer ${tokens.get("boss")!}` } });
  expect(res.status, `GET ${path} for the ETag of ${op.operationId}`).toBe(200);
  return ((await res.json()) as { etag: string }).etag;
}

function bodyFor(op: OpenApiOperation): unknown {
  if (!op.hasBody) return undefined;
  const sample = validBodies[op.operationId];
  expect(sample, `add a valid body for ${op.operationId} to test/support/walk.ts`).toBeDefined();
  const body = sample!(unique()) as Record<string, unknown>;
  // The walk's bodies name made-up projects; here they name the fixtures, so allowed calls succeed.
  if (op.operationId === "requestExemption") return { ...body, scope: { level: "project", projectId: project.id } };
  if (op.operationId === "shareKey") return { ...body, projectId: other.id };
  if (op.operationId === "lookupKey") return { key: leakedKey };
  if (op.operationId === "createToolbox") return { ...(body as object), tools: [{ server: "matrix", tool: "getItem" }] };
  // A connection of the fixture project, switched off: its syncs are recorded as skipped and reach no cloud.
  if (op.operationId === "createAgentConnection") return { ...body, projectId: project.id, enabled: false };
  return body;
}

/** The request a refused caller sends: the shared fixtures, a valid body and the current ETag (so only the roles can refuse it). */
async function sharedTarget(op: OpenApiOperation): Promise<Target> {
  return { values: shared, body: bodyFor(op), ...(op.ifMatch ? { ifMatch: await etagOf(op, shared) } : {}) };
}

/** The request an allowed caller sends: a fixture of its own where the call would use one up or needs the caller's relation. */
async function allowedTarget(op: OpenApiOperation, caller: Caller, v: Verdict): Promise<Target> {
  const user = userOf(caller);
  const values = { ...shared };
  switch (op.operationId) {
    case "deleteProject":
      values.projectId = (await boss.projects.create(projectSpec(`doomed ${unique()}`))).id;
      break;
    case "deleteMcpServer":
      values.serverId = (await convertedServer(boss, project.id, `doomed-${unique()}`)).id;
      break;
    case "deleteToolbox":
      values.toolboxId = (await boss.toolboxes.create(project.id, { name: `doomed-${unique()}`, tools: [{ server: "matrix", tool: "getItem" }] })).id;
      break;
    case "requestMcpToolApproval":
      // Each request needs a tool whose approval is not yet pending: a server of its own.
      values.serverId = (await convertedServer(boss, project.id, `ask-${unique()}`)).id;
      break;
    case "deleteAgent":
    case "transitionAgent":
    case "issueAgentKey":
      values.agentId = (await boss.agents.create(project.id, { name: `agent ${unique()}`, guardrails: { models: [shared.modelId!] } })).id;
      break;
    case "deleteAgentConnection":
      values.connectionId = (await boss.connections.create(agentConnectionSpec())).id;
      break;
    case "deleteModel":
      values.modelId = (await boss.models.create(project.id, validBodies.createModel!(unique()) as Parameters<AigovClient["models"]["create"]>[1])).id;
      break;
    case "rotateKey":
    case "revokeKey":
    case "suspendKey":
    case "resumeKey":
    case "collectKey":
    case "shareKey":
    case "unshareKey": {
      const key = await freshKey(v === "own" ? user : KEY_OWNER);
      values.keyId = key.id;
      if (op.operationId === "resumeKey") {
        // An admin's suspension of someone else's key is an admin's to lift: an owner resumes what they suspended.
        const by = v === "own" ? await t.as(TENANT, user, ["Reader"]) : boss;
        await by.keys.suspend(project.id, key.id, { reason: "fixture" }, (await boss.keys.get(project.id, key.id)).etag);
      }
      if (op.operationId === "unshareKey") await boss.keys.share(project.id, key.id, { projectId: other.id, justification: "fixture" }, (await boss.keys.get(project.id, key.id)).etag);
      break;
    }
    case "getApproval":
      if (v === "own") values.approvalId = await approvalAwaiting(user);
      break;
    case "decideApproval":
      values.approvalId = await approvalAwaiting(user);
      break;
    case "renewExemption":
    case "revokeExemption":
      values.exemptionId = v === "own" ? await exemptionOwnedBy(user) : op.operationId === "revokeExemption" ? await exemptionOwnedBy(SOMEONE_ELSE) : shared.exemptionId!;
      break;
    case "createAccessReview":
      // A ProjectAdmin starts campaigns of a project (a tenant-wide one is the TenantAdmin's); "own": a project the caller is ProjectAdmin of.
      return { values, body: { ...(bodyFor(op) as object), scope: { level: "project", projectId: v === "own" ? await managedBy(user) : project.id } } };
    case "applyAccessReview":
    case "stopAccessReview":
      // "own": a campaign of a project the caller is ProjectAdmin of.
      Object.assign(values, await reviewedBy(user, "project", v === "own" ? await managedBy(user) : project.id));
      break;
    case "getAccessReview":
    case "listAccessReviewItems":
    case "decideAccessReviewItem":
      Object.assign(values, await reviewedBy(user));
      break;
  }
  return { values, body: bodyFor(op), ...(op.ifMatch ? { ifMatch: await etagOf(op, values) } : {}) };
}

/** Every document of the tenant, by partition and id, with its version: what a refused call must leave as it was. */
async function snapshot(): Promise<{ docs: Map<string, string>; audit: number }> {
  const { resources } = await t
    .container()
    .items.query<{ id: string; scopeId: string; _etag: string; docType: string }>({
      query: "SELECT c.id, c.scopeId, c._etag, c.docType FROM c WHERE c.tenantId = @t",
      parameters: [{ name: "@t", value: TENANT }],
    })
    .fetchAll();
  return { docs: new Map(resources.map((r) => [`${r.scopeId}/${r.id}`, r._etag])), audit: resources.filter((r) => r.docType === "audit").length };
}

function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((k) => before.get(k) !== after.get(k)).map((k) => `${k}: ${before.get(k) ?? "absent"} → ${after.get(k) ?? "absent"}`);
}

/** Waits until nothing in the tenant changes any more (drivers started by the fixtures have done their first steps). */
async function quiet(): Promise<void> {
  let last = await snapshot();
  await until(async () => {
    await new Promise((r) => setTimeout(r, 150));
    const now = await snapshot();
    const still = changes(last.docs, now.docs).length === 0;
    last = now;
    return still;
  }, "the tenant is quiet");
}

/** A connection switched off (its syncs are skipped: no cloud is called). */
const agentConnectionSpec = () => ({ name: `con-${unique()}`.slice(0, 40), projectId: project.id, scope: { cloud: "bedrock" as const, accountId: "123456789012" }, regions: ["us-east-1"], credentials: { kind: "workloadIdentity" as const }, enabled: false });

/** An agent, a connection (off) and a skipped run of it. */
async function agentFixtures(modelId: string): Promise<Record<string, string>> {
  const agent = await boss.agents.create(project.id, { name: "matrix agent", guardrails: { models: [modelId] } });
  const connection = await boss.connections.create(agentConnectionSpec());
  const run = await boss.connections.sync(connection.id);
  await until(async () => ((await boss.connections.run(connection.id, run.id)).status === "skipped" ? true : undefined), "the switched-off connection's run is skipped");
  return { agentId: agent.id, connectionId: connection.id, runId: run.id };
}

/** An MCP server with tools (converted, no network), a snapshot, a toolbox, and an approval mode that asks for approvals. */
async function toolFixtures(): Promise<Record<string, string>> {
  const server = await convertedServer(boss, project.id, "matrix");
  await boss.tools.putSettings(project.id, { approvalMode: "all" }, "initial");
  const box = await boss.toolboxes.create(project.id, { name: "matrix-box", tools: [{ server: "matrix", tool: "getItem" }] });
  return { serverId: server.id, toolName: "deleteItem", snapshotId: server.discoveryState.snapshotId!, toolboxId: box.id };
}

let ops: Op[];

beforeAll(async () => {
  t = await startTestApp();
  boss = await t.as(TENANT, "boss", ["TenantAdmin", "Auditor"]);
  tokens.set("boss", await t.token(TENANT, "boss", ["TenantAdmin", "Auditor"]));
  gatekeeper = await t.as(TENANT, "gatekeeper", ["TenantAdmin"]);
  for (const c of CALLERS) tokens.set(userOf(c), await t.token(TENANT, userOf(c), [...c.tenantRoles]));
  const roleAssignments = [
    ...CALLERS.filter((c) => c.projectRoles.length).map((c) => ({ principalId: userOf(c), role: c.projectRoles[0]! })),
    { principalId: "dora", role: "Developer" as const },
    { principalId: "erin", role: "Developer" as const },
  ];
  project = await boss.projects.create(projectSpec("role matrix", { roleAssignments }));
  // The other project of key shares: the same assignments, so an owner may name it.
  other = await boss.projects.create(projectSpec("role matrix, other", { roleAssignments }));
  const model = await boss.models.create(project.id, validBodies.createModel!("shared") as Parameters<AigovClient["models"]["create"]>[1]);
  const published = await boss.policy.publish({ reason: "role matrix" });
  await settledRevisions();
  const key = await freshKey(KEY_OWNER);
  leakedKey = key.key;
  await boss.keys.share(project.id, key.id, { projectId: other.id, justification: "fixture" }, (await boss.keys.get(project.id, key.id)).etag);
  shared = {
    projectId: project.id,
    modelId: model.id,
    keyId: key.id,
    targetProjectId: other.id,
    revisionId: published.revision!.id,
    approvalId: await approvalAwaiting(SOMEONE_ELSE),
    exemptionId: await exemptionOwnedBy("exemption-owner"),
    ...(await toolFixtures()),
    ...(await agentFixtures(model.id)),
  };
  // A tenant-wide campaign that someone else reviews: what callers without a relation to it are refused.
  Object.assign(shared, await reviewedBy(SOMEONE_ELSE, "tenant"));
  const doc = await t.anonymous.openApi();
  const paths = doc.paths as Record<string, Record<string, { "x-aigov-access": Access; responses: Record<string, unknown> }>>;
  ops = operationsOf(doc).map((o) => {
    const declared = paths[o.path]![o.method.toLowerCase()]!;
    return { ...o, access: declared["x-aigov-access"], success: Number(Object.keys(declared.responses).find((s) => /^2\d\d$/.test(s))) };
  });
}, 120_000);
afterAll(() => t.stop());

describe("the review's case: a key's owner with only a project assignment", () => {
  it("a Developer assigned on the project (no tenant role) creates a key, suspends, resumes, rotates and revokes it", async () => {
    const dora = await t.as(TENANT, "dora", []);
    const created = await dora.keys.create(project.id, { name: "dora's key" });
    expect(created.owner).toBe("dora");
    // The key's gateway sync may still move its version: each step reads it first, as a client would.
    const current = async () => {
      await quiet();
      return dora.keys.get(project.id, created.id);
    };
    expect((await current()).status).toBe("active");
    const suspended = await dora.keys.suspend(project.id, created.id, { reason: "going on holiday" }, (await current()).etag);
    expect(suspended.status).toBe("suspended");
    const resumed = await dora.keys.resume(project.id, created.id, { reason: "back" }, (await current()).etag);
    expect(resumed.status).toBe("active");
    const rotated = await dora.keys.rotate(project.id, created.id, { overlap: "PT0S" }, (await current()).etag);
    expect(rotated.key).not.toBe(created.key);
    const revoked = await dora.keys.revoke(project.id, created.id, { reason: "leaked" }, (await current()).etag);
    expect(["revoked", "revocationPending"]).toContain(revoked.status);
    const audit = await boss.audit.list({ scope: project.id, resource: `/projects/${project.id}/keys/${created.id}`, actor: "dora" });
    for (const action of ["key.create", "key.suspend", "key.resume", "key.revoke"]) expect(audit.items.map((r) => r.action)).toContain(action);
  });

  it("another Developer of the project may read the key but not revoke it (403, nothing changes)", async () => {
    const dora = await t.as(TENANT, "dora", []);
    const erin = await t.as(TENANT, "erin", []);
    const key = await dora.keys.create(project.id, { name: "dora's other key" });
    await quiet();
    const before = await snapshot();
    expect((await erin.keys.get(project.id, key.id)).owner).toBe("dora");
    const res = await raw(ops.find((o) => o.operationId === "revokeKey")!, await t.token(TENANT, "erin", []), {
      values: { projectId: project.id, keyId: key.id },
      body: { reason: "not mine" },
      ifMatch: (await dora.keys.get(project.id, key.id)).etag,
    });
    expect(res.status).toBe(403);
    expect(res.type).toContain("application/problem+json");
    expect(changes(before.docs, (await snapshot()).docs)).toEqual([]);
    expect((await dora.keys.revoke(project.id, key.id, { reason: "done" }, (await dora.keys.get(project.id, key.id)).etag)).owner).toBe("dora");
  });
});

describe("every route × every role, against the declared table", () => {
  it("covers every authenticated route with every tenant role and every project assignment", () => {
    const authenticated = ops.filter((o) => !o.anonymous);
    expect(authenticated.length).toBeGreaterThanOrEqual(45);
    for (const op of authenticated) expect(op.access, `${op.operationId} declares who may call it`).toBeDefined();
    expect(CALLERS.map((c) => c.label)).toEqual([
      "TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader",
      "project ProjectAdmin", "project Developer", "project Approver", "project Reader",
    ]);
  });

  const expected = (op: Op, c: Caller): Verdict => verdict(op.access, new Set(c.tenantRoles), new Set(isProjectScoped(op) ? c.projectRoles : []));

  it("refused callers, and callers on resources not their own, get 403 problem+json and change nothing", async () => {
    await quiet();
    const calls: string[] = [];
    for (const op of ops.filter((o) => !o.anonymous)) {
      const callers = CALLERS.filter((c) => {
        const v = expected(op, c);
        return v === "no" || (v === "own" && !op.access.own?.lists);
      });
      if (callers.length === 0) continue;
      const target = await sharedTarget(op);
      const before = await snapshot();
      // Refusals change nothing, so they may run side by side.
      await Promise.all(
        callers.map(async (c) => {
          const res = await raw(op, tokens.get(userOf(c))!, target);
          calls.push(`${op.operationId} as ${c.label} → ${res.status}`);
          expect(res.status, `${op.method} ${op.path} as ${c.label} (${expected(op, c)}): ${res.text}`).toBe(403);
          expect(res.type, `${op.operationId} as ${c.label}`).toContain("application/problem+json");
          expect(JSON.parse(res.text), `${op.operationId} as ${c.label}`).toMatchObject({ status: 403, code: "Forbidden" });
        }),
      );
      const after = await snapshot();
      expect(after.audit, `${op.operationId}: refused calls wrote audit records`).toBe(before.audit);
      expect(changes(before.docs, after.docs), `${op.operationId}: refused calls changed the tenant`).toEqual([]);
    }
    expect(calls.length).toBeGreaterThan(150);
  }, 120_000);

  it("allowed callers, and owners on their own resources, pass: the success status (or the documented exception)", async () => {
    let calls = 0;
    for (const op of ops.filter((o) => !o.anonymous)) {
      const check = async (c: Caller) => {
        const v = expected(op, c);
        if (v === "no") return;
        const target = await allowedTarget(op, c, v);
        const res = await raw(op, tokens.get(userOf(c))!, target);
        calls += 1;
        const want = ALLOWED_BUT[op.operationId]?.status ?? op.success;
        expect(res.status, `${op.method} ${op.path} as ${c.label} (${v}): ${res.text}`).toBe(want);
      };
      // Callers with fixtures of their own, or calls that change nothing shared, run side by side;
      // writes to one shared resource (If-Match on it) one after the other.
      if (op.ifMatch && !OWN_FIXTURE.has(op.operationId)) for (const c of CALLERS) await check(c);
      else await Promise.all(CALLERS.map(check));
      if (op.operationId === "publishGateway" || op.operationId === "rollbackRevision") await settledRevisions();
    }
    expect(calls).toBeGreaterThan(200);
  }, 180_000);
});
