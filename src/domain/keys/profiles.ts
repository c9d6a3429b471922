import type { CompilerInputIn } from "../../policy/index.js";
import { profileOf, type KeyDoc } from "./service.js";

type TierIn = NonNullable<CompilerInputIn["keyTiers"]>[number];
type ProjectIn = CompilerInputIn["projects"][number];

/**
 * Virtual keys as the compiler sees them: keys with the same scopes and limits share a profile, and a
 * profile is a key tier (product `aigov-<project>-<profile>` with that tier's per-key limits and model
 * list). Documents therefore grow with the number of distinct profiles a project uses, never with the
 * number of keys (ADR 008). A budget becomes a token quota: the most tokens the budget can buy at the
 * highest price among the models the key can reach, so the gateway never lets a key spend more.
 */
export function withKeyProfiles(input: CompilerInputIn, keysByProject: Map<string, KeyDoc[]>): CompilerInputIn {
  const tiers = new Map<string, TierIn>();
  for (const t of input.keyTiers ?? []) tiers.set(t.id, t);
  const projects: ProjectIn[] = input.projects.map((project) => {
    const keys = keysByProject.get(project.id) ?? [];
    const offered = new Set(project.keyTiers ?? []);
    for (const key of keys) {
      const profile = profileOf(key);
      if (!profile) continue;
      offered.add(profile);
      if (!tiers.has(profile)) tiers.set(profile, tierFor(profile, key, project));
    }
    return offered.size === (project.keyTiers ?? []).length ? project : { ...project, keyTiers: [...offered].sort() };
  });
  return { ...input, keyTiers: [...tiers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), projects };
}

function tierFor(id: string, key: KeyDoc, project: ProjectIn): TierIn {
  const models = project.models ?? [];
  const scoped = key.scopes.models?.length ? models.filter((m) => key.scopes.models!.includes(m.id)) : models;
  const l = key.limits;
  let quota = l.tokenQuota ? { ...l.tokenQuota } : undefined;
  if (l.budget) {
    const perToken = Math.max(...scoped.map((m) => (m.pricing ? Math.max(m.pricing.inputPerMillionTokens, m.pricing.outputPerMillionTokens) / 1_000_000 : Infinity)));
    const affordable = Number.isFinite(perToken) && perToken > 0 ? Math.max(1, Math.floor(l.budget.amount / perToken)) : 1;
    quota = { limit: Math.min(quota?.limit ?? 1_000_000_000_000, affordable), period: l.budget.period };
  }
  return {
    id,
    description: `virtual key profile of project ${project.id}`,
    limits: {
      ...(l.tokensPerMinute !== undefined ? { tokensPerMinute: l.tokensPerMinute } : {}),
      ...(quota ? { tokenQuota: quota } : {}),
      ...(l.requestsPerMinute !== undefined ? { requestRate: { calls: l.requestsPerMinute, renewalPeriodSeconds: 60 } } : {}),
    },
    // Model names, resolved now: a renamed model keeps its keys (the profile id is built from model ids).
    ...(key.scopes.models?.length ? { models: scoped.map((m) => m.name).sort() } : {}),
  };
}
