/**
 * The gateway's own identity is shared by every tenant on an instance. An Azure AI resource that trusts it
 * (a role for the gateway's principal) would serve anyone who names it, so the identity calls only the
 * resources an operator listed for it: the platform's own (GATEWAY_SHARED_IDENTITY_HOSTS) and a tenant's
 * alone (GATEWAY_ASSIGNMENTS sharedIdentityHosts). Refused where credentials are written (ADR 022).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let alpha: AigovClient;
let beta: AigovClient;
let alphaProject: string;
let betaProject: string;

beforeAll(async () => {
  process.env.GATEWAY_SHARED_IDENTITY_HOSTS = "platform-ai.openai.azure.com,platform-cs.cognitiveservices.azure.com";
  // alpha's own Azure OpenAI resource trusts the gateway's identity: the operator lists it for alpha alone.
  process.env.GATEWAY_ASSIGNMENTS = JSON.stringify({ "t-alpha": { sharedIdentityHosts: ["alpha-ai.openai.azure.com"] } });
  t = await startTestApp();
  alpha = await t.as("t-alpha", "ada", ["TenantAdmin"]);
  beta = await t.as("t-beta", "bo", ["TenantAdmin"]);
  alphaProject = (await alpha.projects.create(projectSpec("alpha models"))).id;
  betaProject = (await beta.projects.create(projectSpec("beta models"))).id;
});
afterAll(() => {
  delete process.env.GATEWAY_SHARED_IDENTITY_HOSTS;
  delete process.env.GATEWAY_ASSIGNMENTS;
  return t.stop();
});

const model = (name: string, host: string) => ({
  name,
  provider: "azure-openai" as const,
  modelName: "gpt-4o",
  backends: [{ id: "b1", url: `https://${host}/openai`, region: "eastus", credential: { type: "managedIdentity" as const, audience: "https://cognitiveservices.azure.com" } }],
});
const refusal = (p: Promise<unknown>) => p.then(() => undefined, (e: { status: number; problem?: { reason?: string; errors?: { field: string; message: string }[] } }) => ({ status: e.status, reason: e.problem?.reason, errors: e.problem?.errors }));

describe("the gateway's own identity calls only the Azure AI resources listed for the tenant", () => {
  it("another tenant's resource is refused (400 managed_identity_not_allowed on the field); the platform's and the tenant's own are taken", async () => {
    expect((await beta.models.create(betaProject, model("platform", "platform-ai.openai.azure.com"))).name).toBe("platform");
    expect((await alpha.models.create(alphaProject, model("own", "alpha-ai.openai.azure.com"))).name).toBe("own");
    const borrowed = await refusal(beta.models.create(betaProject, model("borrowed", "alpha-ai.openai.azure.com")));
    expect(borrowed).toEqual({
      status: 400,
      reason: "managed_identity_not_allowed",
      errors: [{ field: "body.backends.0.credential", message: expect.stringMatching(/^managed identity refused: .*alpha-ai\.openai\.azure\.com is not one; name one of the tenant's own identities/) }],
    });
    // Nothing was stored for the refused model.
    expect((await beta.models.list(betaProject)).items.map((m) => m.name)).toEqual(["platform"]);
    // An Azure AI host nobody listed is refused to everyone.
    expect((await refusal(alpha.models.create(alphaProject, model("unlisted", "someone.openai.azure.com"))))?.reason).toBe("managed_identity_not_allowed");
  });

  it("the tenant's shared services are held to the same list: the semantic cache's embeddings are always called as the gateway's own identity", async () => {
    const settings = await beta.settings.get();
    const services = (embeddingsHost: string) => ({ contentSafety: { url: "https://platform-cs.cognitiveservices.azure.com" }, embeddings: { url: `https://${embeddingsHost}/openai/deployments/e/embeddings` } });
    const refused = await refusal(beta.settings.put({ settings: settings.settings, services: services("alpha-ai.openai.azure.com") }, settings.etag));
    expect(refused).toMatchObject({ status: 400, reason: "managed_identity_not_allowed", errors: [{ field: "body.services.embeddings" }] });
    const put = await beta.settings.put({ settings: settings.settings, services: services("platform-ai.openai.azure.com") }, settings.etag);
    expect(put.services).toMatchObject({ embeddings: { url: expect.stringContaining("//platform-ai.openai.azure.com/") } });
  });

  it("a service stored before its host was unlisted still lets the settings be edited (sent as stored), and the tenant still publishes; a changed one is held to the list", async () => {
    // As written before the operator's list existed: beta's embeddings at a host nobody listed.
    const before = await beta.settings.get();
    const legacy = { contentSafety: { url: "https://platform-cs.cognitiveservices.azure.com" }, embeddings: { url: "https://legacy-ai.openai.azure.com/openai/deployments/e/embeddings" } };
    const container = t.container();
    const { resource } = await container.item("settings.tenant", ["t-beta", "_tenant"]).read<Record<string, unknown>>();
    await container.item("settings.tenant", ["t-beta", "_tenant"]).replace({ ...resource!, services: legacy });
    const stored = await beta.settings.get();
    expect(stored.services).toEqual(legacy);
    const edited = await beta.settings.put({ settings: { tokens: { perMinute: { limit: 5000 } } }, services: legacy }, stored.etag);
    expect(edited.settings).toEqual({ tokens: { perMinute: { limit: 5000 } } });
    const published = await beta.policy.publish({ reason: "after the upgrade" });
    expect(published.changed).toBe(true); // compiled, not 409 registry_not_compilable
    expect(published.isolated ?? []).toEqual([]);
    const moved = { ...legacy, embeddings: { url: "https://legacy-ai.openai.azure.com/openai/deployments/other/embeddings" } };
    expect((await refusal(beta.settings.put({ settings: edited.settings, services: moved }, edited.etag)))?.reason).toBe("managed_identity_not_allowed");
    expect(before.etag).not.toBe(edited.etag);
  });
});
