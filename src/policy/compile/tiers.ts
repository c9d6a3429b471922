/**
 * Key tiers: the product per (project, tier) whose policy names the tier by its id, and what an API
 * policy does with the tiers it applies — refuse a tier it does not know (the fail-closed guard),
 * narrow a tier's models, and count a key's budget. A tier's per-key limits are in limits.ts.
 */
import { artifactRef, type ProductArtifact } from "../../ports/gateway.js";
import * as X from "../expressions.js";
import { type KeyTier, type PolicyProject } from "../input.js";
import { VAR } from "../names.js";
import { el, type ScopeRef, type Why, type XNode } from "../xml.js";
import { byCodePoint, type Collector, forbidden, invalid, STRUCTURE } from "./collector.js";
import { type RoutableModel } from "./models.js";
import { toolApisFor } from "./tools.js";
import { agentApisFor } from "./agents.js";

/** The ids of the tiers a project's API applies: its own and those of other projects' keys it accepts. */
export function appliedTiers(project: PolicyProject): Set<string> {
  return new Set([...project.keyTiers, ...project.sharedKeyTiers.map((s) => s.tierId)]);
}

/** The tiers a project's API applies (offered or accepted), sorted by id. */
export function tiersApplied(c: Collector, applied: Set<string>): KeyTier[] {
  return c.tiers.filter((t) => applied.has(t.id));
}

/**
 * Fail closed on a key tier this API does not apply: every tier-dependent element below (limits,
 * model scope) matches tiers by id, so a key whose product policy sets an id the API does not know
 * — e.g. during the one publish that changes the format of tier ids, or a product policy and an API
 * policy from different revisions — would otherwise fall through to the project's per-key limits
 * and its full model list. Placed before the first of them, it answers 403 instead.
 *
 * Emitted only when the API applies at least one tier. A project with no tiers gets no guard: a key
 * of another project's tier product reaches this API only if that product links it, which the
 * compiler does only for projects that accept the tier (sharedKeyTiers), and those apply it. Keys
 * without a tier set no variable. So the guard would never fire there, and leaving it out keeps
 * tier-less documents (most of them) unchanged.
 */
export function unknownTierGuard(pid: string, applied: Set<string>): XNode[] {
  if (!applied.size) return [];
  const ids = [...applied].sort(byCodePoint);
  const why: Why = { control: "structure", scope: { level: "project", projectId: pid }, note: `fail closed: a key tier other than ${ids.join(", ")}` };
  const refuse = forbidden("key_tier_unknown", "This key's tier is not valid for this project.", why);
  return [el("choose", undefined, [el("when", { condition: X.tierNotIn(ids) }, [refuse])], why)];
}

/** Per-key limits and model scope of a tier product: the product policy only names the tier, by
 * its id, so the document depends on nothing but the project, the tier and who accepts it. */
export function tierProduct(c: Collector, project: PolicyProject, tierId: string) {
  const tier = c.tierById.get(tierId);
  if (!tier) throw invalid("tokens.perMinute", `unknown tier ${tierId}`);
  const scope: ScopeRef = { level: "tier", tierId };
  const whys: Why[] = [];
  if (tier.limits.tokensPerMinute !== undefined) whys.push({ control: "tokens.perMinute", scope });
  if (tier.limits.tokenQuota !== undefined) whys.push({ control: "tokens.quota", scope });
  if (tier.limits.requestRate !== undefined) whys.push({ control: "requests.rate", scope });
  if (tier.models !== undefined) whys.push({ control: "models.allowed", scope });
  const acceptedBy = c.acceptedBy.get(`${project.id}/${tierId}`) ?? [];
  const setTier = el("set-variable", { name: VAR.keyTier, value: tierId }, undefined, whys.length ? whys : [{ control: "structure", scope }]);
  const doc = el(
    "policies",
    undefined,
    [
      el("inbound", undefined, [el("base", undefined, undefined, STRUCTURE), setTier], STRUCTURE),
      el("backend", undefined, [el("base")], STRUCTURE),
      el("outbound", undefined, [el("base")], STRUCTURE),
      el("on-error", undefined, [el("base")], STRUCTURE),
    ],
    STRUCTURE,
  );
  const product: ProductArtifact = {
    kind: "product",
    id: c.n.product(project.id, tierId),
    displayName: `${project.name} (${project.id}), key tier ${tierId}`,
    ...(tier.description ? { description: tier.description } : {}),
    subscriptionRequired: true,
    // Keys are issued by the control plane (its own approvals), never requested through the portal.
    approvalRequired: false,
    state: "published",
    // The owner's API plus the APIs of projects that accept these keys: the link is what lets the
    // gateway accept the key there at all.
    // Tool APIs of the owner only: a tier's tool scope names the owner's servers and toolboxes (a shared
    // key reaches another project's models, never its tools).
    apis: [...[project.id, ...acceptedBy].map((p) => c.n.api(p)), ...toolApisFor(c, project, tier), ...agentApisFor(c, project, tier)].sort(byCodePoint),
  };
  c.products.push(product);
  const ref = artifactRef(product);
  c.explainArtifact({ ref, path: "/", control: "structure", scope, note: `keys of project ${project.id} in tier ${tierId}` });
  for (const q of acceptedBy) {
    const note = `project ${q} accepts keys of project ${project.id} in tier ${tierId}`;
    c.explainArtifact({ ref, path: "/apis", control: "structure", scope: { level: "project", projectId: q }, note });
  }
  c.addPolicy({ type: "product", productId: product.id }, doc, []);
}

/**
 * Key-tier model scope. For keys of a tier with a model list, the allowed models are the project's
 * routable models (already narrowed by models.allowed and blocked status) intersected with the
 * tier's names; names the project does not have simply drop out. One `when` per tier that narrows
 * this project's list sets that intersection as a literal list; tiers whose list covers every
 * routable model need no element. A tier that leaves nothing answers 403 directly.
 */
export function tierModelScope(c: Collector, project: PolicyProject, routable: RoutableModel[], applied: Set<string>): XNode[] {
  const names = routable.map((r) => r.model.name);
  const owners = new Map<string, string[]>();
  for (const s of project.sharedKeyTiers) owners.set(s.tierId, [...(owners.get(s.tierId) ?? []), s.projectId].sort(byCodePoint));
  const whens: XNode[] = [];
  const checked: Why[] = [];
  for (const tier of tiersApplied(c, applied)) {
    if (tier.models === undefined) continue;
    const listed = new Set(tier.models);
    const allowed = names.filter((n) => listed.has(n));
    if (allowed.length === names.length) continue;
    const from = owners.get(tier.id);
    const shared = from ? `; keys of project ${from.join(", ")} accepted here` : "";
    const why: Why = { control: "models.allowed", scope: { level: "tier", tierId: tier.id }, note: `${allowed.length} of ${names.length} models${shared}` };
    const narrow = allowed.length
      ? el("set-variable", { name: VAR.tierModels, value: allowed.join("|") })
      : forbidden("model_not_allowed", "This key may not use the requested model.", why);
    whens.push(el("when", { condition: X.tierIs(tier.id) }, [narrow], why));
    if (allowed.length) checked.push(why);
  }
  if (!whens.length) return [];
  const out = [el("choose", undefined, whens, whens.flatMap((w) => w.why ?? []))];
  if (checked.length) {
    const refuse = forbidden("model_not_allowed", "This key may not use the requested model.", checked);
    out.push(el("choose", undefined, [el("when", { condition: X.MODEL_NOT_IN_TIER }, [refuse])], checked));
  }
  return out;
}

/** A key's budget: the token quota it buys (key profiles), one counter per key across every API it reaches. */
export function budgets(c: Collector, applied: Set<string>): XNode[] {
  const tiers = tiersApplied(c, applied).filter((t) => t.limits.budget);
  if (!tiers.length) return [];
  const whens = tiers.map((t) => {
    const budget = t.limits.budget!;
    const note = `budget: ${budget.tokens} tokens ${budget.period.toLowerCase()}`;
    const why: Why = { control: "tokens.quota", scope: { level: "tier", tierId: t.id }, note };
    c.requireTier("tokens.quota", "llm-token-limit", why);
    const attrs = { "counter-key": X.BUDGET_COUNTER_KEY, "token-quota": budget.tokens, "token-quota-period": budget.period, "estimate-prompt-tokens": false };
    return el("when", { condition: X.tierIs(t.id) }, [el("llm-token-limit", attrs, undefined, why)], why);
  });
  return [el("choose", undefined, whens, whens.flatMap((w) => w.why ?? []))];
}
