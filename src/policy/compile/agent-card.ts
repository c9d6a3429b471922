/**
 * The AgentCard an agent's API serves at `GET <API path>/.well-known/agent-card.json`: the card the
 * registry recorded (as received, in its own A2A version), rewritten so that a client that reads it calls
 * the agent through the gateway and nowhere else (docs/adr/015-agents-and-cloud-sync.md, "The card"):
 *
 * - every interface URL under the API's service URL becomes the same path under the API at the gateway;
 *   interfaces elsewhere (another origin, another path, a path that only gets there through `..`, an
 *   encoded slash, dot or backslash) are dropped, since calls there would bypass the gateway or land on
 *   another API of it. If none is left, the agent's endpoint at the gateway is listed with the card's
 *   first binding. A card written for both versions gets both versions' fields rewritten (v0.3's `url`
 *   and `additionalInterfaces`, v1.0's `supportedInterfaces`), whichever version it was recorded as;
 * - security: the gateway removes `Authorization`, the key header and the key query parameter before
 *   forwarding, and ends TLS, so schemes that ride on them (HTTP auth, OAuth 2, OpenID Connect, mutual TLS,
 *   an API key in those places) cannot reach the agent through it. They are left out, with every
 *   requirement that needs one; the gateway's key (`api-key` header) joins each requirement that is left
 *   (card-level and per skill, in both the v1.0 and the v0.3 form a card carries), or is the only one;
 * - the extended card is not offered (in either version's form): it would come from the agent itself, unrewritten;
 * - signatures are dropped: they sign the card as the agent published it, which this no longer is.
 *
 * URLs are written against {@link AGENT_CARD_PLACEHOLDER}; the gateway replaces it with its own URL for the
 * API as the caller addressed it (the host name of a custom domain included), so the compiler needs no host.
 */
import { AGENT_CARD_PLACEHOLDER } from "../expressions.js";
import { SUBSCRIPTION_KEY_HEADER, SUBSCRIPTION_KEY_QUERY } from "../names.js";
import { PolicyCompileError } from "../errors.js";

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

/**
 * Encoded slashes, dots and backslashes: WHATWG URL parsing leaves `%2f` and `%5c` alone, and a server
 * (or the gateway) that decodes them sees other segments than the check did. A URL with any is dropped.
 */
export const AMBIGUOUS_PATH = /%2f|%5c|%2e|\\/i;

/**
 * `url` at the gateway (against the placeholder) when it is under the service URL: same origin (as URL
 * parsing normalises it: host case, default port), and a path that, with its dot segments resolved, is the
 * service path or below it on a segment boundary. Undefined otherwise.
 */
function atGatewayOf(service: URL, placeholder: string): (url: unknown) => string | undefined {
  const servicePath = service.pathname.replace(/\/+$/, "");
  return (url) => {
    if (typeof url !== "string" || AMBIGUOUS_PATH.test(url.replace(/[?#].*$/s, ""))) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    if (parsed.origin !== service.origin || parsed.username !== "" || parsed.password !== "") return undefined;
    const path = parsed.pathname.replace(/\/+$/, "");
    if (path !== servicePath && !path.startsWith(`${servicePath}/`)) return undefined;
    return `${placeholder}${path.slice(servicePath.length)}${parsed.search}`;
  };
}

/** Whether a caller can satisfy `scheme` through the gateway (see the module comment); v1.0 or v0.3 shape. */
function passesGateway(scheme: unknown): boolean {
  if (!isRecord(scheme)) return false;
  const strippedKey = (where: unknown, name: unknown) => {
    const n = typeof name === "string" ? name.toLowerCase() : "";
    return where === "header" ? n === "authorization" || n === SUBSCRIPTION_KEY_HEADER : where === "query" ? n === SUBSCRIPTION_KEY_QUERY : false;
  };
  if (isRecord(scheme.apiKeySecurityScheme)) return !strippedKey(scheme.apiKeySecurityScheme.location, scheme.apiKeySecurityScheme.name);
  if (scheme.type === "apiKey") return !strippedKey(scheme.in, scheme.name);
  return false;
}

/** The served card's JSON (UTF-8 text), URLs against the placeholder; `service` is the API's service URL (agents.ts serviceUrlOf). */
export function servedAgentCard(version: "0.3" | "1.0", document: Json, endpoint: string, service: string): string {
  // The gateway replaces every occurrence of the placeholder. One the card itself contains (a documentation
  // link, say) must stay as written: its URLs are made against a stand-in the card does not contain, its
  // own occurrences are escaped (the same JSON string, other text), and the stand-in becomes the placeholder.
  const original = JSON.stringify(document);
  const PLACEHOLDER_HOST = new URL(AGENT_CARD_PLACEHOLDER).host;
  const collides = original.toLowerCase().includes(PLACEHOLDER_HOST);
  let standIn = AGENT_CARD_PLACEHOLDER;
  if (collides) {
    let n = 1;
    while (original.toLowerCase().includes(`stand-in-${n}.aigov.invalid`)) n++;
    standIn = `https://stand-in-${n}.aigov.invalid`;
  }
  const finish = (card: Json): string => {
    const text = JSON.stringify(card);
    if (!collides) return text;
    const escaped = text.replace(new RegExp(PLACEHOLDER_HOST.replaceAll(".", "\\."), "gi"), (host) => host.replace(".", "\\u002e"));
    return escaped.replaceAll(standIn, AGENT_CARD_PLACEHOLDER);
  };
  const atGateway = atGatewayOf(new URL(service), standIn);
  const endpointAtGateway = atGateway(endpoint);
  // The service URL is the endpoint's parent (serviceUrlOf), so the endpoint is always under it.
  // A compile error of this project (set aside by a publish, never the tenant's failure), not a crash.
  if (endpointAtGateway === undefined) throw new PolicyCompileError("invalidInput", `the agent endpoint ${endpoint} is not under its service URL ${service}`);
  const { signatures: _signed, ...card } = structuredClone(document);

  const ownSchemes = isRecord(card.securitySchemes) ? card.securitySchemes : {};
  const usable = new Set(Object.keys(ownSchemes).filter((name) => passesGateway(ownSchemes[name])));
  const scheme = schemeName(ownSchemes);
  const kept = Object.fromEntries(Object.entries(ownSchemes).filter(([name]) => usable.has(name)));
  card.securitySchemes = {
    ...kept,
    [scheme]:
      version === "0.3"
        ? { type: "apiKey", in: "header", name: SUBSCRIPTION_KEY_HEADER, description: KEY_DESCRIPTION }
        : { apiKeySecurityScheme: { location: "header", name: SUBSCRIPTION_KEY_HEADER, description: KEY_DESCRIPTION } },
  };

  /** v0.3's form (`security`): a list of { scheme: scopes }; the requirements that can be met, each with the key. */
  const legacyWithKey = (reqs: unknown) => {
    const met = (Array.isArray(reqs) ? reqs : []).filter((r): r is Json => isRecord(r) && Object.keys(r).every((n) => usable.has(n)));
    return met.length ? met.map((r) => ({ ...r, [scheme]: [] })) : [{ [scheme]: [] }];
  };
  /** v1.0's form (`securityRequirements`): a list of { schemes: { scheme: { list } } }; the same. */
  const requirementsWithKey = (reqs: unknown) => {
    const met = (Array.isArray(reqs) ? reqs : []).filter((r): r is Json => isRecord(r) && (!isRecord(r.schemes) || Object.keys(r.schemes).every((n) => usable.has(n))));
    return met.length ? met.map((r) => ({ ...r, schemes: { ...(isRecord(r.schemes) ? r.schemes : {}), [scheme]: { list: [] } } })) : [{ schemes: { [scheme]: { list: [] } } }];
  };
  const secured = (holder: Json, primary: boolean): Json => {
    const out = { ...holder };
    if (version === "0.3") {
      if (primary || Array.isArray(out.security)) out.security = legacyWithKey(out.security);
      if (Array.isArray(out.securityRequirements)) out.securityRequirements = requirementsWithKey(out.securityRequirements);
      return out;
    }
    // A card written for both versions may state its requirements only in v0.3's `security` (the registry
    // reads them from there then): both forms are served, each with the key.
    const fromLegacy =
      out.securityRequirements === undefined && Array.isArray(out.security)
        ? out.security.filter(isRecord).map((r) => ({ schemes: Object.fromEntries(Object.entries(r).map(([name, scopes]) => [name, { list: Array.isArray(scopes) ? scopes : [] }])) }))
        : out.securityRequirements;
    if (primary || fromLegacy !== undefined) out.securityRequirements = requirementsWithKey(fromLegacy);
    if (Array.isArray(out.security)) out.security = legacyWithKey(out.security);
    return out;
  };
  Object.assign(card, secured(card, true));
  if (Array.isArray(card.skills)) card.skills = card.skills.map((s: unknown) => (isRecord(s) ? secured(s, false) : s));

  // Interfaces: the card's own version's fields, and the other version's where a card written for both
  // versions carries them (a client of either version reads its own): none may lead past the gateway.
  const legacyInterfaces = () => {
    if (version === "0.3" || card.url !== undefined) card.url = atGateway(card.url) ?? endpointAtGateway;
    if (Array.isArray(card.additionalInterfaces)) {
      card.additionalInterfaces = card.additionalInterfaces.flatMap((i: unknown) => {
        const url = isRecord(i) ? atGateway(i.url) : undefined;
        return url ? [{ ...(i as Json), url }] : [];
      });
    }
  };
  const currentInterfaces = () => {
    const interfaces = Array.isArray(card.supportedInterfaces) ? (card.supportedInterfaces as unknown[]).filter(isRecord) : [];
    const keptInterfaces = interfaces.flatMap((i) => {
      const url = atGateway(i.url);
      return url ? [{ ...i, url }] : [];
    });
    const first = interfaces[0];
    card.supportedInterfaces = keptInterfaces.length
      ? keptInterfaces
      : [{ url: endpointAtGateway, protocolBinding: first?.protocolBinding ?? "JSONRPC", ...(first?.protocolVersion ? { protocolVersion: first.protocolVersion } : {}) }];
  };
  if (version === "0.3" || card.url !== undefined || card.additionalInterfaces !== undefined) legacyInterfaces();
  if (version === "1.0" || card.supportedInterfaces !== undefined) currentInterfaces();
  // No extended card, in either version's form.
  delete card.supportsAuthenticatedExtendedCard;
  if (isRecord(card.capabilities) && card.capabilities.extendedAgentCard !== undefined) card.capabilities = { ...card.capabilities, extendedAgentCard: false };
  return finish(card);
}
