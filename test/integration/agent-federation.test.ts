/**
 * A Bedrock connection with workload identity federation: no secret is stored; at each sync the control
 * plane's identity token (here a test's, in Azure the managed identity's for api://AzureADTokenExchange)
 * assumes the connection's IAM role through STS, and the AWS SDK lists with the temporary credentials,
 * renewing them with a new token when they near their expiry.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { ApiError } from "../../src/client/index.js";
import { startBedrockFake, type BedrockFake } from "../../src/local-backends/agent-clouds/index.js";
import { FEDERATION_AUDIENCE } from "../../src/pillars/agents/federation.js";
import { errorOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const ROLE = "arn:aws:iam::123456789012:role/aigov-agent-sync";
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

let g: Governed;
let bedrock: BedrockFake;
let tokens = 0;

beforeAll(async () => {
  g = await Governed.start("t-agent-federation");
  bedrock = await startBedrockFake({ seed: "federation", regions: { "us-east-1": 9 }, webIdentity: { roleArn: ROLE, audience: FEDERATION_AUDIENCE, lifetimeSeconds: 60 } });
  overrideServices({
    pillarSeams: {
      federatedToken: async () => `${b64({ alg: "RS256", kid: "k" })}.${b64({ aud: FEDERATION_AUDIENCE, iss: "https://login.microsoftonline.com/tid/v2.0", sub: "managed-identity-oid", n: ++tokens })}.sig`,
    },
  });
});
afterAll(async () => {
  overrideServices({});
  await bedrock?.close();
  await g?.stop();
});

describe("workload identity federation for a Bedrock connection", () => {
  it("stores no secret; a sync assumes the role with the identity token and converges; renewed credentials bring a new token", async () => {
    const project = await g.project("federated agents");
    const refused = (await errorOf(g.admin.connections.create({ name: "aws-bad-role", projectId: project.id, scope: { cloud: "bedrock", accountId: "123456789012", roleArn: "arn:aws:iam::1:role/x" }, regions: ["us-east-1"], credentials: { kind: "workloadIdentity" } }))) as ApiError;
    expect(refused.status).toBe(400);
    expect(refused.problem?.errors).toEqual([expect.objectContaining({ field: "body.scope.roleArn" })]);
    // A well-formed role of another account: its credentials would list that account's agents under this one's.
    const elsewhere = (await errorOf(g.admin.connections.create({ name: "aws-other-account", projectId: project.id, scope: { cloud: "bedrock", accountId: "123456789012", roleArn: "arn:aws:iam::210987654321:role/aigov-agent-sync" }, regions: ["us-east-1"], credentials: { kind: "workloadIdentity" } }))) as ApiError;
    expect([elsewhere.status, elsewhere.problem?.errors]).toEqual([400, [{ field: "body.scope.roleArn", message: "must be a role of account 123456789012 (the connection's account)" }]]);

    const connection = await g.admin.connections.create({ name: "aws-federated", projectId: project.id, scope: { cloud: "bedrock", accountId: "123456789012", roleArn: ROLE, endpoint: bedrock.endpoint }, regions: ["us-east-1"], credentials: { kind: "workloadIdentity" } });
    expect(connection.credentials).toEqual({ kind: "workloadIdentity" });
    const sync = async () => {
      const run = await g.admin.connections.sync(connection.id);
      return until(async () => {
        const r = await g.admin.connections.run(connection.id, run.id);
        return r.status === "running" ? undefined : r;
      }, "sync run");
    };
    const first = await sync();
    expect(first).toMatchObject({ status: "completed", counts: { listed: 9, discovered: 9 } });
    expect((await g.admin.agents.list(project.id, { origin: "synced" })).items).toHaveLength(9);
    const assumed = bedrock.stsCalls.filter((c) => c.granted);
    expect(assumed.length).toBeGreaterThanOrEqual(1);
    expect(assumed.every((c) => c.roleArn === ROLE && c.claims.sub === "managed-identity-oid")).toBe(true);
    // The session names the tenant: the role's trust policy can require it (sts:RoleSessionName).
    expect(new Set(assumed.map((c) => c.roleSessionName))).toEqual(new Set(["aigov-t-agent-federation"]));

    // Temporary credentials that near their expiry (these live a minute) are renewed with a new identity token
    // (never kept); the next run changes nothing.
    const before = tokens;
    const second = await sync();
    expect(second).toMatchObject({ status: "completed", counts: { listed: 9, discovered: 0, unchanged: 9 } });
    expect(tokens).toBeGreaterThan(before);
  });
});
