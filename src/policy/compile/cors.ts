/**
 * Browser access (CORS) to the APIs aigov publishes, for the origins the platform names in
 * `browserOrigins` (the portal's, whose playgrounds call the gateway with a developer's key).
 *
 * APIM's `cors` policy (docs/gateway.md, "Browser access"): at API scope it answers a preflight itself
 * when the API has no OPTIONS operation (ours never do), evaluating only the `cors` policies of the
 * request's effective inbound, so the subscription key a preflight never carries is not asked for; it
 * must come first in inbound, so it is written before `<base/>`. `terminate-unmatched-request="false"`:
 * a request from another origin (or with no Origin, as the CLI and SDKs send) goes on as if there were
 * no policy, only without CORS headers, so the browser keeps it from the page. No credentials mode:
 * keys travel in a header, never in cookies. Nothing here widens what a key may do.
 */
import { DATA_CLASS_HEADER, SUBSCRIPTION_KEY_HEADER } from "../names.js";
import { el, textEl, type ScopeRef, type XNode } from "../xml.js";
import { byCodePoint, type Collector } from "./collector.js";

/** What a page may send and read, per kind of API. */
export type BrowserApiKind = "models" | "mcp" | "agent" | "rest";

/** Request headers a page may set on every API: the key, the body's type, what it accepts, the data class. */
const REQUEST_HEADERS = [SUBSCRIPTION_KEY_HEADER, "content-type", "accept", DATA_CLASS_HEADER];
/** The MCP transport's own headers (streamable HTTP: session, protocol version, stream resumption). */
const MCP_REQUEST_HEADERS = ["mcp-session-id", "mcp-protocol-version", "last-event-id"];

/** Every name an `llm-token-limit` may report remaining tokens under (limits.ts names them). */
const TOKEN_HEADERS = ["minute", "quota"].flatMap((window) =>
  ["key", "project", "tier"].flatMap((per) => [`x-aigov-tokens-remaining-${window}-${per}`, `x-aigov-tokens-remaining-${window}-${per}-model`]),
);
/** Response headers that carry governance, which a page may read. */
const GOVERNANCE_HEADERS = ["Retry-After", "Sunset", "Deprecation"];

export interface BrowserAccessOptions {
  kind: BrowserApiKind;
  /** The methods the API's operations take (MCP servers: GET, POST, DELETE). */
  methods: readonly string[];
  /** Request headers the scope's settings ask callers to send (headers.required, correlationId). */
  extraRequestHeaders?: readonly string[];
  /** Response headers the scope's settings add (the echoed correlation id). */
  extraResponseHeaders?: readonly string[];
  scope: ScopeRef;
}

/** The `cors` statement that goes first in an API's inbound section, or nothing when no origin is named. */
export function browserAccess(c: Collector, o: BrowserAccessOptions): XNode[] {
  const origins = [...new Set(c.input.browserOrigins)].sort(byCodePoint);
  if (origins.length === 0 || o.methods.length === 0) return [];
  const lower = (hs: readonly string[]) => [...new Set(hs.map((h) => h.toLowerCase()))].sort(byCodePoint);
  const requestHeaders = lower([...REQUEST_HEADERS, ...(o.kind === "mcp" ? MCP_REQUEST_HEADERS : []), ...(o.extraRequestHeaders ?? [])]);
  const exposed = [
    ...(o.kind === "models" ? TOKEN_HEADERS : []),
    ...GOVERNANCE_HEADERS,
    ...(o.kind === "mcp" ? ["mcp-session-id"] : []),
    ...(o.extraResponseHeaders ?? []),
  ];
  const exposeHeaders = lower(exposed);
  const methods = [...new Set(o.methods.map((m) => m.toUpperCase()))].sort(byCodePoint);
  return [
    el(
      "cors",
      { "allow-credentials": false, "terminate-unmatched-request": false },
      [
        el("allowed-origins", undefined, origins.map((origin) => textEl("origin", origin))),
        // Browsers cache a preflight for at most 2 hours (Chromium) or 24 (Firefox); 10 minutes keeps a changed list current.
        el("allowed-methods", { "preflight-result-max-age": 600 }, methods.map((m) => textEl("method", m))),
        el("allowed-headers", undefined, requestHeaders.map((h) => textEl("header", h))),
        el("expose-headers", undefined, exposeHeaders.map((h) => textEl("header", h))),
      ],
      { control: "structure", scope: o.scope, note: `browser access for ${origins.join(", ")} (CORS)` },
    ),
  ];
}
