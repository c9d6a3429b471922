/**
 * Cloud connections outside local mode: the SDKs would send the control plane's credentials (Foundry:
 * its Entra token) wherever a connection points them, so only the clouds' own hosts are accepted, and
 * local conveniences (endpoint overrides, static tokens) are refused — before anything is read or stored.
 */
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/domain/errors.js";
import type { RequestContext } from "../../src/domain/common.js";
import { ConnectionService, roleSessionNameOf } from "../../src/pillars/agents/connections.js";

/** Any use of a dependency fails the test: refusals must come first. */
const untouchable = <T extends object>(name: string) => new Proxy({} as T, { get: (_t, p) => { throw new Error(`${name}.${String(p)} used`); } });
const service = (local: boolean, platformIdentity: (tenantId: string) => boolean = () => true) =>
  new ConnectionService(untouchable("store"), untouchable("changes"), { now: () => new Date() }, untouchable("secrets"), untouchable("projects"), local, undefined, platformIdentity);
const admin: RequestContext = { principal: { tenantId: "t1", userId: "tara", roles: new Set(["TenantAdmin"]) }, correlationId: "c" };

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError && err.error.kind === "validation") return { reason: err.error.reason, fields: err.error.errors.map((e) => e.field) };
    throw err;
  }
  throw new Error("not refused");
}

const base = { name: "c1", projectId: "prj_00000000000000000000", regions: ["eastus"] };

describe("cloud connections in Azure (not local)", () => {
  it("a Foundry endpoint must be a Foundry project endpoint: the SDK sends the app's Entra token there", async () => {
    const r = await refusal(service(false).create(admin, { ...base, scope: { cloud: "foundry", projectEndpoints: { eastus: "https://attacker.example.com/api/projects/p" } }, credentials: { kind: "workloadIdentity" } }));
    expect(r.fields).toEqual(["body.scope.projectEndpoints.eastus"]);
    const lookalike = await refusal(service(false).create(admin, { ...base, scope: { cloud: "foundry", projectEndpoints: { eastus: "https://x.services.ai.azure.com.attacker.example/api/projects/p" } }, credentials: { kind: "workloadIdentity" } }));
    expect(lookalike.fields).toEqual(["body.scope.projectEndpoints.eastus"]);
  });

  it("endpoint overrides and static tokens are for local fakes only", async () => {
    const override = await refusal(service(false).create(admin, { ...base, regions: ["us-east-1"], scope: { cloud: "bedrock", accountId: "123456789012", endpoint: "http://169.254.169.254" }, credentials: { kind: "workloadIdentity" } }));
    expect(override).toEqual({ reason: "endpoint_override_not_allowed", fields: ["body.scope.endpoint"] });
    const token = await refusal(service(false).create(admin, { ...base, regions: ["us-central1"], scope: { cloud: "vertex", projectId: "my-project-1" }, credentials: { kind: "accessToken", token: "x" } }));
    expect(token.fields).toEqual(["body.credentials.kind"]);
  });

  it("credentials must be the cloud's own kind; Foundry regions must be its endpoints' regions", async () => {
    const wrong = await refusal(service(false).create(admin, { ...base, regions: ["us-east-1"], scope: { cloud: "bedrock", accountId: "123456789012" }, credentials: { kind: "gcpServiceAccountKey", json: "{}" } }));
    expect(wrong.fields).toEqual(["body.credentials.kind"]);
    const regions = await refusal(service(false).create(admin, { ...base, regions: ["westus"], scope: { cloud: "foundry", projectEndpoints: { eastus: "https://r.services.ai.azure.com/api/projects/p" } }, credentials: { kind: "workloadIdentity" } }));
    expect(regions.fields).toEqual(["body.regions"]);
  });

  it("the platform's own identity is lent only to the tenants the operator names: every tenant would present the same one", async () => {
    const only = (tenantId: string) => tenantId === "t-trusted";
    const asked = service(false, only).create(admin, { ...base, regions: ["us-east-1"], scope: { cloud: "bedrock", accountId: "123456789012", roleArn: "arn:aws:iam::123456789012:role/someone-elses" }, credentials: { kind: "workloadIdentity" } });
    const err = await asked.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).error).toMatchObject({ kind: "forbidden", reason: "platform_identity_not_allowed" });
    // Its own credentials are the tenant's business: not refused for this reason (it goes on to store them).
    const own = await service(false, only).create(admin, { ...base, regions: ["us-east-1"], scope: { cloud: "bedrock", accountId: "123456789012" }, credentials: { kind: "awsAccessKey", accessKeyId: "AKIDEXAMPLE00000", secretAccessKey: "x" } }).then(() => "stored", (e: unknown) => String(e));
    expect(own).toMatch(/used$/);
  });

  it("a tenant's AWS role session name is its own, so a trust policy can require it", () => {
    expect(roleSessionNameOf("72f988bf-86f1-41af-91ab-2d7cd011db47")).toBe("aigov-72f988bf-86f1-41af-91ab-2d7cd011db47");
    expect(roleSessionNameOf("t-agents")).toBe("aigov-t-agents");
    expect(roleSessionNameOf("a tenant/with spaces")).toMatch(/^aigov-[0-9a-f]{32}$/);
  });
});
