import { serviceIdentityUse, type IdentityGrants } from "../../policy/identity.js";
import { checkManagedIdentity } from "./managed-identity.js";
import { z } from "zod";
import { Services } from "../../policy/input.js";
import { clampToFloor } from "../../policy/floors.js";
import { serviceRegionFit } from "../../policy/service-regions.js";
import { mergeSettings, Settings, type ModelSettings } from "../../policy/settings.js";
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import { canonicalJson } from "../../util/canonical-json.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext } from "../common.js";
import { fail } from "../errors.js";
import { ANY_TENANT_ROLE, holdsAny, TENANT_ADMINS } from "../kernel/roles.js";
import { INITIAL_ETAG, TenantSingleton } from "../kernel/singleton.js";
import { gateGapsOfWrite } from "../projects/gates.js";
import type { Project } from "../projects/schema.js";
import { parseOrThrow } from "../validation.js";

export { INITIAL_ETAG };

const TenantScopeSettings = Settings.meta({
  description:
    "Governance controls at tenant scope. They are floors: a project or model may tighten them, never loosen them (an exemption is the way below). Within that, for values the most specific scope that sets a field wins (model > project > tenant); allow-lists intersect; required/stripped headers and blocklists add up.",
});

const TenantServices = Services.meta({
  description:
    "Services the gateway calls for some controls: Azure AI Content Safety (contentSafety) and an embeddings deployment (semanticCache). The gateway authenticates with its managed identity (system-assigned, or clientId of a user-assigned one).",
});

export const TenantSettingsSpec = z.strictObject({ settings: TenantScopeSettings, services: TenantServices.optional() }).meta({ id: "TenantSettingsSpec" });
export const TenantSettings = z
  .object({
    settings: z.record(z.string(), z.unknown()),
    services: z.record(z.string(), z.unknown()),
    updatedAt: z.iso.datetime().optional(),
    updatedBy: z.string().optional(),
    etag: z.string().meta({ description: `"${INITIAL_ETAG}" until the settings are first written` }),
  })
  .meta({ id: "TenantSettings" });
export type TenantSettings = z.output<typeof TenantSettings>;

type TenantScope = { settings: z.output<typeof Settings>; services?: z.output<typeof Services> };

/** A service the tenant document names, and who below the tenant switches its control on (for the refusal). */
export type ServiceName = "contentSafety" | "embeddings";
/** What below the tenant (projects, models, keys) needs of these tenant settings (belowTenant). */
export interface BelowTenant {
  /** Where each service is needed; none: absent. */
  services: Partial<Record<ServiceName, string>>;
  /** The first project or model whose content-safety thresholds are off the severity scale these settings put in force. */
  offScale?: string | undefined;
  /** What a test or prod project would lose of its environment's gates under these settings (src/domain/projects/gates.ts). */
  gateGaps?: string[] | undefined;
  /** Projects and models these settings and services would leave screened by a content-safety service outside their region rule (ADR 024), that were not before. */
  regionGaps?: string[] | undefined;
}
/** The tenant's services as the write would leave them, and as stored. */
export interface ServicesChange {
  next: z.output<typeof Services>;
  previous: z.output<typeof Services>;
}
export type BelowTenantOf = (tenantId: string, settings: z.output<typeof Settings>, previous: z.output<typeof Settings> | undefined, services: ServicesChange) => Promise<BelowTenant>;

/** Tenant-scope governance settings: one document per tenant, written with If-Match, audited. */
export class TenantSettingsService {
  private readonly doc: TenantSingleton<TenantScope>;
  /** What below the tenant needs of its settings (registered once the registry's readers exist: services.ts). */
  private belowTenant: BelowTenantOf = () => Promise.resolve({ services: {} });

  constructor(
    store: Store,
    changes: ChangeWriter,
    clock: Clock,
    /** What an operator granted the tenant at its gateway (policy/identity.ts). */
    private readonly gatewayGrants: (tenantId: string) => IdentityGrants = () => ({ identities: [], sharedHosts: [] }),
  ) {
    this.doc = new TenantSingleton(store, changes, clock, { id: "settings.tenant", docType: "tenantSettings", path: "/settings", action: "settings.update", event: "aigov.settings.updated.v1" });
  }

  /**
   * Registers what below the tenant needs of its settings: a write that drops a service they use, or that
   * puts a severity scale in force their thresholds are off, is refused.
   */
  needsOf(below: BelowTenantOf): void {
    this.belowTenant = below;
  }

  async get(ctx: RequestContext): Promise<TenantSettings> {
    if (!holdsAny(ctx.principal.roles, ANY_TENANT_ROLE)) fail({ kind: "forbidden", detail: "reading settings requires a tenant role" });
    const written = await this.doc.read(ctx.principal.tenantId);
    return written ? { ...written, services: written.services ?? {} } : { settings: {}, services: {}, etag: INITIAL_ETAG };
  }

  /** For the compiler: the tenant's settings (empty when never written). */
  async current(tenantId: string): Promise<z.output<typeof Settings>> {
    return (await this.scope(tenantId)).settings;
  }

  /** The tenant's settings and services in one read (what project and model writes check against). */
  async scope(tenantId: string): Promise<{ settings: z.output<typeof Settings>; services: z.output<typeof Services> }> {
    const written = await this.doc.read(tenantId);
    return { settings: written?.settings ?? {}, services: written?.services ?? {} };
  }

  async put(ctx: RequestContext, input: unknown, ifMatch: string): Promise<TenantSettings> {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "changing tenant settings requires TenantAdmin" });
    const spec = parseOrThrow(TenantSettingsSpec, input, "body");
    requireSeverityScale([spec.settings], "body.settings");
    requireServices([spec.settings], spec.services ?? {}, "body.settings");
    const storedDoc = await this.doc.read(ctx.principal.tenantId);
    const stored = storedDoc?.services;
    // A service dropped while a project, model or key still switches its control on, or a severity scale put
    // in force that a project's or model's thresholds are off, would leave that project uncompilable
    // (isolated from every later publish): refused like the same write at the project.
    const dropped = (["contentSafety", "embeddings"] as const).filter((name) => stored?.[name] && !spec.services?.[name]);
    const changed = canonicalJson(storedDoc?.settings ?? {}) !== canonicalJson(spec.settings);
    const services: ServicesChange = { next: spec.services ?? {}, previous: stored ?? {} };
    const csRegionChanged = (stored?.contentSafety?.region ?? null) !== (spec.services?.contentSafety?.region ?? null);
    // Content safety screens every prompt where it is on and is never skipped: a write that would leave a scope
    // with it on and a region rule excluding the service's stated region is refused (ADR 024); what was so
    // before the write (an expired exemption, a rule since narrowed) does not refuse an unrelated edit.
    const regionField = csRegionChanged ? "body.services.contentSafety.region" : canonicalJson(storedDoc?.settings?.regions ?? null) !== canonicalJson(spec.settings.regions ?? null) ? "body.settings.regions.allowed" : "body.settings.contentSafety";
    const tenantGap = contentSafetyRegionGap({ settings: spec.settings, services: services.next }, undefined);
    if (tenantGap && !contentSafetyRegionGap({ settings: storedDoc?.settings ?? {}, services: services.previous }, undefined)) refuseRegionGap(regionField, [`the tenant: ${tenantGap}`]);
    if (dropped.length || changed || csRegionChanged) {
      const below = await this.belowTenant(ctx.principal.tenantId, spec.settings, storedDoc?.settings, services);
      // The gates hold after promotion for tenant writes too: a control a test or prod project has only from the tenant stays.
      if (below.gateGaps?.length) fail({ kind: "conflict", detail: `the settings would take from projects what their environment's gates require: ${below.gateGaps.join("; ")}; set the control on those projects first`, reason: "environment_gate_failed" });
      if (below.offScale) fail({ kind: "validation", detail: "content-safety thresholds below the tenant would be off the severity scale in force", errors: [{ field: "body.settings.contentSafety.outputType", message: `${below.offScale}: keep EightSeverityLevels, or change those thresholds to 0, 2, 4 or 6 first` }] });
      if (below.regionGaps?.length) refuseRegionGap(regionField, below.regionGaps);
      const users = below.services;
      const needed = dropped.filter((name) => users[name]);
      if (needed.length) {
        fail({
          kind: "validation",
          detail: "a service is dropped that a control switched on below the tenant still needs",
          errors: needed.map((name) => ({ field: `body.services.${name}`, message: `${users[name]} switches ${name === "contentSafety" ? "content safety" : "the semantic cache"} on, which needs it: switch it off there first` })),
          reason: needed[0] === "contentSafety" ? "content_safety_service_missing" : "embeddings_service_missing",
        });
      }
    }
    // A service sent as it is stored passes as it did (an edit of the settings alone must not be refused for
    // a service written before the operator's host list); a new or changed one is held to the list.
    const grants = this.gatewayGrants(ctx.principal.tenantId);
    for (const name of ["contentSafety", "embeddings"] as const) {
      const service = spec.services?.[name];
      const unchanged = service !== undefined && canonicalJson(service) === canonicalJson(stored?.[name] ?? null);
      if (service) checkManagedIdentity(serviceIdentityUse(name, service), unchanged ? { identities: grants.identities, sharedHosts: "any" } : grants, `body.services.${name}`);
    }
    const written = await this.doc.write(ctx, { settings: spec.settings, ...(spec.services ? { services: spec.services } : {}) }, ifMatch);
    return { ...written, services: written.services ?? {} };
  }
}

/**
 * Controls that call a service need it configured at the tenant: content safety (an Azure AI Content
 * Safety endpoint) and the semantic cache (an embeddings deployment). Checked when settings are
 * written, at whatever scope switches the control on (a 400 naming what is missing), so a publish
 * never fails on it later. `scopes` are the settings from the tenant down to the scope being written.
 */
export function requireServices(scopes: unknown[], services: z.output<typeof Services>, field: string): void {
  const merged = mergeSettings(...(scopes as Parameters<typeof mergeSettings>));
  const errors = [];
  if (merged.contentSafety && !services.contentSafety) {
    errors.push({ field: `${field}.contentSafety`, message: "content safety needs the tenant's Azure AI Content Safety service: set services.contentSafety in the tenant settings first" });
  }
  if (merged.semanticCache && !services.embeddings) {
    errors.push({ field: `${field}.semanticCache`, message: "the semantic cache needs the tenant's embeddings deployment: set services.embeddings in the tenant settings first" });
  }
  if (errors.length) {
    fail({ kind: "validation", detail: "a control is switched on whose service is not configured", errors, reason: merged.contentSafety && !services.contentSafety ? "content_safety_service_missing" : "embeddings_service_missing" });
  }
}

/**
 * Content safety on in a scope whose region rule (`regions.allowed`, from the tenant down to the scope)
 * excludes the region the tenant's content-safety service states: every prompt of that scope would be
 * screened outside its regions (ADR 024). The reason, or undefined (content safety off, no rule, no region
 * stated — the policy preview warns of that one — or a region the rule allows). Project and model settings are
 * held to the tenant's floors first, as the compiler holds them.
 */
export function contentSafetyRegionGap(t: { settings: z.output<typeof Settings>; services: z.output<typeof Services> }, project: unknown, model?: unknown): string | undefined {
  const region = t.services.contentSafety?.region;
  if (region === undefined) return undefined;
  const projectSettings = clampToFloor(t.settings, project as Settings | undefined);
  const eff = mergeSettings(t.settings, projectSettings, model === undefined ? undefined : (clampToFloor(t.settings, model as Settings | undefined) as never));
  if (!eff.contentSafety || serviceRegionFit(eff, t.services.contentSafety) !== "excluded") return undefined;
  const allowed = eff["regions.allowed"]?.value ?? [];
  return `content safety is on and regions.allowed (${allowed.length ? allowed.join(", ") : "none"}) excludes ${region}, the region of the content-safety service that screens every prompt`;
}

/**
 * A key whose tier screens its prompts (`limits.contentSafety`, an agent's guardrail level) as the gateway applies
 * it in one project: the key's own, or one it is shared with. `models`: the names of the project's models the key
 * reaches there; absent: every one.
 */
export interface KeyReach {
  /** How the refusal names the key ("key key_…", or "the key" for the one being written). */
  label: string;
  level: string;
  models?: readonly string[] | undefined;
}

/** A key document as far as where its content safety applies: its project, model scope (ids), status and shares. */
export interface KeyOfProject {
  projectId: string;
  id: string;
  status?: string | undefined;
  scopes?: { models?: readonly string[] | undefined } | undefined;
  limits: { contentSafety?: string | undefined };
  shares?: readonly { projectId: string; status: string }[] | undefined;
}

/**
 * Where each key with a content-safety level screens prompts, by project: its own project and every project it
 * has an active share with, as the compiler applies its tier (src/domain/keys/profiles.ts), with the model names it
 * reaches there (its scoped models' names; absent: every model). A revoked or expired key calls nothing.
 */
export function keyReaches(keys: readonly KeyOfProject[], projects: readonly { id: string; models?: readonly { id: string; name: string }[] | undefined }[]): Map<string, KeyReach[]> {
  const out = new Map<string, KeyReach[]>();
  const byId = new Map(projects.map((p) => [p.id, p]));
  for (const k of keys) {
    const level = k.limits.contentSafety;
    if (!level || k.status === "revoked" || k.status === "expired") continue;
    const own = byId.get(k.projectId)?.models ?? [];
    const models = k.scopes?.models === undefined ? undefined : own.filter((m) => k.scopes!.models!.includes(m.id)).map((m) => m.name);
    const targets = [k.projectId, ...(k.shares ?? []).filter((x) => x.status === "active").map((x) => x.projectId)];
    for (const target of targets) {
      const label = target === k.projectId ? `key ${k.id}` : `key ${k.id} of project ${k.projectId} (shared)`;
      const list = out.get(target) ?? [];
      list.push({ label, level, models });
      out.set(target, list);
    }
  }
  return out;
}

/**
 * A key tier's content safety in a scope whose region rule excludes the content-safety service's stated region
 * (ADR 024): the tier's `llm-content-safety` runs for the key's calls whatever the scope's own content safety is,
 * so only the rule counts. The reason, or undefined. Held to the tenant's floors, as {@link contentSafetyRegionGap}.
 */
export function keyContentSafetyRegionGap(t: { settings: z.output<typeof Settings>; services: z.output<typeof Services> }, level: string, project: unknown, model?: unknown): string | undefined {
  const region = t.services.contentSafety?.region;
  if (region === undefined) return undefined;
  const eff = mergeSettings(t.settings, clampToFloor(t.settings, project as Settings | undefined), model === undefined ? undefined : (clampToFloor(t.settings, model as Settings | undefined) as never));
  if (serviceRegionFit(eff, t.services.contentSafety) !== "excluded") return undefined;
  const allowed = eff["regions.allowed"]?.value ?? [];
  return `its content safety (${level}) screens every prompt it sends, and regions.allowed (${allowed.length ? allowed.join(", ") : "none"}) excludes ${region}, the region of the content-safety service`;
}

/**
 * The {@link keyContentSafetyRegionGap}s of keys in one project: each key on the project (the rule every call there
 * is held to) and on each of the project's models it reaches; `onlyModel`: a model write, only that model.
 * One string per key and scope, naming both.
 */
export function keyRegionGaps(
  t: { settings: z.output<typeof Settings>; services: z.output<typeof Services> },
  project: unknown,
  models: readonly { name: string; settings?: unknown }[],
  keys: readonly KeyReach[],
  onlyModel?: { name: string; settings?: unknown },
): string[] {
  const out: string[] = [];
  for (const k of keys) {
    const reaches = (name: string) => k.models === undefined || k.models.includes(name);
    const scopes: [string, unknown][] = onlyModel
      ? reaches(onlyModel.name)
        ? [[`model ${onlyModel.name}`, onlyModel.settings ?? {}]]
        : []
      : [["the project", undefined], ...models.filter((m) => reaches(m.name)).map((m): [string, unknown] => [`model ${m.name}`, m.settings ?? {}])];
    for (const [who, model] of scopes) {
      const gap = keyContentSafetyRegionGap(t, k.level, project, model);
      if (gap) out.push(`${k.label} on ${who}: ${gap}`);
    }
  }
  return out;
}

/** The 400 for a write that introduces {@link contentSafetyRegionGap}s: `field` names what the write changed. */
export function refuseRegionGap(field: string, gaps: readonly string[]): never {
  return fail({
    kind: "validation",
    detail: "content safety cannot be skipped, and its service would screen prompts outside the regions a scope allows",
    errors: gaps.map((message) => ({ field, message: `${message}: allow that region there, or state a content-safety service in an allowed region` })),
    reason: "service_region_not_allowed",
  });
}

/**
 * Content-safety thresholds on the severity scale in force: with `FourSeverityLevels` (the default) the
 * service answers 0, 2, 4 or 6, and the gateway's llm-content-safety takes only those thresholds, so an odd
 * one would not compile (src/policy/compile/genai.ts). Checked on the settings merged from the tenant down
 * to the scope being written (a threshold may be set at one scope and the scale at another): a 400 naming
 * each category here, never a project isolated from every later publish.
 */
export function requireSeverityScale(scopes: unknown[], field: string): void {
  const cs = mergeSettings(...(scopes as Parameters<typeof mergeSettings>)).contentSafety?.value;
  if (!cs || cs.outputType !== "FourSeverityLevels") return;
  const odd = cs.categories.filter((c) => c.threshold % 2 !== 0);
  if (odd.length) {
    fail({
      kind: "validation",
      detail: "content-safety thresholds off the severity scale in force",
      errors: odd.map((c) => ({ field: `${field}.contentSafety.categories.${c.name}`, message: `with FourSeverityLevels a threshold is 0, 2, 4 or 6 (the scale in force here has no ${c.threshold}); set EightSeverityLevels for odd thresholds` })),
    });
  }
}

/**
 * What below the tenant needs of the tenant settings `settings`: where each service is needed (the first
 * project, model — held to the tenant's floors, as the compiler holds them — or key that switches its control
 * on), and the first project or model whose thresholds these settings would put off their severity scale.
 * The registry's projects with their models, and each project's keys.
 */
export function belowTenant(
  settings: z.output<typeof Settings>,
  projects: readonly { id: string; name: string; settings?: unknown; models?: readonly { id: string; name: string; settings?: unknown }[] }[],
  /** Every key document (revoked ones too: their profiles are compiled like the others, src/domain/keys/profiles.ts). */
  keys: readonly KeyOfProject[],
  /** The tenant's settings as stored, and each project's environment: for what the change takes from test and prod projects. */
  gates?: { previous: Settings | undefined; environments: ReadonlyMap<string, Project["environment"]> },
  /** The tenant's services as written and as stored: for the content-safety region gaps the change introduces. */
  services?: ServicesChange,
): BelowTenant {
  const out: BelowTenant = { services: {} };
  if (services) {
    const next = { settings, services: services.next };
    const before = { settings: gates?.previous ?? {}, services: services.previous };
    const gaps: string[] = [];
    for (const p of projects) {
      const scopes: [string, unknown][] = [[`project ${p.name} (${p.id})`, undefined], ...(p.models ?? []).map((m): [string, unknown] => [`model ${m.name} (${m.id}) of project ${p.id}`, m.settings ?? {}])];
      for (const [who, model] of scopes) {
        const gap = contentSafetyRegionGap(next, p.settings, model);
        if (gap && !contentSafetyRegionGap(before, p.settings, model)) gaps.push(`${who}: ${gap}`);
      }
    }
    // Keys whose tier screens their prompts: in their own project and in each one they are shared with.
    const reaches = keyReaches(keys, projects);
    for (const p of projects) {
      const inProject = reaches.get(p.id) ?? [];
      if (!inProject.length) continue;
      const had = new Set(keyRegionGaps(before, p.settings, p.models ?? [], inProject));
      for (const gap of keyRegionGaps(next, p.settings, p.models ?? [], inProject)) if (!had.has(gap)) gaps.push(`project ${p.name} (${p.id}): ${gap}`);
    }
    if (gaps.length) out.regionGaps = gaps;
  }
  if (gates) {
    const lost: string[] = [];
    for (const p of projects) {
      const environment = gates.environments.get(p.id);
      if (!environment) continue;
      const project = { settings: p.settings as Settings | undefined };
      const scopes = [undefined, ...(p.models ?? []).map((m) => ({ label: `model ${m.name}`, settings: m.settings as ModelSettings | undefined }))];
      for (const model of scopes) {
        const had = new Set(gateGapsOfWrite(environment, gates.previous ?? {}, project, model));
        for (const gap of gateGapsOfWrite(environment, settings, project, model)) if (!had.has(gap)) lost.push(`${environment} project ${p.name} (${p.id}): ${gap}`);
      }
    }
    if (lost.length) out.gateGaps = lost;
  }
  const found = (name: ServiceName, who: string) => (out.services[name] ??= who);
  const scale = (merged: ReturnType<typeof mergeSettings>, who: string) => {
    const cs = merged.contentSafety?.value;
    const odd = cs?.outputType === "FourSeverityLevels" ? cs.categories.find((c) => c.threshold % 2 !== 0) : undefined;
    if (odd) out.offScale ??= `${who} sets ${odd.name} to ${odd.threshold}, which FourSeverityLevels does not have`;
  };
  for (const p of projects) {
    const project = clampToFloor(settings, p.settings as Settings | undefined);
    const merged = mergeSettings(settings, project);
    if (merged.contentSafety) found("contentSafety", `project ${p.name} (${p.id})`);
    if (merged.semanticCache) found("embeddings", `project ${p.name} (${p.id})`);
    scale(merged, `project ${p.name} (${p.id})`);
    for (const m of p.models ?? []) {
      const withModel = mergeSettings(settings, project, clampToFloor(settings, m.settings as Settings | undefined) as never);
      if (withModel.contentSafety) found("contentSafety", `model ${m.name} (${m.id}) of project ${p.id}`);
      scale(withModel, `model ${m.name} (${m.id}) of project ${p.id}`);
    }
  }
  const key = keys.find((k) => k.limits.contentSafety);
  if (key) found("contentSafety", `key ${key.id} of project ${key.projectId}`);
  return out;
}
