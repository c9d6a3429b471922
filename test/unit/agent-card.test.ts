import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import canonicalize from "canonicalize";
import { FlattenedSign, base64url, exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSafeFetch, type SafeFetch } from "../../src/adapters/http/safe-fetch.js";
import {
  CARD_LIMITS,
  CardFetchError,
  assessCard,
  chainKeyResolvers,
  embeddedJwkResolver,
  fetchAgentCard,
  jwksResolver,
  jwksUrlResolver,
  signAgentCard,
  validateAgentCard,
  verifyCardSignatures,
  type CardFinding,
  type KeyResolver,
  type NormalizedCard,
} from "../../src/pillars/agents/card/index.js";
import { listenLoopback, type LoopbackServer } from "../fixtures/mcp/http.js";

/** Every server here listens on 127.0.0.1; the safe fetch admits loopback only because the tests ask it to. */

/** Relative to the repository root, where vitest runs. */
const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(`test/fixtures/a2a/${name}`, "utf8")) as Record<string, unknown>;
const codesAt = (findings: CardFinding[]) => findings.map((f) => `${f.severity} ${f.code} ${f.path}`);
const clone = <T>(value: T): T => structuredClone(value);

describe("validateAgentCard: the two versions normalise to one shape", () => {
  it("reads a v1.0 card: interfaces in order with tenant, oneof security schemes, ProtoJSON requirements, extensions", () => {
    const result = validateAgentCard(fixture("v1-weather.json"));
    expect(result.findings).toEqual([]);
    expect(result).toMatchObject({ version: "1.0", valid: true });
    expect(result.card).toEqual<NormalizedCard>({
      protocolVersion: "1.0",
      name: "Contoso Weather Agent",
      description: "Answers questions about current conditions and forecasts for any city, and raises severe-weather alerts for subscribed regions.",
      version: "2.4.1",
      provider: { organization: "Contoso Ltd.", url: "https://www.contoso.example" },
      documentationUrl: "https://docs.contoso.example/agents/weather",
      iconUrl: "https://weather.contoso.example/icon.png",
      interfaces: [
        { url: "https://weather.contoso.example/a2a/v1", binding: "JSONRPC", protocolVersion: "1.0" },
        { url: "https://weather.contoso.example/a2a/rest", binding: "HTTP+JSON", protocolVersion: "1.0", tenant: "emea" },
      ],
      capabilities: { streaming: true, pushNotifications: false, extendedAgentCard: true },
      extensions: [
        { uri: "https://a2a.contoso.example/extensions/geolocation/v1", required: false },
        { uri: "https://a2a.contoso.example/extensions/data-residency/v1", required: true },
      ],
      skills: [
        {
          id: "forecast",
          name: "Forecast",
          description: "Hourly and daily forecast for a place, up to ten days ahead.",
          tags: ["weather", "forecast"],
          examples: ["Will it rain in Lisbon tomorrow afternoon?", "Ten-day forecast for Oslo"],
        },
        { id: "severe-alerts", name: "Severe weather alerts", description: "Current severe-weather warnings for a region.", tags: ["weather", "alerts"] },
      ],
      securitySchemes: [
        { name: "entra", kind: "oauth2" },
        { name: "apiKey", kind: "apiKey" },
      ],
      securityRequirements: [{ entra: ["api://weather/.default"] }, { apiKey: [] }],
      defaultInputModes: ["text/plain", "application/json"],
      defaultOutputModes: ["text/plain", "application/json"],
      signed: false,
    });
  });

  it("reads a v0.3 card: url + preferredTransport first, additionalInterfaces after (the repeated main entry once), type-tagged schemes", () => {
    const result = validateAgentCard(fixture("v03-travel.json"));
    expect(result.findings).toEqual([]);
    expect(result).toMatchObject({ version: "0.3", valid: true });
    expect(result.card).toEqual<NormalizedCard>({
      protocolVersion: "0.3",
      name: "Fabrikam Travel Planner",
      description: "Plans business trips: finds flights and hotels within the travel policy and books them after approval.",
      version: "1.8.0",
      provider: { organization: "Fabrikam, Inc.", url: "https://fabrikam.example" },
      documentationUrl: "https://fabrikam.example/docs/travel-agent",
      interfaces: [
        { url: "https://travel.fabrikam.example/a2a", binding: "JSONRPC", protocolVersion: "0.3" },
        { url: "https://travel.fabrikam.example/a2a/grpc", binding: "GRPC", protocolVersion: "0.3" },
      ],
      // supportsAuthenticatedExtendedCard became capabilities.extendedAgentCard in v1.0.
      capabilities: { streaming: true, pushNotifications: true, extendedAgentCard: true },
      extensions: [],
      skills: [
        { id: "find-flights", name: "Find flights", description: "Searches flights that fit the travel policy.", tags: ["travel", "flights"], examples: ["Economy flights Seattle to Boston next Monday morning"] },
        { id: "book-trip", name: "Book trip", description: "Books an approved itinerary.", tags: ["travel", "booking"] },
      ],
      securitySchemes: [
        { name: "bearer", kind: "http" },
        { name: "oidc", kind: "openIdConnect" },
      ],
      securityRequirements: [{ bearer: [] }, { oidc: ["openid", "travel.book"] }],
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain", "application/json"],
      signed: false,
    });
  });

  it("defaults a v0.3 card's missing preferredTransport to JSONRPC and reads a v0.2.x card by v0.3's rules, with a warning", () => {
    const card = fixture("v03-travel.json");
    delete card.preferredTransport;
    delete card.additionalInterfaces;
    card.protocolVersion = "0.2.9";
    const result = validateAgentCard(card);
    expect(result).toMatchObject({ version: "0.3", valid: true });
    expect(result.card?.interfaces).toEqual([{ url: "https://travel.fabrikam.example/a2a", binding: "JSONRPC", protocolVersion: "0.2" }]);
    expect(codesAt(result.findings)).toEqual(["warning card_legacy_protocol_version /protocolVersion"]);
  });
});

describe("validateAgentCard: invalid cards give findings and no card", () => {
  const cases: [string, "0.3" | "1.0" | "unknown", string[]][] = [
    ["invalid-v1-missing-tags.json", "1.0", ["error card_missing_field /skills/0/tags"]],
    [
      "invalid-bad-url.json",
      "1.0",
      [
        "error card_invalid_url /provider/url",
        "error card_invalid_url /supportedInterfaces/0/url",
        "error card_invalid_url /supportedInterfaces/1/url",
        "warning card_url_not_https /documentationUrl",
      ],
    ],
    [
      "invalid-wrong-types.json",
      "0.3",
      ["error card_invalid_field /name", "error card_invalid_field /defaultInputModes", "error card_invalid_field /capabilities/streaming", "error card_invalid_field /skills"],
    ],
    [
      "invalid-mixed-shape.json",
      "1.0",
      [
        "error card_version_mismatch /protocolVersion",
        "error card_missing_field /supportedInterfaces",
        "warning card_legacy_field /protocolVersion",
        "warning card_legacy_field /url",
        "warning card_legacy_field /preferredTransport",
      ],
    ],
    [
      "invalid-v03-with-v1-parts.json",
      "0.3",
      [
        "error card_missing_field /additionalInterfaces/0/transport",
        "error card_missing_field /securitySchemes/bearer/type",
        "warning card_unknown_field /additionalInterfaces/0/protocolBinding",
        "warning card_unknown_field /additionalInterfaces/0/protocolVersion",
        "warning card_unknown_field /capabilities/extendedAgentCard",
        "warning card_unknown_field /securityRequirements",
      ],
    ],
    ["invalid-unknown-version.json", "unknown", ["error card_unknown_version "]],
  ];
  it.each(cases)("%s", (name, version, expected) => {
    const result = validateAgentCard(fixture(name));
    expect(result.version).toBe(version);
    expect(result.valid).toBe(false);
    expect(result.card).toBeUndefined();
    expect(codesAt(result.findings)).toEqual(expected);
  });

  it("says what a wrong value should have been", () => {
    const wrong = validateAgentCard(fixture("invalid-wrong-types.json")).findings.find((f) => f.path === "/name");
    expect(wrong?.message).toBe("expected string, received number");
    const missing = validateAgentCard(fixture("invalid-v1-missing-tags.json")).findings[0];
    expect(missing?.message).toBe("required (array)");
  });

  it("refuses what is not a card object, and a claimed version it does not read", () => {
    for (const raw of [null, [], "card", 42]) expect(codesAt(validateAgentCard(raw).findings)).toEqual(["error card_not_object "]);
    const future = { ...fixture("v03-travel.json"), protocolVersion: "2.0" };
    expect(validateAgentCard(future)).toMatchObject({ version: "unknown", valid: false });
    expect(codesAt(validateAgentCard(future).findings)).toEqual(["error card_unknown_version /protocolVersion"]);
  });

  it("refuses a v0.3-style requirement in a v1.0 card rather than reading it as 'no credentials needed'", () => {
    const card = fixture("v1-weather.json");
    card.securityRequirements = [{ entra: ["api://weather/.default"] }];
    const result = validateAgentCard(card);
    expect(result.valid).toBe(false);
    expect(codesAt(result.findings)).toContain("error card_invalid_field /securityRequirements/0");
  });

  it("refuses requirements that name undeclared schemes, at card and skill level", () => {
    const card = fixture("v1-weather.json");
    card.securityRequirements = [{ schemes: { kerberos: {} } }];
    (card.skills as Record<string, unknown>[])[1]!.securityRequirements = [{ schemes: { saml: { list: ["x"] } } }];
    const result = validateAgentCard(card);
    expect(result.card).toBeUndefined();
    expect(codesAt(result.findings)).toEqual(["error card_unknown_security_scheme /securityRequirements/0", "error card_unknown_security_scheme /skills/1/securityRequirements/0"]);
  });

  it("refuses duplicate skill ids and a v1.0 scheme that sets two oneof members", () => {
    const card = fixture("v1-weather.json");
    (card.skills as Record<string, unknown>[])[1]!.id = "forecast";
    (card.securitySchemes as Record<string, unknown>).apiKey = {
      apiKeySecurityScheme: { location: "header", name: "X-Key" },
      mtlsSecurityScheme: {},
    };
    const result = validateAgentCard(card);
    expect(codesAt(result.findings)).toEqual(["error card_invalid_field /securitySchemes/apiKey"]);
    delete (card.securitySchemes as Record<string, Record<string, unknown>>).apiKey!.mtlsSecurityScheme;
    expect(codesAt(validateAgentCard(card).findings)).toEqual(["error card_duplicate_skill_id /skills/1/id"]);
  });

  it("leaves out interfaces with bindings the gateway does not speak, and refuses a card left with none", () => {
    const card = fixture("v1-weather.json");
    (card.supportedInterfaces as Record<string, unknown>[]).push({ url: "https://weather.contoso.example/slim", protocolBinding: "SLIMRPC", protocolVersion: "1.0" });
    const some = validateAgentCard(card);
    expect(some.valid).toBe(true);
    expect(some.card?.interfaces.map((i) => i.binding)).toEqual(["JSONRPC", "HTTP+JSON"]);
    expect(codesAt(some.findings)).toEqual(["warning card_unsupported_binding /supportedInterfaces/2/protocolBinding"]);

    card.supportedInterfaces = [{ url: "https://weather.contoso.example/slim", protocolBinding: "SLIMRPC", protocolVersion: "1.0" }];
    const none = validateAgentCard(card);
    expect(none.valid).toBe(false);
    expect(none.card).toBeUndefined();
    expect(codesAt(none.findings)).toContain("error card_no_usable_interface ");
  });

  it("bounds sizes: skills, interfaces, string lengths, nesting and the whole card", () => {
    const base = fixture("v1-weather.json");
    const skill = (base.skills as unknown[])[0] as Record<string, unknown>;
    const many = { ...base, skills: Array.from({ length: CARD_LIMITS.maxSkills + 1 }, (_, i) => ({ ...skill, id: `s${i}` })) };
    expect(codesAt(validateAgentCard(many).findings)).toEqual(["error card_limit_exceeded /skills"]);

    const iface = (base.supportedInterfaces as unknown[])[0];
    const wide = { ...base, supportedInterfaces: Array.from({ length: CARD_LIMITS.maxInterfaces + 1 }, () => iface) };
    expect(codesAt(validateAgentCard(wide).findings)).toEqual(["error card_limit_exceeded /supportedInterfaces"]);

    expect(codesAt(validateAgentCard({ ...base, name: "n".repeat(CARD_LIMITS.maxNameLength + 1) }).findings)).toEqual(["error card_limit_exceeded /name"]);

    let deep: Record<string, unknown> = {};
    const params = deep;
    for (let i = 0; i < CARD_LIMITS.maxDepth + 5; i++) deep = deep.next = {};
    const nested = clone(base);
    ((nested.capabilities as Record<string, unknown[]>).extensions![0] as Record<string, unknown>).params = params;
    expect(codesAt(validateAgentCard(nested).findings)).toEqual(["error card_too_deep "]);

    const huge = { ...base, description: "d".repeat(CARD_LIMITS.maxBytes) };
    expect(validateAgentCard(huge)).toEqual({ version: "unknown", valid: false, findings: [expect.objectContaining({ code: "card_too_large" })] });
    expect(codesAt(validateAgentCard(huge).findings)).toEqual(["error card_too_large "]);
  });
});

describe("validateAgentCard: warnings leave a card valid", () => {
  it("tolerates unknown fields, http URLs and the v0.3 fields a card written for both versions keeps", () => {
    const card = {
      ...fixture("v1-weather.json"),
      url: "https://weather.contoso.example/a2a/v1",
      protocolVersion: "0.3.0",
      preferredTransport: "JSONRPC",
      supportsAuthenticatedExtendedCard: true,
      "x-contoso-cost-center": "CC-1042",
      documentationUrl: "http://docs.contoso.example/agents/weather",
    };
    const result = validateAgentCard(card);
    expect(result).toMatchObject({ version: "1.0", valid: true });
    expect(result.card?.documentationUrl).toBe("http://docs.contoso.example/agents/weather");
    expect(codesAt(result.findings).sort()).toEqual(
      [
        "warning card_url_not_https /documentationUrl",
        "warning card_legacy_field /url",
        "warning card_legacy_field /protocolVersion",
        "warning card_legacy_field /preferredTransport",
        "warning card_legacy_field /supportsAuthenticatedExtendedCard",
        "warning card_unknown_field /x-contoso-cost-center",
      ].sort(),
    );
  });

  it("takes a v1.0 card's requirements from v0.3's `security` when it states them only there (as the spec's v1.0 sample does)", () => {
    const card = fixture("v1-weather.json");
    delete card.securityRequirements;
    card.security = [{ entra: ["api://weather/.default"] }];
    (card.capabilities as Record<string, unknown>).stateTransitionHistory = false;
    const result = validateAgentCard(card);
    expect(result.valid).toBe(true);
    expect(result.card?.securityRequirements).toEqual([{ entra: ["api://weather/.default"] }]);
    expect(codesAt(result.findings)).toEqual(["warning card_legacy_field /capabilities/stateTransitionHistory", "warning card_legacy_field /security"]);
  });

  it("reduces an interface's protocolVersion to Major.Minor, and warns about empty required lists", () => {
    const card = fixture("v1-weather.json");
    (card.supportedInterfaces as Record<string, unknown>[])[0]!.protocolVersion = "1.0.1";
    (card.skills as Record<string, unknown>[])[0]!.tags = [];
    card.defaultOutputModes = [];
    const result = validateAgentCard(card);
    expect(result.valid).toBe(true);
    expect(result.card?.interfaces[0]?.protocolVersion).toBe("1.0");
    expect(codesAt(result.findings)).toEqual([
      "warning card_protocol_version_format /supportedInterfaces/0/protocolVersion",
      "warning card_empty_list /skills/0/tags",
      "warning card_empty_list /defaultOutputModes",
    ]);
  });
});

/** Reorders every object's keys (reversed): the same JSON value, other bytes. */
function reordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reordered);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reordered(v)]));
}

describe("card signatures", () => {
  let es256: { privateKey: CryptoKey; publicJwk: JWK };
  let otherEs256: { privateKey: CryptoKey; publicJwk: JWK };
  let eddsa: { privateKey: CryptoKey; publicJwk: JWK };
  let keyServer: LoopbackServer;
  let jwksHits = 0;
  let safeFetch: SafeFetch;
  let origin = "";
  let jwksUrl = "";
  let keys: KeyResolver;

  beforeAll(async () => {
    const pair = async (alg: "ES256" | "EdDSA") => {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
      return { privateKey, publicJwk: await exportJWK(publicKey) };
    };
    [es256, otherEs256, eddsa] = await Promise.all([pair("ES256"), pair("ES256"), pair("EdDSA")]);
    keyServer = await listenLoopback((req: IncomingMessage, res: ServerResponse) => {
      if (req.url === "/jwks.json") {
        jwksHits++;
        res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(JSON.stringify({ keys: [{ ...es256.publicJwk, kid: "contoso-2026", use: "sig", alg: "ES256" }] }));
      } else res.writeHead(404).end();
    });
    origin = `http://127.0.0.1:${keyServer.port}`;
    jwksUrl = `${origin}/jwks.json`;
    safeFetch = createSafeFetch({ allowLoopback: true, maxBodyBytes: 64 * 1024, timeoutMs: 5_000 });
    keys = chainKeyResolvers(jwksUrlResolver(safeFetch, { allowed: [origin] }), embeddedJwkResolver);
  });
  afterAll(async () => {
    await safeFetch.close();
    await keyServer.close();
  });

  it("verifies ES256 with the key from jku (fetched once, then cached), and the card assesses as verified", async () => {
    const signed = await signAgentCard(fixture("v1-weather.json"), es256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: jwksUrl });
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(signed.signatures[0]!.protected))) as Record<string, unknown>;
    expect(header).toEqual({ alg: "ES256", typ: "JOSE", kid: "contoso-2026", jku: jwksUrl });

    const resolver = jwksUrlResolver(safeFetch, { allowed: [origin] });
    const before = jwksHits;
    expect(await verifyCardSignatures(signed, resolver)).toEqual([{ index: 0, kid: "contoso-2026", alg: "ES256", status: "valid", jku: jwksUrl, canonicalForm: "defaults-omitted" }]);
    await verifyCardSignatures(signed, resolver);
    expect(jwksHits - before).toBe(1);

    const assessment = await assessCard(signed, { keys });
    expect(assessment).toMatchObject({ version: "1.0", valid: true, trust: "verified", findings: [] });
    expect(assessment.card?.signed).toBe(true);
  });

  it("verifies EdDSA with the key the signature embeds, marked self-signed (integrity, not identity)", async () => {
    // embedJwk: true derives the public key from the (extractable) private one; only the public members travel.
    const signed = await signAgentCard(fixture("v03-travel.json"), eddsa.privateKey, { kid: "fabrikam-dev", alg: "EdDSA", embedJwk: true });
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(signed.signatures[0]!.protected))) as { jwk: JWK };
    expect(header.jwk).toEqual({ kty: "OKP", crv: "Ed25519", x: eddsa.publicJwk.x });
    expect(await verifyCardSignatures(signed, embeddedJwkResolver)).toEqual([{ index: 0, kid: "fabrikam-dev", alg: "EdDSA", status: "valid", selfSigned: true, canonicalForm: "as-published" }]);
    const assessment = await assessCard(signed, { keys });
    expect(assessment).toMatchObject({ version: "0.3", valid: true, trust: "self-signed" });
    expect(codesAt(assessment.findings)).toEqual(["warning card_signature_self_signed /signatures/0"]);
  });

  it("finds a card changed after signing invalid: findings recorded, no card", async () => {
    const signed = await signAgentCard(fixture("v1-weather.json"), es256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: jwksUrl });
    const tampered = clone(signed);
    (tampered.supportedInterfaces as Record<string, unknown>[])[0]!.url = "https://weather.attacker.example/a2a/v1";
    const [result] = await verifyCardSignatures(tampered, keys);
    expect(result).toMatchObject({ index: 0, status: "invalid", reason: expect.stringContaining("does not match the card") });

    const assessment = await assessCard(tampered, { keys });
    expect(assessment).toMatchObject({ valid: false, trust: "unverified" });
    expect(assessment.card).toBeUndefined();
    expect(codesAt(assessment.findings)).toEqual(["error card_signature_invalid /signatures/0"]);
  });

  it("is indifferent to key order and whitespace (JCS), but not to a signature by another key under the same kid", async () => {
    const signed = await signAgentCard(fixture("v1-weather.json"), es256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: jwksUrl });
    const shuffled = reordered(JSON.parse(JSON.stringify(signed, null, 4))) as Record<string, unknown>;
    expect(Object.keys(shuffled)[0]).toBe("signatures");
    expect((await verifyCardSignatures(shuffled, keys))[0]?.status).toBe("valid");

    const forged = await signAgentCard(fixture("v1-weather.json"), otherEs256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: jwksUrl });
    expect((await verifyCardSignatures(forged, keys))[0]?.status).toBe("invalid");
  });

  it("refuses alg none and HMAC signatures, even a correct HMAC", async () => {
    const card = fixture("v1-weather.json");
    const none = { ...card, signatures: [{ protected: base64url.encode(JSON.stringify({ alg: "none", kid: "k" })), signature: "" }] };
    const garbled = { ...card, signatures: [{ protected: base64url.encode("not json"), signature: "c2ln" }] };
    expect(await verifyCardSignatures(garbled, keys)).toEqual([{ index: 0, alg: "unknown", status: "invalid", reason: "the protected header is not base64url-encoded JSON" }]);
    // A genuine HS256 MAC over the card's canonical bytes: it verifies as a MAC, and proves nothing about who made it.
    const mac = await new FlattenedSign(new TextEncoder().encode(canonicalize(card)!)).setProtectedHeader({ alg: "HS256", kid: "k" }).sign(new Uint8Array(32).fill(7));
    const hmac = { ...card, signatures: [{ protected: mac.protected!, signature: mac.signature }] };

    expect(await verifyCardSignatures(none, keys)).toEqual([{ index: 0, kid: "k", alg: "none", status: "invalid", reason: expect.stringContaining("only asymmetric") }]);
    expect(await verifyCardSignatures(hmac, keys)).toEqual([{ index: 0, kid: "k", alg: "HS256", status: "invalid", reason: expect.stringContaining("only asymmetric") }]);
    expect(codesAt((await assessCard(hmac, { keys })).findings)).toEqual(["error card_signature_invalid /signatures/0"]);
    await expect(signAgentCard(card, es256.privateKey, { kid: "k", alg: "HS256" as "ES256" })).rejects.toThrow(TypeError);
  });

  it("reports an unknown kid, a jku outside the allowed origins and an unreachable jku as unverifiable (a warning, the card stays valid)", async () => {
    const card = fixture("v1-weather.json");
    const unknownKid = await signAgentCard(card, es256.privateKey, { kid: "retired-2019", alg: "ES256", jku: jwksUrl });
    const [result] = await verifyCardSignatures(unknownKid, jwksUrlResolver(safeFetch, { allowed: [origin] }));
    expect(result).toMatchObject({ index: 0, kid: "retired-2019", status: "unverifiable", reason: expect.stringContaining("no ES256 key with kid retired-2019") });

    const assessment = await assessCard(unknownKid, { keys });
    expect(assessment).toMatchObject({ valid: true, trust: "unverified" });
    expect(codesAt(assessment.findings)).toEqual(["warning card_signature_unverifiable /signatures/0"]);

    const elsewhere = await signAgentCard(card, es256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: jwksUrl });
    const [strange] = await verifyCardSignatures(elsewhere, jwksUrlResolver(safeFetch, { allowed: ["https://keys.contoso.example"] }));
    expect(strange).toMatchObject({ status: "unverifiable", reason: expect.stringContaining("not one of the allowed origins") });
    const [plainHttp] = await verifyCardSignatures(elsewhere, jwksUrlResolver(safeFetch));
    expect(plainHttp).toMatchObject({ status: "unverifiable", reason: "jku must use https" });

    const gone = await signAgentCard(card, es256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: `${origin}/missing.json` });
    const [missing] = await verifyCardSignatures(gone, jwksUrlResolver(safeFetch, { allowed: [origin] }));
    expect(missing).toMatchObject({ status: "unverifiable", reason: expect.stringContaining("HTTP 404") });
  });

  it("accepts a card with or without its ProtoJSON defaults (§8.4.1), but not with an added empty requirement, which would mean 'no credentials'", async () => {
    // The fixture has one default: extensions[0].required false, which §8.4.1 drops before signing.
    const signed = await signAgentCard(fixture("v1-weather.json"), es256.privateKey, { kid: "contoso-2026", alg: "ES256", jku: jwksUrl });
    expect((await verifyCardSignatures(signed, keys))[0]).toMatchObject({ status: "valid", canonicalForm: "defaults-omitted" });

    const moreDefaults = clone(signed);
    (moreDefaults.supportedInterfaces as Record<string, unknown>[])[0]!.tenant = "";
    (moreDefaults.skills as Record<string, unknown>[])[1]!.examples = [];
    delete ((moreDefaults.capabilities as Record<string, unknown[]>).extensions![0] as Record<string, unknown>).required;
    expect((await verifyCardSignatures(moreDefaults, keys))[0]).toMatchObject({ status: "valid", canonicalForm: "defaults-omitted" });

    const opened = clone(signed);
    (opened.securityRequirements as unknown[]).push({});
    expect((await verifyCardSignatures(opened, keys))[0]?.status).toBe("invalid");
    const noted = { ...signed, "x-note": "" };
    expect((await verifyCardSignatures(noted, keys))[0]?.status).toBe("invalid");
  });

  it("checks each of several signatures, from a trusted key store too", async () => {
    const once = await signAgentCard(fixture("v03-travel.json"), es256.privateKey, { kid: "fabrikam-2026", alg: "ES256" });
    const twice = await signAgentCard(once, eddsa.privateKey, { kid: "unknown", alg: "EdDSA" });
    const store = jwksResolver({ keys: [{ ...es256.publicJwk, kid: "fabrikam-2026" }] });
    const results = await verifyCardSignatures(twice, store);
    expect(results.map((r) => [r.index, r.kid, r.alg, r.status])).toEqual([
      [0, "fabrikam-2026", "ES256", "valid"],
      [1, "unknown", "EdDSA", "unverifiable"],
    ]);
    expect((await assessCard(twice, { keys: store })).trust).toBe("verified");
  });
});

describe("fetchAgentCard", () => {
  const card = fixture("v1-weather.json");
  const body = JSON.stringify(card);
  let server: LoopbackServer;
  let legacyOnly: LoopbackServer;
  let broken: LoopbackServer;
  let empty: LoopbackServer;
  let requests: { url: string; accept?: string; version?: string }[] = [];
  let fetch: SafeFetch;
  let roomyFetch: SafeFetch;
  const at = (s: LoopbackServer, path = "") => `http://127.0.0.1:${s.port}${path}`;

  const routes: Record<string, (res: ServerResponse) => void> = {
    "/.well-known/agent-card.json": (res) => res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(body),
    "/cards/weather": (res) => res.writeHead(200, { "content-type": "application/json" }).end(body),
    "/declared-big": (res) => res.writeHead(200, { "content-type": "application/json", "content-length": String(CARD_LIMITS.maxBytes + 1) }).end(),
    "/streamed-big": (res) => {
      res.writeHead(200, { "content-type": "application/json" });
      for (let i = 0; i < 20; i++) res.write(" ".repeat(16 * 1024));
      res.end("{}");
    },
    "/html": (res) => res.writeHead(200, { "content-type": "text/html" }).end("<html>not a card</html>"),
    "/broken-json": (res) => res.writeHead(200, { "content-type": "application/json" }).end("{ not json"),
    "/moved": (res) => res.writeHead(302, { location: "https://elsewhere.example/.well-known/agent-card.json" }).end(),
  };

  beforeAll(async () => {
    server = await listenLoopback((req, res) => {
      requests.push({ url: req.url ?? "", accept: req.headers.accept, version: req.headers["a2a-version"] as string | undefined });
      const route = routes[req.url ?? ""];
      if (route) route(res);
      else res.writeHead(404).end();
    });
    legacyOnly = await listenLoopback((req, res) => {
      requests.push({ url: req.url ?? "" });
      if (req.url === "/.well-known/agent.json") res.writeHead(200, { "content-type": "application/json" }).end(body);
      else res.writeHead(404).end();
    });
    broken = await listenLoopback((req, res) => {
      requests.push({ url: req.url ?? "" });
      if (req.url === "/.well-known/agent.json") res.writeHead(200, { "content-type": "application/json" }).end(body);
      else res.writeHead(500).end();
    });
    empty = await listenLoopback((req, res) => {
      requests.push({ url: req.url ?? "" });
      res.writeHead(404).end();
    });
    fetch = createSafeFetch({ allowLoopback: true, maxBodyBytes: CARD_LIMITS.maxBytes, timeoutMs: 5_000 });
    // Reads past the card limit, so the module's own bound is the one that stops the body.
    roomyFetch = createSafeFetch({ allowLoopback: true, maxBodyBytes: 4 * CARD_LIMITS.maxBytes, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await Promise.all([fetch.close(), roomyFetch.close(), server.close(), legacyOnly.close(), broken.close(), empty.close()]);
  });

  const failure = async (promise: Promise<unknown>): Promise<CardFetchError> => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CardFetchError);
    return error as CardFetchError;
  };

  it("fetches the well-known card of an origin, asking for JSON and naming the A2A version", async () => {
    requests = [];
    const result = await fetchAgentCard(at(server), fetch);
    expect(result).toEqual({ url: at(server, "/.well-known/agent-card.json"), raw: card });
    expect(requests).toEqual([{ url: "/.well-known/agent-card.json", accept: "application/json", version: "1.0" }]);
  });

  it("takes any other URL as the card's own", async () => {
    expect(await fetchAgentCard(at(server, "/cards/weather#top"), fetch)).toEqual({ url: at(server, "/cards/weather"), raw: card });
  });

  it("falls back to v0.2's /.well-known/agent.json on 404, and only on 404", async () => {
    requests = [];
    expect(await fetchAgentCard(at(legacyOnly), fetch)).toEqual({ url: at(legacyOnly, "/.well-known/agent.json"), raw: card });
    expect(requests.map((r) => r.url)).toEqual(["/.well-known/agent-card.json", "/.well-known/agent.json"]);

    requests = [];
    const error = await failure(fetchAgentCard(at(broken), fetch));
    expect({ code: error.code, status: error.status }).toEqual({ code: "card_fetch_failed", status: 500 });
    expect(requests.map((r) => r.url)).toEqual(["/.well-known/agent-card.json"]);
  });

  it("reports card_not_found when neither well-known path has a card, or the card URL answers 404", async () => {
    requests = [];
    const error = await failure(fetchAgentCard(at(empty), fetch));
    expect({ code: error.code, url: error.url }).toEqual({ code: "card_not_found", url: at(empty, "/.well-known/agent.json") });
    expect(requests.map((r) => r.url)).toEqual(["/.well-known/agent-card.json", "/.well-known/agent.json"]);
    expect((await failure(fetchAgentCard(at(server, "/cards/none.json"), fetch))).code).toBe("card_not_found");
  });

  it("refuses a card over the size limit, declared or streamed, whichever side stops it", async () => {
    expect((await failure(fetchAgentCard(at(server, "/declared-big"), roomyFetch))).code).toBe("card_too_large");
    expect((await failure(fetchAgentCard(at(server, "/streamed-big"), roomyFetch))).code).toBe("card_too_large");
    const small = createSafeFetch({ allowLoopback: true, maxBodyBytes: 1_000, timeoutMs: 5_000 });
    try {
      expect((await failure(fetchAgentCard(at(server, "/streamed-big"), small))).code).toBe("card_too_large");
    } finally {
      await small.close();
    }
  });

  it("refuses what is not JSON", async () => {
    expect((await failure(fetchAgentCard(at(server, "/html"), fetch))).code).toBe("card_not_json");
    expect((await failure(fetchAgentCard(at(server, "/broken-json"), fetch))).code).toBe("card_not_json");
  });

  it("does not follow a redirect, and says where it led", async () => {
    const error = await failure(fetchAgentCard(at(server, "/moved"), fetch));
    expect({ code: error.code, status: error.status, location: error.details.location }).toEqual({
      code: "card_redirected",
      status: 302,
      location: "https://elsewhere.example/.well-known/agent-card.json",
    });
  });

  it("maps the safe fetch's refusal of a private address, and refuses URLs that are not http(s)", async () => {
    const deployed = createSafeFetch({ allowLoopback: false, maxBodyBytes: CARD_LIMITS.maxBytes, timeoutMs: 5_000 });
    try {
      expect((await failure(fetchAgentCard(at(server), deployed))).code).toBe("card_blocked_address");
    } finally {
      await deployed.close();
    }
    expect((await failure(fetchAgentCard("file:///etc/passwd", fetch))).code).toBe("card_fetch_failed");
    expect((await failure(fetchAgentCard("https://user:pw@agent.example", fetch))).code).toBe("card_fetch_failed");
  });
});
