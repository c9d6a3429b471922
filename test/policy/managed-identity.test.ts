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

  it("says why", () => {
    expect(managedIdentityRefusal({ url: "https://x.example.com", audience: "https://cognitiveservices.azure.com" }, [])).toMatch(/Azure AI services/);
    expect(managedIdentityRefusal({ url: "https://x.openai.azure.com", audience: "https://vault.azure.net" }, [])).toMatch(/asks only for/);
    expect(managedIdentityRefusal({ url: "https://x.example.com", audience: "api://x", clientId: OTHER.toUpperCase() }, [OTHER])).toBeUndefined();
    expect(managedIdentityRefusal({ url: "https://x.example.com", audience: "api://x", clientId: OWN }, [OTHER])).toMatch(/not one of the tenant's gateway identities/);
  });
});
