/**
 * The models section of a project's API policy: the virtual key kept from the backends, the
 * project's model names, pools, deployments and routes as literal lists (data, not code), the
 * resolve fragment that picks the requested model, the tier model scope, the models' blocks
 * (models with identical blocks share one) and the backend; then the retry section across a
 * model's pool and the deprecation headers of the response.
 */
import * as X from "../expressions.js";
import { type PolicyProject } from "../input.js";
import { SUBSCRIPTION_KEY_HEADER, SUBSCRIPTION_KEY_QUERY, VAR } from "../names.js";
import { type EffectiveSettings } from "../settings.js";
import { canonical, el, textEl, type Why, type XNode } from "../xml.js";
import { routeOf } from "./backends.js";
import { type Collector, JSON_ERROR, jsonResponse } from "./collector.js";
import { addResolveFragment } from "./fragments.js";
import { type RoutableModel } from "./models.js";
import { tierModelScope } from "./tiers.js";

/**
 * The virtual key authenticates the caller to the gateway and goes no further: neither the
 * subscription key carriers nor a client's own Authorization reach a provider (backend credentials
 * and managed identity are added after this).
 */
export function keyIsolation(pid: string): XNode[] {
  const keyWhy: Why = { control: "structure", scope: { level: "project", projectId: pid }, note: "the virtual key never reaches a backend" };
  return [
    el("set-header", { name: SUBSCRIPTION_KEY_HEADER, "exists-action": "delete" }, undefined, keyWhy),
    el("set-header", { name: "Authorization", "exists-action": "delete" }, undefined, keyWhy),
    el("set-query-parameter", { name: SUBSCRIPTION_KEY_QUERY, "exists-action": "delete" }, undefined, keyWhy),
  ];
}

/** The model section of the inbound policy: data lists, the resolve fragment, per-model blocks, the backend. */
export function routing(
  c: Collector,
  project: PolicyProject,
  eff: EffectiveSettings,
  routable: RoutableModel[],
  fragments: string[],
  applied: Set<string>,
): XNode[] {
  const pid = project.id;
  const allowed = eff["models.allowed"];
  const note = `${routable.length} models`;
  const listWhy: Why = allowed
    ? c.why("models.allowed", allowed, pid, undefined, note)
    : { control: "routing", scope: { level: "project", projectId: pid }, note };
  if (!routable.length) {
    return [
      jsonResponse(404, "Not Found", JSON_ERROR("model_not_found", "The requested model is not available to this project."), listWhy),
    ];
  }
  addResolveFragment(c);
  fragments.push(c.n.fragment("resolve-model"));

  const { groups, numbers } = sharedBlocks(routable);
  const routingWhy: Why = { control: "routing", scope: { level: "project", projectId: pid } };
  const failoverWhy = (note?: string): Why => ({ control: "failover", scope: { level: "project", projectId: pid }, ...(note ? { note } : {}) });
  const retries = routable.some((r) => r.retries > 0);
  const list = (name: string, values: (string | number)[], why: Why) => el("set-variable", { name, value: values.join("|") }, undefined, why);
  const out: XNode[] = [
    list(VAR.models, routable.map((r) => r.model.name), listWhy),
    list(VAR.pools, routable.map((r) => r.pool), routingWhy),
    // The provider's deployment (or model) name is the registry's, never the client's: the backend
    // path and body are rewritten to it, so a key scoped to one model cannot reach another deployment.
    list(VAR.deployments, routable.map((r) => r.model.deployment ?? r.model.name), routingWhy),
    list(VAR.routes, routable.map((r) => routeOf(r.model)), routingWhy),
  ];
  if (retries) out.push(list(VAR.retryCounts, routable.map((r) => r.retries), failoverWhy("retries per model: its pool size - 1 (or the configured count)")));
  if (groups.length) out.push(list(VAR.groups, numbers, routingWhy));
  out.push(el("include-fragment", { "fragment-id": c.n.fragment("resolve-model") }, undefined, listWhy));
  if (retries) out.push(el("set-variable", { name: VAR.retries, value: X.MODEL_RETRIES }, undefined, failoverWhy()));
  // Right after the model is resolved (unknown and not-allowed models have had their 404), before
  // any model block, cache lookup or token counting runs for a request the key may not make.
  out.push(...tierModelScope(c, project, routable, applied));
  if (groups.length) {
    out.push(el("set-variable", { name: VAR.group, value: X.MODEL_GROUP }, undefined, routingWhy));
    out.push(el("choose", undefined, groups.map((g) => el("when", { condition: X.groupIs(g.number) }, g.nodes)), routingWhy));
  }
  out.push(el("set-backend-service", { "backend-id": X.BACKEND }, undefined, routingWhy));
  return out;
}

/**
 * Numbers the distinct blocks in model-name order; models with an identical block share a number
 * (and the shared block carries every model's explanations). `numbers[i]` is model i's block, 0
 * for none.
 */
function sharedBlocks(routable: RoutableModel[]): { groups: { number: number; nodes: XNode[] }[]; numbers: number[] } {
  const groups = new Map<string, { number: number; nodes: XNode[] }>();
  const numbers: number[] = [];
  for (const r of routable) {
    if (!r.block.length) {
      numbers.push(0);
      continue;
    }
    const key = canonical({ name: "block", children: r.block });
    let g = groups.get(key);
    if (!g) {
      g = { number: groups.size + 1, nodes: r.block.map(cloneWithWhy) };
      groups.set(key, g);
    } else {
      mergeWhy(g.nodes, r.block);
    }
    numbers.push(g.number);
  }
  return { groups: [...groups.values()], numbers };
}

/**
 * The backend section when a model retries across its pool. The retry forwards the request itself,
 * so the section has no <base/> (it would forward a second time); this is the documented AI-gateway
 * pattern for pools. Each model retries as often as its own pool allows (a per-model list), never by
 * the project's largest pool. Undefined when no model retries (the section stays `<base/>`).
 */
export function retrySection(c: Collector, eff: EffectiveSettings, pid: string, routable: RoutableModel[]): XNode[] | undefined {
  if (!routable.some((r) => r.retries > 0)) return undefined;
  const fo = eff.failover ?? routable.find((r) => r.eff.failover)?.eff.failover;
  const why: Why = fo
    ? c.why("failover", fo, pid, undefined, "retry across the pool; a tripped circuit breaker takes a backend out")
    : { control: "failover", scope: { level: "project", projectId: pid } };
  return [
    el(
      "retry",
      { count: X.RETRY_COUNT, interval: 0, "first-fast-retry": true, condition: X.RETRY_CONDITION },
      [el("set-backend-service", { "backend-id": X.BACKEND }), el("forward-request", { "buffer-request-body": true })],
      why,
    ),
  ];
}

/** `Sunset` and `Deprecation` response headers, from the variables a deprecated model's block sets. */
export function deprecationHeaders(routable: RoutableModel[], pid: string): XNode[] {
  const deprecated = routable.filter((r) => r.model.status === "deprecated" && r.pool !== "");
  if (!deprecated.length) return [];
  const w: Why = { control: "routing", scope: { level: "project", projectId: pid }, note: `deprecated: ${deprecated.map((r) => r.model.id).join(", ")}` };
  const header = (condition: string, name: string, value: string) =>
    el("choose", undefined, [el("when", { condition }, [el("set-header", { name, "exists-action": "override" }, [textEl("value", value)])])], w);
  const out = [header(X.HAS_SUNSET, "Sunset", X.SUNSET)];
  if (deprecated.some((r) => r.model.deprecatedAt)) out.push(header(X.HAS_DEPRECATION, "Deprecation", X.DEPRECATION));
  return out;
}

function cloneWithWhy(node: XNode): XNode {
  const copy: XNode = { ...node };
  if (node.why) copy.why = [...node.why];
  if (node.children) copy.children = node.children.map(cloneWithWhy);
  return copy;
}

/** Adds the explanations of a structurally equal block to the shared one. */
function mergeWhy(into: XNode[], from: XNode[]) {
  into.forEach((node, i) => {
    const other = from[i];
    if (!other) return;
    if (other.why) node.why = [...(node.why ?? []), ...other.why];
    if (node.children && other.children) mergeWhy(node.children, other.children);
  });
}
