/**
 * The card an agent's API serves (src/policy/compile/agent-card.ts): the registry's card in its own A2A
 * version, its interfaces moved to the gateway (those elsewhere dropped, however they are spelled), the
 * schemes the gateway cannot pass on left out and its key added to every requirement left, no extended
 * card, signatures gone — and still a valid card of that version once the gateway has put its URL in.
 * (The conformance suite fetches it through the local gateway.)
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
  it("v0.3: url and additional interfaces at the gateway; bearer and OpenID Connect (Authorization, which the gateway removes) give way to the key, in the card and its skills; still a valid v0.3 card", () => {
    const card: Record<string, unknown> = { ...fixture("v03-travel.json"), signatures: [{ protected: "e30", signature: "AA" }] };
    card.additionalInterfaces = [...(card.additionalInterfaces as unknown[]), { url: "https://other.example.com/a2a", transport: "HTTP+JSON" }];
    expect(card.supportsAuthenticatedExtendedCard).toBe(true);
    const out = served("0.3", card, "https://travel.fabrikam.example/a2a");
    expect(out.url).toBe(`${GATEWAY}/a2a`);
    expect(out.additionalInterfaces).toEqual([
      { url: `${GATEWAY}/a2a`, transport: "JSONRPC" },
      { url: `${GATEWAY}/a2a/grpc`, transport: "GRPC" },
    ]);
    expect(out.signatures).toBeUndefined();
    expect(out.securitySchemes).toEqual({ aigovGatewayKey: { type: "apiKey", in: "header", name: "api-key", description: expect.any(String) } });
    expect(out.security).toEqual([{ aigovGatewayKey: [] }]);
    expect((out.skills as { security?: unknown }[]).map((k) => k.security)).toEqual([undefined, [{ aigovGatewayKey: [] }]]);
    // The extended card would come from the agent itself, unrewritten: not offered.
    expect(out.supportsAuthenticatedExtendedCard).toBeUndefined();
    // Untouched: what the card says about the agent, its provider and documentation.
    expect([out.name, out.provider, out.documentationUrl]).toEqual([card.name, card.provider, card.documentationUrl]);
    const check = validateAgentCard(out);
    expect([check.version, check.findings.filter((f) => f.severity === "error")]).toEqual(["0.3", []]);
  });

  it("v1.0: interfaces under the service URL kept (tenant and all); an API key in the agent's own header stays beside the gateway's, OAuth goes; a scheme name already taken is not reused", () => {
    const card = fixture("v1-weather.json");
    card.securitySchemes = { ...(card.securitySchemes as object), aigovGatewayKey: { apiKeySecurityScheme: { location: "query", name: "k" } } };
    const out = served("1.0", card, "https://weather.contoso.example/a2a/v1");
    expect(out.supportedInterfaces).toEqual([
      { url: `${GATEWAY}/v1`, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
      { url: `${GATEWAY}/rest`, protocolBinding: "HTTP+JSON", protocolVersion: "1.0", tenant: "emea" },
    ]);
    expect(out.securitySchemes).toEqual({
      apiKey: { apiKeySecurityScheme: { location: "header", name: "X-Weather-Key" } },
      aigovGatewayKey: { apiKeySecurityScheme: { location: "query", name: "k" } },
      aigovGatewayKey2: { apiKeySecurityScheme: { location: "header", name: "api-key", description: expect.any(String) } },
    });
    // The Entra requirement cannot be met through the gateway (it removes Authorization): only the API-key one is left.
    expect(out.securityRequirements).toEqual([{ schemes: { apiKey: {}, aigovGatewayKey2: { list: [] } } }]);
    expect((out.skills as { securityRequirements?: unknown }[]).map((k) => k.securityRequirements)).toEqual([undefined, [{ schemes: { aigovGatewayKey2: { list: [] } } }]]);
    expect((out.capabilities as { extendedAgentCard: unknown }).extendedAgentCard).toBe(false);
    const check = validateAgentCard(out);
    expect([check.version, check.findings.filter((f) => f.severity === "error")]).toEqual(["1.0", []]);
  });

  it("v1.0: no interface under the service URL leaves the endpoint at the gateway; requirements only in v0.3's `security` are served in both forms", () => {
    const card = { ...fixture("v1-weather.json"), security: [{ entra: ["api://weather/.default"] }, { apiKey: [] }] } as Record<string, unknown>;
    delete card.securityRequirements;
    const out = served("1.0", card, "https://agents.contoso.example/weather/a2a");
    expect(out.supportedInterfaces).toEqual([{ url: `${GATEWAY}/a2a`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }]);
    expect(out.security).toEqual([{ apiKey: [], aigovGatewayKey: [] }]);
    expect(out.securityRequirements).toEqual([{ schemes: { apiKey: { list: [] }, aigovGatewayKey: { list: [] } } }]);
  });

  it("v1.0 with v0.3's fields too (a card for both versions): v0.3's url and additional interfaces at the gateway as well, neither form of the extended card; still a valid v1.0 card", () => {
    const card = {
      ...fixture("v1-weather.json"),
      protocolVersion: "0.3.0",
      url: "https://weather.contoso.example/a2a/v1",
      preferredTransport: "JSONRPC",
      additionalInterfaces: [
        { url: "https://weather.contoso.example/a2a/rest", transport: "HTTP+JSON" },
        { url: "https://weather-direct.contoso.example/a2a/v1", transport: "JSONRPC" },
      ],
      supportsAuthenticatedExtendedCard: true,
    } as Record<string, unknown>;
    const out = served("1.0", card, "https://weather.contoso.example/a2a/v1");
    expect(out.url).toBe(`${GATEWAY}/v1`);
    expect(out.additionalInterfaces).toEqual([{ url: `${GATEWAY}/rest`, transport: "HTTP+JSON" }]);
    expect(out.supportsAuthenticatedExtendedCard).toBeUndefined();
    expect((out.capabilities as { extendedAgentCard: unknown }).extendedAgentCard).toBe(false);
    expect(JSON.stringify(out)).not.toMatch(/https:\/\/weather(-direct)?\.contoso\.example\/a2a/);
    // v0.3's url names no interface the gateway serves: the agent's endpoint at the gateway instead.
    const elsewhere = served("1.0", { ...card, url: "https://weather-direct.contoso.example/a2a/v1" }, "https://weather.contoso.example/a2a/v1");
    expect(elsewhere.url).toBe(`${GATEWAY}/v1`);
    // A v1.0 card without v0.3's fields gets none.
    expect(Object.keys(served("1.0", fixture("v1-weather.json"), "https://weather.contoso.example/a2a/v1")).filter((k) => ["url", "additionalInterfaces"].includes(k))).toEqual([]);
    const check = validateAgentCard(out);
    expect([check.version, check.findings.filter((f) => f.severity === "error")]).toEqual(["1.0", []]);
  });

  it("an interface is under the service URL only by its resolved path, on a segment boundary, at the same origin; anything spelled to look otherwise is dropped", () => {
    const card = { ...fixture("v1-weather.json") } as Record<string, unknown>;
    const service = "https://weather.contoso.example/a2a";
    const urls = [
      `${service}/v1`, // kept
      `${service}/../../aigov/zz/prj_other/agents/agt_aaaaaaaaaaaaaaaaaaaa/a2a`, // resolves outside
      `${service}/x/%2e%2e/%2e%2e/evil`, // encoded dots
      `${service}/x%2f..%2f..%2fevil`, // encoded slashes
      `${service}\\..\\evil`, // backslashes
      `${service}x`, // not a segment boundary
      "https://weather.contoso.example@evil.example/a2a/v1", // userinfo: another host
      "https://WEATHER.contoso.example:443/a2a/rest/?mode=stream#frag", // same origin, spelled otherwise: kept, query kept
      "http://weather.contoso.example/a2a/v1", // another scheme
    ];
    card.supportedInterfaces = urls.map((url) => ({ url, protocolBinding: "JSONRPC", protocolVersion: "1.0" }));
    const out = served("1.0", card, `${service}/v1`);
    expect((out.supportedInterfaces as { url: string }[]).map((i) => i.url)).toEqual([`${GATEWAY}/v1`, `${GATEWAY}/rest?mode=stream`]);
  });

  it("the placeholder text inside the card itself stays as written: the gateway puts its URL only where the compiler did", () => {
    const own = `${AGENT_CARD_PLACEHOLDER}/../../aigov/zz/prj_other/agents/agt_aaaaaaaaaaaaaaaaaaaa/a2a`;
    const card = { ...fixture("v03-travel.json"), documentationUrl: own, description: "See HTTPS://Gateway.Aigov.Invalid and stand-in-1.aigov.invalid" };
    const text = servedAgentCard("0.3", card, "https://travel.fabrikam.example/a2a", serviceUrlOf("https://travel.fabrikam.example/a2a"));
    const out = JSON.parse(text.replaceAll(AGENT_CARD_PLACEHOLDER, GATEWAY)) as Record<string, unknown>;
    expect([out.documentationUrl, out.description]).toEqual([own, card.description]);
    expect(out.url).toBe(`${GATEWAY}/a2a`);
    expect((out.additionalInterfaces as { url: string }[]).map((i) => i.url)).toEqual([`${GATEWAY}/a2a`, `${GATEWAY}/a2a/grpc`]);
  });

  it("an endpoint with an upper-case host or an explicit default port is still the card's URL at the gateway", () => {
    for (const endpoint of ["https://Travel.Fabrikam.example/a2a", "https://travel.fabrikam.example:443/a2a"]) {
      const card = { ...fixture("v03-travel.json"), url: "https://elsewhere.example/a2a", additionalInterfaces: [] };
      const out = served("0.3", card, endpoint);
      expect(out.url, endpoint).toBe(`${GATEWAY}/a2a`);
      expect(validateAgentCard(out).findings.filter((f) => f.severity === "error"), endpoint).toEqual([]);
    }
  });
});
