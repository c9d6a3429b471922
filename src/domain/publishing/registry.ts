import { canonicalJson } from "../../util/canonical-json.js";
import { sha256 } from "../audit/chain.js";
import { heldToLiveTenant } from "../../policy/floors.js";
import { mergeSettings } from "../../policy/settings.js";
import { contentSafetyRegionGap, keyReaches, keyRegionGaps, type KeyOfProject } from "../policy/tenant-settings.js";
import type { CompilerInputIn } from "../../policy/index.js";

export type ProjectInput = CompilerInputIn["projects"][number];

/**
 * The registry as a publish compiled it: the tenant's settings and services and every project (with
 * its models) as compiler input, before keys, floors and exemptions are applied. A revision keeps the
 * snapshot it was compiled from, so a publish the *system* starts (a key needs its product, an
 * exemption starts or ends) compiles from what is already published — plus its own change — and
 * never ships registry changes a person has not published yet.
 */
export interface RegistrySnapshot {
  tenantId: string;
  settings: CompilerInputIn["settings"];
  services: CompilerInputIn["services"];
  projects: ProjectInput[];
}

/**
 * One part of a snapshot, stored content-addressed (written once, shared by every revision that holds it).
 * A tenant part stored before December 2026 may hold the tenant's gateway key too; it is not read (the
 * key compiled is always the one assigned now: TenantCompiler.inputFrom).
 */
export type RegistryPart = { kind: "tenant"; settings: CompilerInputIn["settings"]; services: CompilerInputIn["services"] } | { kind: "project"; project: ProjectInput };

/** The snapshot as entries (key → hash of its part): "tenant", and "project:<id>" per project. */
export function snapshotParts(reg: RegistrySnapshot): { entries: [string, string][]; parts: Map<string, RegistryPart> } {
  const parts = new Map<string, RegistryPart>();
  const entries: [string, string][] = [];
  const add = (key: string, part: RegistryPart) => {
    const hash = sha256(canonicalJson(part));
    parts.set(hash, part);
    entries.push([key, hash]);
  };
  add("tenant", { kind: "tenant", settings: reg.settings, services: reg.services });
  for (const p of reg.projects) add(`project:${p.id}`, { kind: "project", project: p });
  return { entries, parts };
}

/** The snapshot back from its parts, projects in the order they were stored. */
export function snapshotFrom(tenantId: string, entries: [string, string][], parts: Map<string, RegistryPart>): RegistrySnapshot {
  let tenant: Extract<RegistryPart, { kind: "tenant" }> | undefined;
  const projects: ProjectInput[] = [];
  for (const [key, hash] of entries) {
    const part = parts.get(hash);
    if (!part) throw new Error(`registry part ${hash} (${key}) is missing from the store`);
    if (part.kind === "tenant") tenant = part;
    else projects.push(part.project);
  }
  if (!tenant) throw new Error("a registry snapshot has no tenant part");
  return { tenantId, settings: tenant.settings, services: tenant.services, projects };
}

/** What differs between two snapshots: the tenant part, and the projects added, changed or removed. */
export function stagedBetween(published: RegistrySnapshot, current: RegistrySnapshot): { tenant: boolean; projects: string[] } {
  const a = new Map(snapshotParts(published).entries);
  const b = new Map(snapshotParts(current).entries);
  const projects = new Set<string>();
  for (const [key, hash] of b) if (key.startsWith("project:") && a.get(key) !== hash) projects.add(key.slice("project:".length));
  for (const key of a.keys()) if (key.startsWith("project:") && !b.has(key)) projects.add(key.slice("project:".length));
  return { tenant: a.get("tenant") !== b.get("tenant"), projects: [...projects].sort() };
}

/**
 * What a rollback may restore of a revision's registry (`target`) given the registry as it is now (`live`):
 * configuration, never what has been withdrawn for good since. A project deleted since stays deleted (its
 * API would come back, reachable by keys still shared into it); a model deleted since (with its provider
 * keys), an MCP server (with its upstream credentials) or a toolbox deleted since stays gone; a pillar
 * switched off since stays off; an agent the registry no longer serves (retired — which is final —
 * blocked, disabled, deleted) is not served again. The tenant's settings are the target's held to the live
 * tenant's floors (`heldToLiveTenant`): a rollback may tighten a tenant control again, never loosen one the
 * tenant has tightened since; its services are the live ones. Everything else is the target's. (Keys,
 * exemptions, tool approvals and a server's tools are live inputs already: TenantCompiler's transform and
 * the tools pillar's contributor.)
 */
export function restorable(target: RegistrySnapshot, live: RegistrySnapshot): RegistrySnapshot {
  const now = new Map(live.projects.map((p) => [p.id, p]));
  const projects: ProjectInput[] = [];
  for (const p of target.projects) {
    const current = now.get(p.id);
    if (!current) continue;
    const models = new Set((current.models ?? []).map((m) => m.id));
    const agents = new Set((current.agents ?? []).map((a) => a.id));
    const servers = new Set((current.tools?.servers ?? []).map((s) => s.id));
    const toolboxes = new Set((current.tools?.toolboxes ?? []).map((b) => b.id));
    // A pillar switched off since stays off (a switch is the quickest way to take a pillar's access away).
    const on = (pillar: "models" | "tools" | "agents") => (p.pillars?.[pillar] ?? true) && (current.pillars?.[pillar] ?? true);
    projects.push({
      ...p,
      ...(p.pillars || current.pillars ? { pillars: { models: on("models"), tools: on("tools"), agents: on("agents") } } : {}),
      ...(p.models ? { models: p.models.filter((m) => models.has(m.id)) } : {}),
      ...(p.agents ? { agents: p.agents.filter((a) => agents.has(a.id)) } : {}),
      ...(p.tools
        ? { tools: { ...p.tools, ...(p.tools.servers ? { servers: p.tools.servers.filter((s) => servers.has(s.id)) } : {}), ...(p.tools.toolboxes ? { toolboxes: p.tools.toolboxes.filter((b) => toolboxes.has(b.id)) } : {}) } }
        : {}),
    });
  }
  // The tenant's services are the live ones, never the target's: a floor switched on since (content
  // safety) needs its service to compile, and a service endpoint removed or replaced since was withdrawn
  // the way a model's provider keys are (the gateway would call a resource the tenant no longer trusts).
  // A target-only control whose service is gone since would not compile: the rollback refuses it
  // (servicesUnfit) — refusing beats calling a withdrawn endpoint, and beats a "rollback" whose
  // projects are all kept as the gateway holds them.
  return { ...target, settings: heldToLiveTenant(target.settings, live.settings), services: live.services, projects };
}

/**
 * What a registry needs of the tenant's services that they cannot give (ServicesUnfit): a control switched on
 * (at the tenant, a project or a model, where the models pillar is on) whose service is not configured —
 * content safety without `services.contentSafety`, the semantic cache without `services.embeddings` — and
 * content safety on in a scope whose `regions.allowed` excludes the content-safety service's region (every
 * prompt there would be screened outside the regions it allows). Settings writes refuse both states
 * (requireServices, refuseRegionGap), so only a rollback meets them: the target's settings, held to the live
 * tenant's floors, with the live services — a service removed or moved since, or a region rule narrowed
 * since content safety was switched off. Compiled, a missing service isolates every project it reaches (the
 * rollback restores nothing, or only part, while answering as if it had), and a region gap sends prompts
 * out of the tenant's regions; the rollback refuses instead (revision_needs_service).
 *
 * Keys are live inputs of a rollback (their tiers are compiled as they are now): a key whose tier screens
 * prompts (`limits.contentSafety`, in its project and each one it is shared with) is held to the region rules
 * the registry restores as a key write is (keyRegionGaps, ADR 024) — a rule dropped since, and a content-safety
 * key created meanwhile, would otherwise send that key's prompts outside the regions the restored rule allows.
 * `keys`: the tenant's key documents; `live`: the projects as they are now (where a key's own project, absent
 * from `reg`, names the models it is scoped to).
 */
export function servicesUnfit(reg: RegistrySnapshot, keys: readonly KeyOfProject[] = [], live: readonly ProjectInput[] = []): string[] {
  const services = reg.services ?? {};
  const needs = [
    { on: (eff: ReturnType<typeof mergeSettings>) => eff.contentSafety !== undefined, missing: !services.contentSafety, what: "content safety", service: "services.contentSafety" },
    { on: (eff: ReturnType<typeof mergeSettings>) => eff.semanticCache !== undefined, missing: !services.embeddings, what: "the semantic cache", service: "services.embeddings" },
  ].filter((n) => n.missing);
  const out: string[] = [];
  const merged = (layers: unknown[]) => mergeSettings(...(layers as Parameters<typeof mergeSettings>));
  const served = reg.projects.filter((p) => p.pillars?.models !== false);
  for (const n of needs) {
    // Reported at the widest scope that switches it on: the tenant's settings reach every project.
    if (served.length && n.on(merged([reg.settings]))) {
      out.push(`${n.what} is on in the tenant's settings, and ${n.service} is not configured`);
      continue;
    }
    for (const p of served) {
      if (n.on(merged([reg.settings, p.settings]))) out.push(`${n.what} is on in project ${p.name}, and ${n.service} is not configured`);
      else for (const m of p.models ?? []) if (n.on(merged([reg.settings, p.settings, m.settings]))) out.push(`${n.what} is on for model ${m.name} of project ${p.name}, and ${n.service} is not configured`);
    }
  }
  if (services.contentSafety) {
    const t = { settings: reg.settings ?? {}, services } as Parameters<typeof contentSafetyRegionGap>[0];
    const tenantGap = served.length ? contentSafetyRegionGap(t, undefined) : undefined;
    if (tenantGap) out.push(`in the tenant's settings, ${tenantGap}`);
    else {
      for (const p of served) {
        const gap = contentSafetyRegionGap(t, p.settings);
        if (gap) out.push(`in project ${p.name}, ${gap}`);
        else for (const m of p.models ?? []) {
          const mg = contentSafetyRegionGap(t, p.settings, m.settings);
          if (mg) out.push(`for model ${m.name} of project ${p.name}, ${mg}`);
        }
      }
    }
    const restored = new Set(reg.projects.map((p) => p.id));
    const reaches = keyReaches(keys, [...reg.projects, ...live.filter((p) => !restored.has(p.id))]);
    for (const p of served) {
      for (const gap of keyRegionGaps(t, p.settings, p.models ?? [], reaches.get(p.id) ?? [])) out.push(`in project ${p.name}, ${gap}`);
    }
  }
  return out;
}
