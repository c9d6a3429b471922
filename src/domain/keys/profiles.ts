import type { CompilerInputIn } from "../../policy/index.js";
import { EXEMPTION_TIER_PREFIX } from "../../policy/exemptions.js";
import { MAX_PROJECT_KEY_TIERS } from "../../policy/input.js";
import { keyEnded, profileDefOf, type KeyDoc, type ProfileDef } from "./documents.js";

type TierIn = NonNullable<CompilerInputIn["keyTiers"]>[number];
type ProjectIn = CompilerInputIn["projects"][number];

/**
 * Virtual keys as the compiler sees them: keys with the same scopes, limits and shares have one
 * profile, and a profile is a key tier (product `aigov-<project>-<profile>` with that tier's per-key
 * limits and model list; projects the key is shared with accept the tier). Documents therefore grow
 * with the number of distinct profiles a project uses, never with the number of keys (ADR 008).
 *
 * A key whose profile changed (a share began or ended) keeps its previous profile compiled until the
 * gateway has moved its subscription: a product is never deleted while a subscription is on it. A key
 * that ended (revoked, expired) keeps its profile in its own project, but the projects it was shared with
 * no longer accept it (its shares end with it).
 *
 * A budget becomes the tier's budget quota: the most tokens the budget buys at the highest price among
 * the models the key can reach — in its own project and in every project it is shared with, and in
 * every project whose keys have the same profile — counted once per key across all of them. The gateway
 * admits no call once the budget is spent; like every token quota it is checked before a call and counted
 * after it, so the calls admitted while some was left (those in flight at once, each as much as its
 * answer costs) can overshoot it (docs/gateway.md).
 */
export function withKeyProfiles(input: CompilerInputIn, keysByProject: Map<string, KeyDoc[]>): CompilerInputIn {
  const tiers = new Map<string, TierIn>();
  for (const t of input.keyTiers ?? []) tiers.set(t.id, t);
  const known = new Set(input.projects.map((p) => p.id));
  const offered = new Map<string, Set<string>>();
  const accepted = new Map<string, { projectId: string; tierId: string }[]>();
  const byId = new Map(input.projects.map((p) => [p.id, p]));
  // Which tier each key is on: metadata for the compiler (never compiled into a document), read by
  // key-scope exemptions to derive the exempted key's tier from its own.
  const virtualKeys = [...(input.virtualKeys ?? [])];
  for (const project of input.projects) {
    offered.set(project.id, new Set(project.keyTiers ?? []));
    accepted.set(project.id, [...(project.sharedKeyTiers ?? [])]);
  }
  for (const project of input.projects) {
    for (const key of keysByProject.get(project.id) ?? []) {
      const profiles: ProfileDef[] = [profileDefOf(key)];
      if (profiles[0]!.id) virtualKeys.push({ id: key.id, projectId: project.id, tier: profiles[0]!.id });
      const published = key.gateway.publishedProfile;
      if (published && published.id !== profiles[0]!.id) profiles.push(published);
      for (const def of profiles) {
        if (!def.id) continue;
        offered.get(project.id)!.add(def.id);
        const built = tierFor(def, project, def.sharedWith.flatMap((t) => (byId.get(t) ? [byId.get(t)!] : [])));
        const had = tiers.get(def.id);
        if (!had) tiers.set(def.id, built);
        else if (had.limits.budget && built.limits.budget && built.limits.budget.tokens < had.limits.budget.tokens) {
          // Keys of several projects can have one profile (equal settings, no model scope): its budget is
          // what the budget buys at the dearest of their prices, never more than any of them may spend.
          tiers.set(def.id, { ...had, limits: { ...had.limits, budget: built.limits.budget } });
        }
        // A revoked or expired key works nowhere again: its profile stays compiled in its own project (its
        // cancelled subscription is on that product), but no project it was shared with accepts it any more
        // — the product stops linking their APIs and the place among their accepted tiers is free.
        for (const target of keyEnded(key) ? [] : def.sharedWith) {
          // A project deleted since is simply no longer a target.
          if (!known.has(target)) continue;
          const list = accepted.get(target)!;
          if (!list.some((x) => x.projectId === project.id && x.tierId === def.id)) list.push({ projectId: project.id, tierId: def.id });
        }
      }
    }
  }
  const projects: ProjectIn[] = input.projects.map((project) => {
    const tierIds = [...offered.get(project.id)!].sort();
    const shared = accepted.get(project.id)!.sort((a, b) => (a.projectId + a.tierId < b.projectId + b.tierId ? -1 : 1));
    return { ...byId.get(project.id)!, keyTiers: tierIds, sharedKeyTiers: shared };
  });
  return { ...input, keyTiers: [...tiers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), projects, virtualKeys };
}

function tierFor(def: ProfileDef, project: ProjectIn, sharedWith: ProjectIn[]): TierIn {
  const models = project.models ?? [];
  const scoped = def.noModels ? [] : def.models.length ? models.filter((m) => def.models.includes(m.id)) : models;
  const l = def.limits;
  let budget: { tokens: number; period: NonNullable<typeof l.budget>["period"] } | undefined;
  if (l.budget) {
    // The key reaches its own scoped models and, where it is shared, the same names there (or every model when unscoped).
    const names = new Set(scoped.map((m) => m.name));
    const reachable = [...scoped, ...sharedWith.flatMap((q) => (q.models ?? []).filter((m) => !def.noModels && (!def.models.length || names.has(m.name))))];
    const currency = l.budget.currency;
    const perToken = Math.max(...reachable.map((m) => (m.pricing && m.pricing.currency === currency ? Math.max(m.pricing.inputPerMillionTokens, m.pricing.outputPerMillionTokens) / 1_000_000 : Infinity)));
    // A model without a price, or priced in another currency (added or repriced after the key was made, or
    // in a project the key is shared with), could cost anything in the budget's: the budget then buys a
    // single token (fail closed) until the prices agree again.
    const affordable = Number.isFinite(perToken) && perToken > 0 ? Math.max(1, Math.floor(l.budget.amount / perToken)) : 1;
    budget = { tokens: affordable, period: l.budget.period };
  }
  return {
    id: def.id,
    description: `virtual key profile of project ${project.id}`,
    limits: {
      ...(l.tokensPerMinute !== undefined ? { tokensPerMinute: l.tokensPerMinute } : {}),
      ...(l.tokenQuota ? { tokenQuota: { ...l.tokenQuota } } : {}),
      ...(budget ? { budget } : {}),
      ...(l.requestsPerMinute !== undefined ? { requestRate: { calls: l.requestsPerMinute, renewalPeriodSeconds: 60 } } : {}),
    },
    ...(l.contentSafety ? { contentSafety: l.contentSafety } : {}),
    // Model names, resolved now: a renamed model keeps its keys (the profile id is built from model ids).
    // A key scoped to models that are all gone, or to none, gets an empty list: it reaches nothing (never everything).
    ...(def.models.length || def.noModels ? { models: scoped.map((m) => m.name).sort() } : {}),
    // Profiles published before tools existed have no `tools`.
    ...(def.tools?.length ? { tools: toolScope(def.tools, project) } : {}),
    // Agent ids (an agent's id is its name at the gateway); ids of agents since deleted drop out.
    ...(def.agents?.length ? { agents: def.agents.filter((id) => (project.agents ?? []).some((a) => a.id === id)).sort() } : {}),
  };
}

/**
 * A key's tool scope as names (KeyTier.tools), resolved in its own project: server and toolbox ids
 * become `server:<name>`, `tool:<server>/<tool>` and `toolbox:<name>`. Entries whose server or toolbox
 * is gone drop out; a key left with none reaches no tool (the tier keeps an empty list: never everything).
 */
function toolScope(entries: string[], project: ProjectIn): string[] {
  const servers = new Map((project.tools?.servers ?? []).map((s) => [s.id, s.name]));
  const boxes = new Map((project.tools?.toolboxes ?? []).map((b) => [b.id, b.name]));
  const out = new Set<string>();
  for (const e of entries) {
    const slash = e.indexOf("/");
    if (e.startsWith("tbx_")) {
      const name = boxes.get(e);
      if (name) out.add(`toolbox:${name}`);
    } else if (slash < 0) {
      const name = servers.get(e);
      if (name) out.add(`server:${name}`);
    } else {
      const name = servers.get(e.slice(0, slash));
      if (name) out.add(`tool:${name}/${e.slice(slash + 1)}`);
    }
  }
  return [...out].sort();
}

/**
 * After exemptions were applied: an exemption tier that a key's subscription is still on (the
 * exemption ended, the key has not moved back yet) stays compiled, so the publish that follows the
 * exemption's end never deletes the product under the subscription. The next publish after the key
 * moved drops it. Projects that still accept the tier the exemption tier was made from (the key's
 * published profile: shared there, or a share's end not confirmed yet; not a locked project) accept
 * the held tier too, as they did while the exemption lasted: the product keeps its link there, so a
 * shared key does not stop working in that project until it moves (with that project's own per-key
 * limits, never the relaxed ones: the project does not offer the tier). A project whose accepted
 * tiers are full does not get it (the key is refused there until it moves). The project's own tiers
 * never go past MAX_PROJECT_KEY_TIERS (a 41st sets the whole project aside at publish): a new exemption
 * tier no subscription is on gives way to the held one (its key keeps its own tier until there is room).
 */
export function withPublishedExemptionTiers(input: CompilerInputIn, keysByProject: Map<string, KeyDoc[]>): CompilerInputIn {
  const tiers = new Map((input.keyTiers ?? []).map((t) => [t.id, t]));
  const projects = new Map(input.projects.map((p) => [p.id, p]));
  const heldIds = new Set([...keysByProject.values()].flat().flatMap((k) => (k.gateway.publishedExemptionTier ? [k.gateway.publishedExemptionTier.id] : [])));
  let virtualKeys = input.virtualKeys;
  let changed = false;
  for (const [projectId, keys] of keysByProject) {
    for (const key of keys) {
      const held = key.gateway.publishedExemptionTier;
      const project = projects.get(projectId);
      if (!held || !project) continue;
      const offered = project.keyTiers ?? [];
      if (!offered.includes(held.id)) {
        // A 41st tier would set the whole project aside at publish (ADR 008). The caps hold a place for every
        // exempted key, so this only happens while a key moves between two exemption tiers (or for places
        // taken before they were counted): a new exemption tier no subscription is on yet waits for room
        // (its keys keep their own tier meanwhile); the held one, under a subscription, is never dropped.
        let kept = offered;
        if (offered.length >= MAX_PROJECT_KEY_TIERS) {
          const fresh = offered.find((t) => t.startsWith(EXEMPTION_TIER_PREFIX) && !heldIds.has(t));
          if (fresh === undefined) continue; // nothing can give way: the project keeps publishing, the key is refused until it moves
          kept = offered.filter((t) => t !== fresh);
          const ownTier = new Map(keys.map((k) => [k.id, profileDefOf(k).id]));
          virtualKeys = (virtualKeys ?? []).flatMap((v) => (v.tier !== fresh || v.projectId !== projectId ? [v] : ownTier.get(v.id) ? [{ ...v, tier: ownTier.get(v.id)! }] : []));
          for (const [id, q] of projects) {
            const shared = q.sharedKeyTiers ?? [];
            if (shared.some((x) => x.projectId === projectId && x.tierId === fresh)) projects.set(id, { ...q, sharedKeyTiers: shared.filter((x) => !(x.projectId === projectId && x.tierId === fresh)) });
          }
          tiers.delete(fresh);
        }
        projects.set(projectId, { ...projects.get(projectId)!, keyTiers: [...kept, held.id].sort() });
        changed = true;
      }
      if (!tiers.has(held.id)) {
        tiers.set(held.id, held.tier as TierIn);
        changed = true;
      }
      const base = key.gateway.publishedProfile;
      for (const target of base?.id ? base.sharedWith : []) {
        const q = projects.get(target);
        const shared = q?.sharedKeyTiers ?? [];
        if (!q || !shared.some((x) => x.projectId === projectId && x.tierId === base!.id)) continue;
        if (shared.some((x) => x.projectId === projectId && x.tierId === held.id) || shared.length >= MAX_PROJECT_KEY_TIERS) continue;
        const next = [...shared, { projectId, tierId: held.id }].sort((a, b) => (a.projectId + a.tierId < b.projectId + b.tierId ? -1 : 1));
        projects.set(target, { ...q, sharedKeyTiers: next });
        changed = true;
      }
    }
  }
  if (!changed) return input;
  return {
    ...input,
    keyTiers: [...tiers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    projects: input.projects.map((p) => projects.get(p.id)!),
    ...(virtualKeys ? { virtualKeys } : {}),
  };
}
