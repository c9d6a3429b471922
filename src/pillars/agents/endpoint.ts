import { AMBIGUOUS_PATH } from "../../policy/compile/agent-card.js";
import { refuseUpstream } from "../tools/upstream.js";

const SERVABLE_URL = /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/;
/** Dot segments: a URL parser resolves them, so the path checked is not the path written. */
const DOT_SEGMENT = /\/\.\.?(\/|$)/;
/** The compiler's limit on an agent's endpoint (PolicyAgent.endpoint): a longer one would fail the whole project's input. */
export const MAX_ENDPOINT_LENGTH = 2000;

/**
 * Why the gateway may not forward to `url`, or undefined: a service URL takes no query or fragment, no
 * path that reads two ways, and — as for MCP upstreams — no private, link-local or (outside local mode)
 * loopback address and no plain http.
 */
export function refuseAgentEndpoint(url: string, allowLoopback: boolean): string | undefined {
  const trimmed = url.replace(/\/+$/, "");
  if (trimmed.length > MAX_ENDPOINT_LENGTH) return `must be at most ${MAX_ENDPOINT_LENGTH} characters`;
  if (!SERVABLE_URL.test(trimmed)) return "must be http(s)://host[:port]/path, without query, fragment or user";
  const path = trimmed.replace(/^https?:\/\/[^/]*/, "");
  // The card's own check (agent-card.ts) for encoded slashes, dots and backslashes, and dot segments besides.
  if (AMBIGUOUS_PATH.test(path) || DOT_SEGMENT.test(path)) return "must not hold encoded slashes, dots or backslashes, or dot segments";
  return refuseUpstream(trimmed, allowLoopback);
}

/** Where a card says the agent is served: its first JSON-RPC or HTTP+JSON interface. */
export function endpointOfCard(card: Record<string, unknown>): { url: string; protocol: "a2a" } | undefined {
  const interfaces = (card.interfaces ?? []) as { url: string; binding: string }[];
  const usable = interfaces.find((i) => i.binding === "JSONRPC") ?? interfaces.find((i) => i.binding === "HTTP+JSON");
  return usable ? { url: usable.url, protocol: "a2a" } : undefined;
}
