/**
 * The agents pillar at the gateway: each served agent of a project (active or deprecated, enabled,
 * with an endpoint, still present at its source) is an HTTP API of its own at
 * `aigov/<key>/<project>/agents/<agentId>`, whose service URL is the agent's endpoint (callers add its last
 * path segment: …/agents/<agentId>/a2a for https://agent.example.com/a2a) and whose wildcard
 * operations (GET, POST, PUT, PATCH, DELETE on `/*`) carry A2A's JSON-RPC and HTTP+JSON bindings alike.
 * APIM's own "A2A agent API" type is in preview without a documented ARM shape, so a plain HTTP API is
 * used (docs/adr/015-agents-and-cloud-sync.md).
 *
 * Its policy: only keys of a tier that grants the agent (KeyTier.agents) get through (403
 * `agent_not_in_scope`; a product links the agent's API only for those tiers, and the policy checks it
 * again, fail closed); a call must declare a data class the agent's guardrails allow
 * (`x-aigov-data-class`); the guardrail's calls per minute are counted per key; the virtual key never
 * reaches the agent; a deprecated agent's responses carry `Sunset`, and from that instant on its calls are
 * refused (410 `agent_sunset`, by the gateway's clock). `GET /.well-known/agent-card.json` is
 * answered by the gateway itself with the registry's card, rewritten to point at the gateway
 * (agent-card.ts): the one call without a data class, since it sends the agent nothing.
 */
import { artifactRef, type ApiArtifact, type ApiOperation } from "../../ports/gateway.js";
import * as X from "../expressions.js";
import { type KeyTier, type PolicyAgent, type PolicyProject } from "../input.js";
import { SUBSCRIPTION_KEY_HEADER, VAR } from "../names.js";
import { el, textEl, type Why, type XNode } from "../xml.js";
import { servedAgentCard } from "./agent-card.js";
import { byCodePoint, type Collector, dataClassGate, forbidden, JSON_ERROR, jsonResponse, policySizeLimit, sortBy, STRUCTURE } from "./collector.js";
import { browserAccess } from "./cors.js";
import { keyIsolation } from "./routing.js";
import { tiersApplied } from "./tiers.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
const OPERATIONS: readonly ApiOperation[] = [
  ...METHODS.map((m) => ({ id: `agent-${m.toLowerCase()}`, method: m, urlTemplate: "/*", displayName: `${m} (any path)` })),
  // More specific than GET /*, so the gateway picks it for the card (agent-card.ts).
  { id: X.AGENT_CARD_OPERATION, method: "GET", urlTemplate: "/.well-known/agent-card.json", displayName: "The agent's card (served by the gateway)" },
];
/** Room in the card operation's policy for everything but the card's base64 (its elements and expression take under 1 KiB). */
const CARD_POLICY_OVERHEAD_BYTES = 4096;

/** Agents the gateway serves: the pillar on; the registry already left out the rest (compiler input). */
const servedAgents = (project: PolicyProject): PolicyAgent[] => (project.pillars.agents ? sortBy(project.agents, (a) => a.id) : []);

/** The agent API ids a tier's keys reach in a project (what its product links). */
export function agentApisFor(c: Collector, project: PolicyProject, tier: KeyTier): string[] {
  if (!tier.agents?.length) return [];
  const granted = new Set(tier.agents);
  return servedAgents(project)
    .filter((a) => granted.has(a.id))
    .map((a) => c.n.agentApi(project.id, a.id))
    .sort(byCodePoint);
}

/**
 * The API's service URL: the endpoint without its last path segment, which callers keep (…/agents/<id>/a2a
 * for https://agent.example.com/a2a). The gateway forwards a request for the API's root with a trailing
 * slash, which an endpoint need not accept; below the root, paths are forwarded as they are.
 */
export function serviceUrlOf(endpoint: string): string {
  const url = new URL(endpoint);
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.origin}${path.slice(0, Math.max(path.lastIndexOf("/"), 0))}`;
}

/**
 * A deprecated agent's `Sunset` and, when it is known when it was deprecated, `Deprecation: @<unix seconds>`
 * (RFC 9745; from the variable its API policy sets in inbound: a literal starting with `@` would be an
 * expression). None for an active agent.
 */
function deprecationHeaders(agent: PolicyAgent, why: (note: string) => Why): XNode[] {
  if (agent.status !== "deprecated" || !agent.sunsetDate) return [];
  const out = [el("set-header", { name: "Sunset", "exists-action": "override" }, [textEl("value", imfFixdate(agent.sunsetDate))], why(`deprecated; sunset ${agent.sunsetDate}`))];
  if (agent.deprecatedAt) out.push(el("set-header", { name: "Deprecation", "exists-action": "override" }, [textEl("value", X.DEPRECATION)], why(`deprecated on ${agent.deprecatedAt}`)));
  return out;
}

function imfFixdate(isoDate: string): string {
  return new Date(`${isoDate}T00:00:00Z`).toUTCString();
}

/** A project's agent APIs and their policies. */
export function compileAgents(c: Collector, project: PolicyProject): void {
  const pid = project.id;
  for (const agent of servedAgents(project)) {
    const id = c.n.agentApi(pid, agent.id);
    const why = (note: string): Why => ({ control: "agents", scope: { level: "project", projectId: pid }, note });
    const api: ApiArtifact = {
      kind: "api",
      id,
      displayName: `Agent ${agent.id} (project ${pid})`,
      path: c.n.agentApiPath(pid, agent.id),
      protocols: ["https"],
      subscriptionRequired: true,
      subscriptionKeyHeaderName: SUBSCRIPTION_KEY_HEADER,
      operations: OPERATIONS.map((o) => ({ ...o })),
      serviceUrl: serviceUrlOf(agent.endpoint),
    };
    c.apis.push(api);
    c.explainArtifact({ ref: artifactRef(api), path: "/", control: "agents", scope: { level: "project", projectId: pid }, note: `agent ${agent.id} (${agent.status})` });

    const inbound: XNode[] = [...browserAccess(c, { kind: "agent", methods: METHODS, scope: { level: "project", projectId: pid } }), el("base", undefined, undefined, STRUCTURE)];
    // The project's own tiers only: a tier another project's keys are on (a share) names that project's agents.
    const tierIds = tiersApplied(c, new Set(project.keyTiers))
      .filter((t) => t.agents?.includes(agent.id))
      .map((t) => t.id)
      .sort(byCodePoint);
    const notInScope = (w: Why) => forbidden("agent_not_in_scope", "This key may not call this agent.", w);
    if (!tierIds.length) inbound.push(notInScope(why("no key tier grants this agent")));
    else inbound.push(el("choose", undefined, [el("when", { condition: X.tierNotAmong(tierIds) }, [notInScope(why(`key tiers: ${tierIds.join(", ")}`))])], why("key agent scope")));
    if (agent.status === "deprecated" && agent.sunsetDate) {
      // From the sunset on (by the gateway's clock, no publish needed) the agent is gone: its card too.
      const gone = why(`deprecated; sunset ${agent.sunsetDate}: refused from then on`);
      inbound.push(el("choose", undefined, [el("when", { condition: X.sunsetPassed(agent.sunsetDate) }, [jsonResponse(410, "Gone", JSON_ERROR("agent_sunset", "This agent's sunset has passed: it is no longer served."), gone)], gone)], gone));
      // The Deprecation header's value is `@<unix seconds>` (RFC 9745): a literal starting with `@` would be a
      // policy expression, so the digits go in a variable and outbound writes them as a model's are (X.DEPRECATION).
      if (agent.deprecatedAt) inbound.push(el("set-variable", { name: VAR.deprecation, value: String(Date.parse(`${agent.deprecatedAt}T00:00:00Z`) / 1000) }, undefined, why(`deprecated on ${agent.deprecatedAt}`)));
    }
    const wk = why("the agent's own well-known metadata is not served: only the registry's card, at its path");
    inbound.push(
      el("choose", undefined, [el("when", { condition: X.AGENT_WELL_KNOWN }, [jsonResponse(404, "Not Found", JSON_ERROR("well_known_not_served", "The gateway serves the agent's card at /.well-known/agent-card.json and no other well-known path."), wk)], wk)], wk),
    );
    const amb = why("a path that reads two ways (an encoded slash, backslash or dot) could leave the agent's service path at an agent that decodes it");
    inbound.push(
      el("choose", undefined, [el("when", { condition: X.AGENT_PATH_AMBIGUOUS }, [jsonResponse(400, "Bad Request", JSON_ERROR("agent_path_ambiguous", "The request path holds an encoded slash, backslash or dot, which the gateway does not forward to an agent."), amb)], amb)], amb),
    );
    const classes = [...agent.dataClasses].sort(byCodePoint);
    const w = why(`guardrails: data classes ${classes.join(", ")}`);
    // Fetching the card sends the agent no data: the one call that declares no data class.
    inbound.push(el("choose", undefined, [el("when", { condition: X.NOT_AGENT_CARD }, dataClassGate(classes, "The request's data class is not allowed for this agent.", w))], why("the card needs no data class")));
    if (agent.callsPerMinute) {
      c.requireTier("requests.rate", "rate-limit-by-key", why("guardrails: calls per minute"));
      inbound.push(el("rate-limit-by-key", { calls: agent.callsPerMinute, "renewal-period": 60, "counter-key": X.AGENT_CALL_COUNTER_KEY }, undefined, why(`guardrails: ${agent.callsPerMinute} calls per minute per key`)));
    }
    inbound.push(...keyIsolation(pid));
    const outbound: XNode[] = [el("base", undefined, undefined, STRUCTURE), ...deprecationHeaders(agent, why)];
    const doc = el(
      "policies",
      undefined,
      [
        el("inbound", undefined, inbound, STRUCTURE),
        el("backend", undefined, [el("base")], STRUCTURE),
        el("outbound", undefined, outbound, STRUCTURE),
        el("on-error", undefined, [el("base")], STRUCTURE),
      ],
      STRUCTURE,
    );
    c.addPolicy({ type: "api", apiId: id }, doc, []);
    c.addPolicy({ type: "operation", apiId: id, operationId: X.AGENT_CARD_OPERATION }, cardPolicy(c, agent, why), []);
  }
}

/**
 * The card operation's policy: after the API's checks (key, tier), the registry's card rewritten for the
 * gateway (agent-card.ts) — never the agent's own answer. No valid card recorded, or one too large for a
 * policy document on the tenant's gateway tier: 404 with the reason.
 */
function cardPolicy(c: Collector, agent: PolicyAgent, why: (note: string) => Why): XNode {
  const served = agent.card ? servedAgentCard(agent.card.version, agent.card.document, agent.endpoint, serviceUrlOf(agent.endpoint)) : undefined;
  const base64 = served === undefined ? undefined : Buffer.from(served, "utf8").toString("base64");
  const fits = base64 !== undefined && base64.length + CARD_POLICY_OVERHEAD_BYTES <= policySizeLimit(c);
  // The card is answered here (return-response: the API's outbound does not run), so a deprecated agent's
  // Sunset and Deprecation go in the answer itself, as the API's outbound adds them to its other answers.
  const headers = deprecationHeaders(agent, why);
  const answerWith = (status: number, reason: string, body: string, w: Why): XNode => {
    const r = jsonResponse(status, reason, body, w);
    const children = r.children ?? [];
    return { ...r, children: [...children.slice(0, -1), ...headers, ...children.slice(-1)] };
  };
  const notFound = (code: string, message: string, note: string) => answerWith(404, "Not Found", JSON_ERROR(code, message), why(note));
  const answer = fits
    ? [
        el("set-variable", { name: VAR.agentCard, value: base64 }, undefined, why(`AgentCard v${agent.card!.version}, rewritten for the gateway`)),
        answerWith(200, "OK", X.AGENT_CARD_BODY, why("the card, its URLs at the gateway")),
      ]
    : base64 === undefined
      ? [notFound("agent_card_not_recorded", "The registry holds no valid AgentCard for this agent.", "no valid card recorded")]
      : [notFound("agent_card_too_large", "This agent's AgentCard is too large to be served on this gateway tier.", `card of ${base64.length} base64 bytes over the policy size limit`)];
  return el(
    "policies",
    undefined,
    [
      el("inbound", undefined, [el("base", undefined, undefined, STRUCTURE), ...answer], STRUCTURE),
      el("backend", undefined, [el("base")], STRUCTURE),
      el("outbound", undefined, [el("base")], STRUCTURE),
      el("on-error", undefined, [el("base")], STRUCTURE),
    ],
    STRUCTURE,
  );
}
