/**
 * The AgentCard an agent's API serves at `GET <API path>/.well-known/agent-card.json`: the card the
 * registry recorded (as received, in its own A2A version), rewritten so that a client that reads it calls
 * the agent through the gateway and nowhere else (docs/adr/015-agents-at-the-gateway.md, "The card"):
 *
 * - every interface URL under the API's service URL becomes the same path under the API at the gateway;
 *   interfaces elsewhere (another host, another path) are dropped, since calls there would bypass the
 *   gateway. If none is left, the agent's endpoint at the gateway is listed with the card's first binding;
 * - the gateway's key joins every security requirement (card-level and per skill) as an API-key scheme in
 *   the `api-key` header: a caller needs it on top of whatever the agent itself asks for;
 * - signatures are dropped: they sign the card as the agent published it, which this no longer is.
 *
 * URLs are written against {@link AGENT_CARD_PLACEHOLDER}; the gateway replaces it with its own URL for the
 * API as the caller addressed it (the host name of a custom domain included), so the compiler needs no host.
 */
import { AGENT_CARD_PLACEHOLDER } from "../expressions.js";
import { SUBSCRIPTION_KEY_HEADER } from "../names.js";

type Json = Record<string, unknown>;
const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** The security scheme's name in the served card: ours, unless the card already uses it. */
function schemeName(schemes: unknown): string {
  const taken = isRecord(schemes) ? schemes : {};
  let name = "aigovGatewayKey";
  for (let n = 2; name in taken; n++) name = `aigovGatewayKey${n}`;
  return name;
}

const KEY_DESCRIPTION = "The virtual key for this agent at the gateway (aigov).";

/** The served card's JSON (UTF-8 text), URLs against the placeholder; `service` is the API's service URL (agents.ts serviceUrlOf). */
export function servedAgentCard(version: "0.3" | "1.0", document: Json, endpoint: string, service: string): string {
  const atGateway = (url: unknown): string | undefined => {
    if (typeof url !== "string") return undefined;
    const trimmed = url.replace(/\/+$/, "");
    if (trimmed !== service && !trimmed.startsWith(`${service}/`)) return undefined;
    return `${AGENT_CARD_PLACEHOLDER}${trimmed.slice(service.length)}`;
  };
  const endpointAtGateway = atGateway(endpoint)!;
  const { signatures: _signed, ...card } = structuredClone(document);
  const scheme = schemeName(card.securitySchemes);

  if (version === "0.3") {
    card.url = atGateway(card.url) ?? endpointAtGateway;
    if (Array.isArray(card.additionalInterfaces)) {
      card.additionalInterfaces = card.additionalInterfaces.flatMap((i: unknown) => {
        const url = isRecord(i) ? atGateway(i.url) : undefined;
        return url ? [{ ...(i as Json), url }] : [];
      });
    }
    card.securitySchemes = { ...(isRecord(card.securitySchemes) ? card.securitySchemes : {}), [scheme]: { type: "apiKey", in: "header", name: SUBSCRIPTION_KEY_HEADER, description: KEY_DESCRIPTION } };
    const withKey = (reqs: unknown) => (Array.isArray(reqs) && reqs.length ? reqs.map((r: unknown) => ({ ...(isRecord(r) ? r : {}), [scheme]: [] })) : [{ [scheme]: [] }]);
    card.security = withKey(card.security);
    if (Array.isArray(card.skills)) card.skills = card.skills.map((s: unknown) => (isRecord(s) && Array.isArray(s.security) ? { ...s, security: withKey(s.security) } : s));
    return JSON.stringify(card);
  }

  const interfaces = Array.isArray(card.supportedInterfaces) ? (card.supportedInterfaces as unknown[]).filter(isRecord) : [];
  const kept = interfaces.flatMap((i) => {
    const url = atGateway(i.url);
    return url ? [{ ...i, url }] : [];
  });
  const first = interfaces[0];
  card.supportedInterfaces = kept.length ? kept : [{ url: endpointAtGateway, protocolBinding: first?.protocolBinding ?? "JSONRPC", ...(first?.protocolVersion ? { protocolVersion: first.protocolVersion } : {}) }];
  card.securitySchemes = {
    ...(isRecord(card.securitySchemes) ? card.securitySchemes : {}),
    [scheme]: { apiKeySecurityScheme: { location: "header", name: SUBSCRIPTION_KEY_HEADER, description: KEY_DESCRIPTION } },
  };
  const withKey = (reqs: unknown) =>
    Array.isArray(reqs) && reqs.length
      ? reqs.map((r: unknown) => {
          const schemes = isRecord(r) && isRecord(r.schemes) ? r.schemes : {};
          return { ...(isRecord(r) ? r : {}), schemes: { ...schemes, [scheme]: { list: [] } } };
        })
      : [{ schemes: { [scheme]: { list: [] } } }];
  let requirements = card.securityRequirements;
  // A card written for both versions may state its requirements only in v0.3's `security` (the registry
  // reads them from there then): both forms are served, each with the key.
  if (requirements === undefined && Array.isArray(card.security)) {
    const legacy = card.security.map((r: unknown) => (isRecord(r) ? r : {}));
    requirements = legacy.map((r) => ({ schemes: Object.fromEntries(Object.entries(r).map(([name, scopes]) => [name, { list: Array.isArray(scopes) ? scopes : [] }])) }));
    card.security = legacy.length ? legacy.map((r) => ({ ...r, [scheme]: [] })) : [{ [scheme]: [] }];
  }
  card.securityRequirements = withKey(requirements);
  if (Array.isArray(card.skills)) card.skills = card.skills.map((s: unknown) => (isRecord(s) && Array.isArray(s.securityRequirements) ? { ...s, securityRequirements: withKey(s.securityRequirements) } : s));
  return JSON.stringify(card);
}
