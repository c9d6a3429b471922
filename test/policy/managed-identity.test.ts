// The gateway's managed identity at compile time (src/policy/identity.ts): its own identity goes only to
// Azure AI services for their audience; anything else takes an identity the operator assigned the tenant.
import { describe, expect, it } from "vitest";
import { compile } from "../../src/policy/compile.js";
import { PolicyCompileError } from "../../src/policy/errors.js";
import { managedIdentityRefusal } from "../../src/policy/identity.js";
import { model, project, tenant } from "./fixtures.js";

const OWN = "5f2d7a1c-8e4b-4c3a-9b6d-1a2e3f4c5d6e";
const OTHER = "0b1e7c3a-5d2f-4a8e-9c61-7f3d2e1a9b05";

const issuesOf = (run: () => unknown): string[] => {
  try {
    run();
  } catch (e) {
    if (e instanceof PolicyCompileError && e.code === "invalidInput") return e.issues.map((i) => i.path);
    throw e;
  }
  return [];
};

const mi = (url: string, resource: string, clientId?: string) => model("m", "gpt-4o", { backends: [{ id: "m_b", url, region: "eastus", auth: { type: "managedIdentity", resource, ...(clientId ? { clientId } : {}) } }] });
const server = (url: string, audience: string, clientId?: string) => ({
  id: "srv_aaaaaaaaaaaaaaaaaaaa",
  name: "upstream",
  source: { kind: "remote" as const, url, transport: "streamable-http" as const },
  auth: { type: "managedIdentity" as const, audience, ...(clientId ? { clientId } : {}) },
});

describe("managed identities the compiler emits", () => {
  it("the gateway's own identity: Azure AI services' hosts and audience only", () => {
    expect(issuesOf(() => compile(tenant([project("prj_a", [mi("https://aoai.openai.azure.com/openai", "https://cognitiveservices.azure.com")])])))).toEqual([]);
    for (const [url, resource] of [
      ["https://collector.example.com", "https://cognitiveservices.azure.com"],
      ["https://aoai.openai.azure.com/openai", "https://vault.azure.net"],
      ["https://aoai.openai.azure.com.evil.example", "https://cognitiveservices.azure.com"],
      ["https://aoai.openai.azure.com/openai", "https://management.azure.com/"],
    ] as const) {
      expect([url, resource, issuesOf(() => compile(tenant([project("prj_a", [mi(url, resource)])])))]).toEqual([url, resource, ["projects.0.models.0.backends.0.auth"]]);
    }
  });

  it("a user-assigned identity only when the operator assigned it to the tenant; then any host and audience", () => {
    const input = (clientId: string, identities: string[]) => tenant([project("prj_a", [mi("https://models.contoso.example/v1", "api://contoso-models", clientId)])], { gatewayIdentities: identities });
    expect(issuesOf(() => compile(input(OTHER, [OWN])))).toEqual(["projects.0.models.0.backends.0.auth"]);
    expect(issuesOf(() => compile(input(OWN, [])))).toEqual(["projects.0.models.0.backends.0.auth"]);
    const xml = compile(input(OWN, [OWN])).artifacts.flatMap((a) => ("xml" in a ? [a.xml] : [])).join("\n");
    expect(xml).toMatch(new RegExp(`<authentication-managed-identity resource="api://contoso-models" client-id="${OWN}" ?/>`));
  });

  it("MCP upstreams and the shared services are held to the same rule", () => {
    const tools = (auth: ReturnType<typeof server>) => ({ approvalMode: "none" as const, servers: [auth], toolboxes: [], grants: [] });
    expect(issuesOf(() => compile(tenant([project("prj_a", [], { tools: tools(server("https://mcp.example.com/mcp", "https://vault.azure.net")) })])))).toEqual(["projects.0.tools.servers.0.auth"]);
    expect(issuesOf(() => compile(tenant([project("prj_a", [], { tools: tools(server("https://mcp.example.com/mcp", "api://mcp", OWN)) })], { gatewayIdentities: [OWN] })))).toEqual([]);
    const services = { contentSafety: { url: "https://cs.cognitiveservices.azure.com" }, embeddings: { url: "https://embeddings.example.com/openai/deployments/e/embeddings" } };
    expect(issuesOf(() => compile(tenant([project("prj_a", [])], { services })))).toEqual(["services.embeddings"]);
    // The semantic cache calls its embeddings as the gateway's system-assigned identity (APIM allows nothing else): a clientId changes nothing.
    expect(issuesOf(() => compile(tenant([project("prj_a", [])], { services: { ...services, embeddings: { ...services.embeddings, clientId: OWN } }, gatewayIdentities: [OWN] })))).toEqual(["services.embeddings"]);
    const contentSafety = { url: "https://cs.cognitiveservices.azure.com", clientId: OWN };
    expect(issuesOf(() => compile(tenant([project("prj_a", [])], { services: { contentSafety }, gatewayIdentities: [OWN] })))).toEqual([]);
    expect(issuesOf(() => compile(tenant([project("prj_a", [])], { services: { contentSafety } })))).toEqual(["services.contentSafety"]);
  });

  it("the gateway's own identity calls only the Azure AI resources an operator listed for the tenant, when a list is set", () => {
    // Another tenant's resource that trusts the shared identity is an Azure AI host like any other: only the list tells them apart.
    const platform = "https://platform-ai.openai.azure.com/openai";
    const theirs = "https://other-tenant.openai.azure.com/openai";
    // The fixture tenant's content safety and embeddings are the platform's too.
    const SERVICES = ["contoso-cs.cognitiveservices.azure.com", "contoso-aoai.openai.azure.com"];
    const input = (url: string, sharedHosts?: string[]) => tenant([project("prj_a", [mi(url, "https://cognitiveservices.azure.com")])], sharedHosts ? { gatewaySharedHosts: [...SERVICES, ...sharedHosts] } : {});
    expect(issuesOf(() => compile(input(theirs)))).toEqual([]); // no list: any Azure AI host (locally, or `*`)
    expect(issuesOf(() => compile(input(platform, ["platform-ai.openai.azure.com"])))).toEqual([]);
    expect(issuesOf(() => compile(input(theirs, ["platform-ai.openai.azure.com"])))).toEqual(["projects.0.models.0.backends.0.auth"]);
    expect(issuesOf(() => compile(input(platform, [])))).toEqual(["projects.0.models.0.backends.0.auth"]);
    // The tenant's own identity is not held to the list: it holds roles on the tenant's resources only.
    const own = tenant([project("prj_a", [mi(theirs, "https://cognitiveservices.azure.com", OWN)])], { gatewayIdentities: [OWN], gatewaySharedHosts: SERVICES });
    expect(issuesOf(() => compile(own))).toEqual([]);
    // The tenant's shared services are held to the list where they are written, not by the compiler: a refused
    // service would fail the whole tenant's publish and freeze what the gateway holds (tenant-settings.ts).
    const services = { contentSafety: { url: "https://contoso-cs.cognitiveservices.azure.com" }, embeddings: { url: "https://other-tenant.openai.azure.com/openai/deployments/e/embeddings" } };
    expect(issuesOf(() => compile(tenant([project("prj_a", [])], { services, gatewaySharedHosts: [] })))).toEqual([]);
  });

  it("says why", () => {
    const none = { identities: [], sharedHosts: "any" as const };
    expect(managedIdentityRefusal({ url: "https://x.example.com", audience: "https://cognitiveservices.azure.com" }, none)).toMatch(/Azure AI services/);
    expect(managedIdentityRefusal({ url: "https://x.openai.azure.com", audience: "https://vault.azure.net" }, none)).toMatch(/asks only for/);
    expect(managedIdentityRefusal({ url: "https://x.example.com", audience: "api://x", clientId: OTHER.toUpperCase() }, { identities: [OTHER], sharedHosts: "any" })).toBeUndefined();
    expect(managedIdentityRefusal({ url: "https://x.example.com", audience: "api://x", clientId: OWN }, { identities: [OTHER], sharedHosts: "any" })).toMatch(/not one of the tenant's gateway identities/);
    expect(managedIdentityRefusal({ url: "https://X.openai.azure.com", audience: "https://cognitiveservices.azure.com" }, { identities: [], sharedHosts: ["y.openai.azure.com"] })).toMatch(/x\.openai\.azure\.com is not one; name one of the tenant's own identities/);
  });
});
