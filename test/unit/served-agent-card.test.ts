/**
 * The card an agent's API serves (src/policy/compile/agent-card.ts): the registry's card in its own A2A
 * version, its interfaces moved to the gateway (those elsewhere dropped), the gateway key added to every
 * security requirement, signatures gone — and still a valid card of that version once the gateway has put
 * its URL in. (The conformance suite fetches it through the local gateway.)
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validateAgentCard } from "../../src/pillars/agents/card/index.js";
import { servedAgentCard } from "../../src/policy/compile/agent-card.js";
import { serviceUrlOf } from "../../src/policy/compile/agents.js";
import { AGENT_CARD_PLACEHOLDER } from "../../src/policy/expressions.js";

const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(`test/fixtures/a2a/${name}`, "utf8")) as Record<string, unknown>;
const GATEWAY = "https://gw.example.com/aigov/k/p/agents/agt_1";
/** What the gateway does at run time: the placeholder becomes its URL for the API. */
const served = (version: "0.3" | "1.0", card: Record<string, unknown>, endpoint: string) =>
  JSON.parse(servedAgentCard(version, card, endpoint, serviceUrlOf(endpoint)).replaceAll(AGENT_CARD_PLACEHOLDER, GATEWAY)) as Record<string, unknown>;

describe("the card served at an agent's API", () => {
  it("v0.3: url and additional interfaces at the gateway, the key in every requirement (card and skills), still a valid v0.3 card", () => {
    const card: Record<string, unknown> = { ...fixture("v03-travel.json"), signatures: [{ protected: "e30", signature: "AA" }] };
    card.additionalInterfaces = [...(card.additionalInterfaces as unknown[]), { url: "https://other.example.com/a2a", transport: "HTTP+JSON" }];
    const out = served("0.3", card, "https://travel.fabrikam.example/a2a");
    expect(out.url).toBe(`${GATEWAY}/a2a`);
    expect(out.additionalInterfaces).toEqual([
      { url: `${GATEWAY}/a2a`, transport: "JSONRPC" },
      { url: `${GATEWAY}/a2a/grpc`, transport: "GRPC" },
    ]);
    expect(out.signatures).toBeUndefined();
    expect((out.securitySchemes as Record<string, unknown>).aigovGatewayKey).toEqual({ type: "apiKey", in: "header", name: "api-key", description: expect.any(String) });
    expect(out.security).toEqual([
      { bearer: [], aigovGatewayKey: [] },
      { oidc: ["openid", "travel.book"], aigovGatewayKey: [] },
    ]);
    expect((out.skills as { security?: unknown }[])[1]!.security).toEqual([{ oidc: ["travel.book"], aigovGatewayKey: [] }]);
    // Untouched: what the card says about the agent, its provider and documentation.
    expect([out.name, out.provider, out.documentationUrl]).toEqual([card.name, card.provider, card.documentationUrl]);
    const check = validateAgentCard(out);
    expect([check.version, check.findings.filter((f) => f.severity === "error")]).toEqual(["0.3", []]);
  });

  it("v1.0: interfaces under the service URL kept (tenant and all), the key joins each requirement, a scheme name already taken is not reused", () => {
    const card = fixture("v1-weather.json");
    card.securitySchemes = { ...(card.securitySchemes as object), aigovGatewayKey: { apiKeySecurityScheme: { location: "query", name: "k" } } };
    const out = served("1.0", card, "https://weather.contoso.example/a2a/v1");
    expect(out.supportedInterfaces).toEqual([
      { url: `${GATEWAY}/v1`, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
      { url: `${GATEWAY}/rest`, protocolBinding: "HTTP+JSON", protocolVersion: "1.0", tenant: "emea" },
    ]);
    const schemes = out.securitySchemes as Record<string, unknown>;
    expect(schemes.aigovGatewayKey).toEqual({ apiKeySecurityScheme: { location: "query", name: "k" } });
    expect(schemes.aigovGatewayKey2).toEqual({ apiKeySecurityScheme: { location: "header", name: "api-key", description: expect.any(String) } });
    expect(out.securityRequirements).toEqual([
      { schemes: { entra: { list: ["api://weather/.default"] }, aigovGatewayKey2: { list: [] } } },
      { schemes: { apiKey: {}, aigovGatewayKey2: { list: [] } } },
    ]);
    const check = validateAgentCard(out);
    expect([check.version, check.findings.filter((f) => f.severity === "error")]).toEqual(["1.0", []]);
  });

  it("v1.0: no interface under the service URL leaves the endpoint at the gateway; requirements only in v0.3's `security` are served in both forms", () => {
    const card = { ...fixture("v1-weather.json"), security: [{ entra: ["api://weather/.default"] }] } as Record<string, unknown>;
    delete card.securityRequirements;
    const out = served("1.0", card, "https://agents.contoso.example/weather/a2a");
    expect(out.supportedInterfaces).toEqual([{ url: `${GATEWAY}/a2a`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }]);
    expect(out.security).toEqual([{ entra: ["api://weather/.default"], aigovGatewayKey: [] }]);
    expect(out.securityRequirements).toEqual([{ schemes: { entra: { list: ["api://weather/.default"] }, aigovGatewayKey: { list: [] } } }]);
  });
});
