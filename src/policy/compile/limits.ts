/**
 * Request rate and token limits: the project's value (per project or per key) and each applied key
 * tier's own, every one its own counter (expressions.ts `counterKey`). A model's own token limit is
 * one more counter, in its block (models.ts); a key's budget is in tiers.ts.
 */
import * as X from "../expressions.js";
import { type KeyTier } from "../input.js";
import { type EffectiveSettings, type ResolvedValues } from "../settings.js";
import { el, type Why, type XNode } from "../xml.js";
import { type Collector } from "./collector.js";
import { tiersApplied } from "./tiers.js";

type Per = "key" | "project" | "tier";

export function requestRate(c: Collector, eff: EffectiveSettings, pid: string, applied: Set<string>, offered: ReadonlySet<string>): XNode[] {
  const rr = eff["requests.rate"];
  const element = (v: Omit<ResolvedValues["requests.rate"], "per">, per: Per, why: Why) => {
    c.requireTier("requests.rate", "rate-limit-by-key", why);
    const attrs = { calls: v.calls, "renewal-period": v.renewalPeriodSeconds, "counter-key": X.counterKey("rpm", per, false) };
    return el("rate-limit-by-key", attrs, undefined, why);
  };
  const project = rr && { value: rr.value, why: c.why("requests.rate", rr, pid) };
  return keyed(c, "requests.rate", project, applied, offered, (t) => t.limits.requestRate, element);
}

export function tokenLimits(c: Collector, control: "tokens.perMinute" | "tokens.quota", eff: EffectiveSettings, pid: string, applied: Set<string>, offered: ReadonlySet<string>): XNode[] {
  if (control === "tokens.perMinute") {
    const r = eff["tokens.perMinute"];
    const est = r?.value.estimatePromptTokens ?? false;
    const project = r && { value: r.value, why: c.why(control, r, pid) };
    const tierValue = (t: KeyTier) => (t.limits.tokensPerMinute !== undefined ? { limit: t.limits.tokensPerMinute, estimatePromptTokens: est } : undefined);
    return keyed(c, control, project, applied, offered, tierValue, (v, per, why) => tokenLimit(c, "tpm", v, per, false, why));
  }
  const r = eff["tokens.quota"];
  const est = r?.value.estimatePromptTokens ?? false;
  const project = r && { value: r.value, why: c.why(control, r, pid) };
  const tierValue = (t: KeyTier) => (t.limits.tokenQuota ? { ...t.limits.tokenQuota, estimatePromptTokens: est } : undefined);
  return keyed(c, control, project, applied, offered, tierValue, (v, per, why) => tokenLimit(c, "tq", v, per, false, why));
}

/** One `llm-token-limit`: tokens per minute, or a quota over a period (`v.period`). */
export function tokenLimit(
  c: Collector,
  kind: "tpm" | "tq",
  v: { limit: number; estimatePromptTokens: boolean; period?: string },
  per: Per,
  perModel: boolean,
  why: Why,
): XNode {
  c.requireTier(kind === "tpm" ? "tokens.perMinute" : "tokens.quota", "llm-token-limit", why);
  const attrs: Record<string, string | number | boolean> = { "counter-key": X.counterKey(kind, per, perModel) };
  // What is left of each limit goes back to the caller, one header per counter (several limits can apply
  // to one call; each says its own): x-aigov-tokens-remaining-<minute|quota>-<key|project|tier>[-model].
  const header = `x-aigov-tokens-remaining-${kind === "tpm" ? "minute" : "quota"}-${per}${perModel ? "-model" : ""}`;
  if (v.period !== undefined) {
    attrs["token-quota"] = v.limit;
    attrs["token-quota-period"] = v.period;
    attrs["remaining-quota-tokens-header-name"] = header;
  } else {
    attrs["tokens-per-minute"] = v.limit;
    attrs["remaining-tokens-header-name"] = header;
  }
  attrs["estimate-prompt-tokens"] = v.estimatePromptTokens;
  return el("llm-token-limit", attrs, undefined, why);
}

/**
 * A per-key or per-project limit, and the key tiers' own values for it. Each is its own counter and
 * they add up, so the tightest bites: the project's per-project limit, the project's per-key limit
 * (every key), and a tier's per-key value (keys of that tier, counter `…-tier`). A key profile can
 * narrow its keys' limits, never widen them past the project's. The one exception is an exemption
 * tier: it lists the controls it relaxes (`relaxes`), and its keys get the tier's value instead of
 * the project's per-key limit — the approved relaxation, for that key only, and only in the project that
 * offers the tier (the exempted key's own): a project that accepts the key (a share) approved nothing, so
 * its per-key limit still counts for it.
 */
function keyed<V extends { per: "key" | "project" }, T extends object>(
  c: Collector,
  control: "tokens.perMinute" | "tokens.quota" | "requests.rate",
  project: { value: V; why: Why } | undefined,
  applied: Set<string>,
  offered: ReadonlySet<string>,
  tierValue: (t: KeyTier) => T | undefined,
  element: (v: V | T, per: Per, why: Why) => XNode,
): XNode[] {
  const out: XNode[] = [];
  const tiers = tiersApplied(c, applied).flatMap((t) => {
    const v = tierValue(t);
    return v ? [{ tier: t, v }] : [];
  });
  if (project) {
    const node = element(project.value, project.value.per, project.why);
    const replacing = project.value.per === "key" ? tiers.filter((t) => offered.has(t.tier.id) && t.tier.relaxes?.includes(control)).map((t) => t.tier.id) : [];
    out.push(replacing.length ? el("choose", undefined, [el("when", { condition: X.tierNotAmong(replacing) }, [node])], node.why) : node);
  }
  if (tiers.length) {
    const whens = tiers.map(({ tier, v }) =>
      el("when", { condition: X.tierIs(tier.id) }, [element(v, "tier", { control, scope: { level: "tier", tierId: tier.id } })]),
    );
    out.push(el("choose", undefined, whens, whens[0]?.children?.[0]?.why));
  }
  return out;
}
