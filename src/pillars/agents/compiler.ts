/**
 * The agent registry as the policy compiler's input: the agents the gateway serves. An agent is served
 * when a person made it active (or deprecated it, until retirement), it is enabled, it has an endpoint
 * (its own, else its card's first JSON-RPC or HTTP+JSON interface, else the one its cloud reports), and
 * its source still runs it. Everything else is kept in the registry and absent at the gateway.
 */
import { MAX_PROJECT_AGENTS, type PolicyAgent } from "../../policy/input.js";
import type { AgentDoc } from "./documents.js";
import { endpointOfCard, refuseAgentEndpoint } from "./endpoint.js";

/** Where the gateway forwards the agent's calls: its own endpoint, else its card's, else its cloud's — when that may be served. */
export function servedEndpoint(doc: AgentDoc, allowLoopback: boolean): string | undefined {
  const url = doc.endpoint?.url ?? (doc.card?.card ? endpointOfCard(doc.card.card)?.url : undefined) ?? doc.source?.endpoint;
  return url && refuseAgentEndpoint(url, allowLoopback) === undefined ? url.replace(/\/+$/, "") : undefined;
}

/** How the gateway serves the agent, or undefined: a person made it active or deprecated, it is enabled, its source still runs it, and it has an endpoint the gateway may forward to. */
function serving(d: AgentDoc, allowLoopback: boolean): { status: "active" | "deprecated"; endpoint: string } | undefined {
  const status = d.lifecycle.state;
  if ((status !== "active" && status !== "deprecated") || !d.enabled || d.sync?.state === "removedAtSource") return undefined;
  const endpoint = servedEndpoint(d, allowLoopback);
  return endpoint ? { status, endpoint } : undefined;
}

/** Whether the gateway serves the agent (see `serving`). */
export const isServed = (d: AgentDoc, allowLoopback: boolean): boolean => serving(d, allowLoopback) !== undefined;

/**
 * The served agents, at most MAX_PROJECT_AGENTS of them (the compiler's input refuses more, and a project
 * whose input is refused keeps what the gateway holds — its retirements and switches-off included). A
 * person's activation past the cap is refused (project_agent_limit, AgentRegistry); more can still arise
 * (an unblock, agents returning at their source, two activations at once): the first by id are served.
 */
export function toAgentsInput(docs: AgentDoc[], allowLoopback: boolean): PolicyAgent[] {
  const out: PolicyAgent[] = [];
  for (const d of [...docs].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (out.length === MAX_PROJECT_AGENTS) break;
    const served = serving(d, allowLoopback);
    if (!served) continue;
    out.push({
      id: d.id,
      status: served.status,
      ...(served.status === "deprecated" && d.lifecycle.sunsetDate ? { sunsetDate: d.lifecycle.sunsetDate } : {}),
      ...(served.status === "deprecated" && d.lifecycle.deprecatedAt ? { deprecatedAt: d.lifecycle.deprecatedAt } : {}),
      endpoint: served.endpoint,
      ...(d.guardrails.limits.callsPerMinute ? { callsPerMinute: d.guardrails.limits.callsPerMinute } : {}),
      dataClasses: d.guardrails.dataClasses,
      // Cards recorded before the registry kept them as received have no document: served as 404 until checked again.
      ...(d.card?.valid && d.card.document && (d.card.version === "0.3" || d.card.version === "1.0") ? { card: { version: d.card.version, document: d.card.document } } : {}),
    });
  }
  return out;
}
