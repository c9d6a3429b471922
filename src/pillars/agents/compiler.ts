/**
 * The agent registry as the policy compiler's input: the agents the gateway serves. An agent is served
 * when a person made it active (or deprecated it, until retirement), it is enabled, it has an endpoint
 * (its own, else its card's first JSON-RPC or HTTP+JSON interface, else the one its cloud reports), and
 * its source still runs it. Everything else is kept in the registry and absent at the gateway.
 */
import type { PolicyAgent } from "../../policy/input.js";
import { endpointOfCard } from "./agents.js";
import type { AgentDoc } from "./documents.js";
import { refuseAgentEndpoint } from "./endpoint.js";

/** Where the gateway forwards the agent's calls: its own endpoint, else its card's, else its cloud's — when that may be served. */
export function servedEndpoint(doc: AgentDoc, allowLoopback: boolean): string | undefined {
  const url = doc.endpoint?.url ?? (doc.card?.card ? endpointOfCard(doc.card.card)?.url : undefined) ?? doc.source?.endpoint;
  return url && refuseAgentEndpoint(url, allowLoopback) === undefined ? url.replace(/\/+$/, "") : undefined;
}

export function toAgentsInput(docs: AgentDoc[], allowLoopback: boolean): PolicyAgent[] {
  const out: PolicyAgent[] = [];
  for (const d of [...docs].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const state = d.lifecycle.state;
    if ((state !== "active" && state !== "deprecated") || !d.enabled || d.sync?.state === "removedAtSource") continue;
    const endpoint = servedEndpoint(d, allowLoopback);
    if (!endpoint) continue;
    out.push({
      id: d.id,
      status: state,
      ...(state === "deprecated" && d.lifecycle.sunsetDate ? { sunsetDate: d.lifecycle.sunsetDate } : {}),
      endpoint,
      ...(d.guardrails.limits.callsPerMinute ? { callsPerMinute: d.guardrails.limits.callsPerMinute } : {}),
      dataClasses: d.guardrails.dataClasses,
      // Cards recorded before the registry kept them as received have no document: served as 404 until checked again.
      ...(d.card?.valid && d.card.document && (d.card.version === "0.3" || d.card.version === "1.0") ? { card: { version: d.card.version, document: d.card.document } } : {}),
    });
  }
  return out;
}
