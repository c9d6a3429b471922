import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { Approval } from "../../src/domain/approvals/schema.js";
import type { Exemption } from "../../src/domain/exemptions/schema.js";
import type { Model } from "../../src/pillars/models/schema.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { until } from "../support/until.js";
import { convertedServer } from "../support/tools.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { newId } from "../../src/domain/common.js";
import { ApiError } from "../../src/client/index.js";
import { errorOf } from "../support/errors.js";

const statusOfError = (err: unknown) => (err instanceof ApiError ? err.status : undefined);
import { fillPath, operationsOf, registerFixturePillar, validBodies, type OpenApiOperation } from "../support/walk.js";
import { createWidget } from "../fixtures/widgets-pillar.js";

let t: TestApp;
let adminA: AigovClient;
let projectA: Project;
let approvalA: Approval;
let modelA: Model;
let revisionA: string;
let keyA: { id: string; key: string; prefix: string };
let exemptionA: Exemption;
let widgetA: { id: string };
let serverA: { id: string; discoveryState: { snapshotId?: string | undefined } };
let toolboxA: { id: string };
let agentA: { id: string };
let connectionA: { id: string };
let runA: { id: string };
let reviewA: { id: string };
let reviewItemA: { id: string };
const SECRET_NAME = "tenant-a-confidential-project";

beforeAll(async () => {
  // A pillar registered through the pillar list alone is walked like the built-in ones.
  registerFixturePillar();
  t = await startTestApp();
  adminA = await t.as("tenant-a", "alice", ["TenantAdmin", "Auditor"]);
  projectA = await adminA.projects.create(projectSpec(SECRET_NAME, { owner: "alice-owner", tags: { secret: "a-tag-value" } }));
  projectA = await adminA.projects.update(projectA.id, { description: "a-description" }, projectA.etag);
  modelA = await adminA.models.create(projectA.id, {
    name: "a-secret-model",
    provider: "openai",
    modelName: "gpt-4o",
    backends: [{ id: "a-backend", url: "https://a-secret-endpoint.example.com", region: "westeurope", credential: { type: "apiKey", header: "Authorization", key: "sk-a-secret-provider-key" } }],
  });
  approvalA = await adminA.approvals.create({
    subject: { resourceType: "agent", resourceId: "a-secret-resource", projectId: projectA.id, change: { secret: "a-change-value" } },
    justification: "a-secret-justification",
    stages: [{ approvers: [{ user: "a-approver" }], decisionTimeout: "P1D" }],
  });
  exemptionA = await adminA.exemptions.request({
    control: "contentSafety",
    scope: { level: "model", projectId: projectA.id, modelId: modelA.id },
    relaxation: { kind: "off" },
    category: "waiver",
    owner: "a-exemption-owner",
    reason: { deliveryBlocker: "a-secret-blocker", affectedControl: "a-secret-affected", expectedEndState: "a-secret-end-state" },
    compensatingControls: ["a-secret-compensating"],
    expiresAt: new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString(),
  });
  const published = await adminA.policy.publish({ reason: "a-secret-publish-reason" });
  revisionA = published.revision!.id;
  while ((await adminA.policy.revision(revisionA)).status === "pending") await new Promise((r) => setTimeout(r, 20));
  // After the first publish: the key's subscription goes straight to the gateway (its API is there).
  keyA = await adminA.keys.create(projectA.id, { name: "a-secret-key-name" });
  widgetA = (await adminA.call(createWidget, { params: { projectId: projectA.id }, body: { name: "a-secret-widget" } })).body;
  serverA = await convertedServer(adminA, projectA.id, "a-secret-server");
  toolboxA = await adminA.toolboxes.create(projectA.id, { name: "a-secret-box", tools: [{ server: "a-secret-server", tool: "getItem" }] });
  agentA = await adminA.agents.create(projectA.id, { name: "a-secret-agent", description: "a-secret-agent-description", guardrails: { models: [modelA.id] } });
  // Switched off: its run is recorded (skipped) and no cloud is called.
  connectionA = await adminA.connections.create({ name: "a-secret-connection", projectId: projectA.id, scope: { cloud: "bedrock", accountId: "111122223333" }, regions: ["us-east-1"], credentials: { kind: "awsAccessKey", accessKeyId: "AKIASECRETSECRET0001", secretAccessKey: "a-secret-aws-secret-key" }, enabled: false });
  runA = await adminA.connections.sync(connectionA.id);
  await until(async () => ((await adminA.connections.run(connectionA.id, runA.id)).status === "skipped" ? true : undefined), "the switched-off connection's run is skipped");
  reviewA = await adminA.reviews.create({ name: "a-secret-review", kind: "keys", scope: { level: "project", projectId: projectA.id }, stages: [{ reviewers: { type: "users", users: ["a-reviewer"] } }] });
  reviewItemA = await until(async () => (await adminA.reviews.items(reviewA.id)).items[0], "the review's items");
});
afterAll(() => t.stop());

describe("tenant isolation", () => {
  it("tenant B, with every role, cannot see or change tenant A's resources on any route", async () => {
    const doc = await t.anonymous.openApi();
    const tokenB = await t.token("tenant-b", "mallory", ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"]);
    const aValues = { projectId: projectA.id, approvalId: approvalA.id, modelId: modelA.id, revisionId: revisionA, keyId: keyA.id, targetProjectId: projectA.id, exemptionId: exemptionA.id, widgetId: widgetA.id, serverId: serverA.id, toolName: "getItem", snapshotId: serverA.discoveryState.snapshotId!, toolboxId: toolboxA.id, agentId: agentA.id, connectionId: connectionA.id, runId: runA.id, reviewId: reviewA.id, itemId: reviewItemA.id };
    const leaks = [projectA.id, approvalA.id, SECRET_NAME, "tenant-a", "alice-owner", "a-tag-value", "a-description", "a-secret-resource", "a-change-value", "a-secret-justification", modelA.id, "a-secret-model", "a-secret-endpoint", "sk-a-secret-provider-key", revisionA, "a-secret-publish-reason", exemptionA.id, "a-exemption-owner", "a-secret-blocker", "a-secret-compensating", widgetA.id, "a-secret-widget", agentA.id, "a-secret-agent", "a-secret-agent-description", connectionA.id, "a-secret-connection", "111122223333", "AKIASECRETSECRET0001", "a-secret-aws-secret-key", runA.id, reviewA.id, reviewItemA.id, "a-secret-review", "a-reviewer"];
    const walked: string[] = [];
    const missingValues = { projectId: newId("prj"), approvalId: newId("apr"), modelId: newId("mdl"), revisionId: newId("rev"), keyId: newId("key"), targetProjectId: newId("prj"), exemptionId: newId("exm"), widgetId: newId("wdg"), serverId: newId("srv"), toolName: "echo", snapshotId: newId("snp"), toolboxId: newId("tbx"), agentId: newId("agt"), connectionId: newId("con"), runId: newId("syn"), reviewId: newId("arv"), itemId: newId("ari") };
    const call = async (op: OpenApiOperation, values: Record<string, string>, scope: string) => {
      const url = new URL(`/api${fillPath(op.path, values)}`, t.url);
      if (op.queryParams.includes("scope")) url.searchParams.set("scope", scope);
      if (op.queryParams.includes("token")) url.searchParams.set("token", `v1.${"x".repeat(30)}.${"y".repeat(20)}`);
      const headers: Record<string, string> = { authorization: `Bearer ${tokenB}` };
      if (op.ifMatch) headers["if-match"] = `"${projectA.etag}"`;
      let body: string | undefined;
      if (op.form) {
        body = new URLSearchParams({ token: `v1.${"x".repeat(30)}.${"y".repeat(20)}`, decision: "approve", justification: "x" }).toString();
        headers["content-type"] = "application/x-www-form-urlencoded";
      }
      if (op.hasBody) {
        const sample = validBodies[op.operationId];
        expect(sample, `add a valid body for ${op.operationId} to test/support/walk.ts`).toBeDefined();
        body = JSON.stringify(sample!(op.operationId));
        headers["content-type"] = "application/json";
      }
      const res = await fetch(url, { method: op.method, headers, ...(body ? { body } : {}) });
      return { status: res.status, text: await res.text() };
    };
    // What a caller sent comes back in a 404's detail; everything else must look like a missing resource.
    const normalise = (text: string, values: Record<string, string>) =>
      Object.values(values)
        .reduce((acc, v) => acc.replaceAll(v, "<id>"), text)
        .replace(/"correlationId":"[^"]+"/, "")
        .replace(/Reference: [0-9a-f-]+/, "");
    for (const op of operationsOf(doc)) {
      const { status, text } = await call(op, aValues, projectA.id);
      walked.push(`${op.method} ${op.path} → ${status}`);
      if (op.pathParams.length > 0) {
        expect([403, 404], `${op.method} ${op.path}: ${text}`).toContain(status);
        const missing = await call(op, missingValues, missingValues.projectId);
        expect({ status, body: normalise(text, aValues) }, `${op.method} ${op.path} differs from a missing resource`).toEqual({
          status: missing.status,
          body: normalise(missing.text, missingValues),
        });
      } else {
        expect(status, `${op.method} ${op.path}: ${text}`).toBeLessThan(500);
      }
      const echoed = op.pathParams.map((p) => (aValues as Record<string, string>)[p]);
      for (const leak of leaks.filter((l) => !echoed.includes(l))) {
        expect(text, `${op.method} ${op.path} leaked ${leak}`).not.toContain(leak);
      }
    }
    expect(walked.length).toBeGreaterThanOrEqual(21);
    expect(await adminA.approvals.get(approvalA.id)).toEqual(approvalA);
    expect(await adminA.models.get(projectA.id, modelA.id)).toEqual(modelA);
    // A's state is untouched.
    expect(await adminA.projects.get(projectA.id)).toEqual(projectA);
    const auditA = await adminA.audit.list();
    expect(await adminA.exemptions.get(exemptionA.id)).toEqual(exemptionA);
    expect(auditA.items.map((r) => r.action).sort()).toEqual(["approval.create", "approval.create", "exemption.request", "gateway.publish", "gateway.revision.create", "project.update", "project.create", "agentConnection.create", "agentSync.start", "agentSync.finish", "accessReview.create", "accessReview.start"].sort());
    expect(walked.filter((w) => w.includes("/widgets"))).toHaveLength(4);
    expect((await adminA.audit.verify()).ok).toBe(true);
  });

  it("tenant B cannot identify tenant A's key by its secret: the lookup answers as for an unknown key", async () => {
    const adminB = await t.as("tenant-b", "mallory", ["TenantAdmin", "Auditor"]);
    const err = await errorOf(adminB.keys.lookup(keyA.key));
    expect(statusOfError(err)).toBe(404);
    expect(JSON.stringify(err)).not.toContain(keyA.id);
    expect(await adminA.keys.lookup(keyA.key)).toMatchObject({ keyId: keyA.id, projectId: projectA.id, secret: "current" });
  });

  it("stored documents carry their tenant in the partition key; B's point read of A's id finds nothing", async () => {
    const { resource: asB } = await t.container().item(projectA.id, ["tenant-b", "_tenant"]).read();
    expect(asB).toBeUndefined();
    const { resource: asA } = await t.container().item(projectA.id, ["tenant-a", "_tenant"]).read();
    expect(asA).toMatchObject({ tenantId: "tenant-a", scopeId: "_tenant" });
  });
});
