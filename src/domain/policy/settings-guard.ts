import { loosenings } from "../../policy/floors.js";
import type { ModelSettings, Settings } from "../../policy/settings.js";
import { AppError, fail } from "../errors.js";
import { gateGapsOfWrite, type ProjectControls } from "../projects/gates.js";
import type { Project } from "../projects/schema.js";
import { canonicalJson } from "../../util/canonical-json.js";
import { contentSafetyRegionGap, keyRegionGaps, refuseRegionGap, requireServices, requireSeverityScale, type KeyReach, type TenantSettingsService } from "./tenant-settings.js";

/** A project, or one of its models on top of it, as the environment's gates read it. */
export interface GateScope {
  project: ProjectControls;
  model?: { label: string; settings?: ModelSettings | undefined; name?: string | undefined } | undefined;
}

/**
 * What a project or model may set, given the tenant's settings: checked when a project's or a model's
 * settings are written, so what is stored always compiles and never undercuts the tenant:
 * - a control whose service is missing is a 400 here, never a failed publish later (ADR 009), and so is a
 *   content-safety threshold off the severity scale in force (requireSeverityScale);
 * - tenant controls are floors (src/policy/floors.ts): loosening one is a 400 with reason
 *   `loosens_tenant_control` naming each field; an approved exemption is the way below a floor.
 */
export class SettingsGuard {
  /** A project's models with their own settings (registered once the models pillar exists: services.ts). */
  private models: (tenantId: string, projectId: string) => Promise<readonly { name: string; settings?: ModelSettings | undefined }[]> = () => Promise.resolve([]);

  /** The keys whose tier screens prompts in a project: its own and those shared into it (registered with the keys: services.ts). */
  private keys: (tenantId: string, projectId: string) => Promise<readonly KeyReach[]> = () => Promise.resolve([]);

  constructor(private readonly tenant: Pick<TenantSettingsService, "scope">) {}

  /** Registers where a project's content-safety keys are read: a region rule written there is held on them too (ADR 024). */
  keysOf(reader: (tenantId: string, projectId: string) => Promise<readonly KeyReach[]>): void {
    this.keys = reader;
  }

  /**
   * A key with a content-safety level (created, or shared into a project) is applied by its tier to every call it
   * makes in `projectId`, so the region rule holds for it as for a scope's content safety (ADR 024): a 400
   * `service_region_not_allowed` on `field` when the project, or a model the key reaches there, has a region rule
   * excluding the content-safety service's stated region.
   */
  async checkKeyRegions(tenantId: string, projectId: string, projectSettings: Settings | undefined, key: KeyReach, field: string): Promise<void> {
    const t = await this.tenant.scope(tenantId);
    if (t.services.contentSafety?.region === undefined) return;
    const gaps = keyRegionGaps(t, projectSettings, await this.models(tenantId, projectId), [key]);
    if (gaps.length) refuseRegionGap(field, gaps);
  }

  /** Registers where a project's models are read: a project edit is held to the gates on each of them too. */
  modelsOf(reader: (tenantId: string, projectId: string) => Promise<readonly { name: string; settings?: ModelSettings | undefined }[]>): void {
    this.models = reader;
  }

  /**
   * `project`: the project's settings (being written, or the model's project's); `model`: the model's
   * settings being written, if any. `field` names the settings being written (e.g. "body.settings").
   */
  async check(tenantId: string, project: Settings | undefined, model: unknown, field: string): Promise<void> {
    checkSettings(await this.tenant.scope(tenantId), project, model, field);
  }

  /**
   * A write to a project (or one of its models) never leaves it, or one of the project's models, with content
   * safety on and a region rule that excludes the tenant's content-safety service's stated region (ADR 024):
   * a 400 `service_region_not_allowed`. Like the gates, only what the write introduces counts: `before` is
   * the same scope as it stands (absent for a new one). `field` names the settings written ("body.settings");
   * `projectId`: the project written (held on each of its models too) or the model's project; the keys whose tier
   * screens prompts there (their own project's, or shared into it) are held to the rule as well.
   */
  async checkServiceRegions(tenantId: string, after: GateScope, before: GateScope | undefined, field: string, projectId?: string): Promise<void> {
    // Only a write to a scope's region rule or content safety can send its prompts outside the service's
    // region; any other write (most creates and edits) is let through without reading the tenant.
    const touched = (s: { regions?: unknown; contentSafety?: unknown } | undefined) => canonicalJson({ regions: s?.regions ?? null, contentSafety: s?.contentSafety ?? null });
    const writes = after.model ? after.model.settings : after.project.settings;
    const had = before ? (before.model ? before.model.settings : before.project.settings) : undefined;
    if (touched(writes) === touched(had)) return;
    const t = await this.tenant.scope(tenantId);
    if (t.services.contentSafety?.region === undefined) return;
    const gap = (scope: GateScope | undefined, model: unknown) => (scope ? contentSafetyRegionGap(t, scope.project.settings, model) : undefined);
    const gaps: string[] = [];
    const own = gap(after, after.model ? (after.model.settings ?? {}) : undefined);
    if (own && !gap(before, before?.model ? (before.model.settings ?? {}) : undefined)) gaps.push(`${after.model?.label ?? "the project"}: ${own}`);
    if (projectId !== undefined && !after.model) {
      for (const m of await this.models(tenantId, projectId)) {
        const next = gap(after, m.settings ?? {});
        if (next && !gap(before, m.settings ?? {})) gaps.push(`model ${m.name}: ${next}`);
      }
    }
    // Keys whose tier screens their prompts here: the tier applies whatever the scope's own content safety is.
    const keys = projectId !== undefined ? await this.keys(tenantId, projectId) : [];
    if (keys.length) {
      const models = after.model ? [] : await this.models(tenantId, projectId!);
      const only = (scope: GateScope | undefined) => (scope?.model?.name !== undefined ? { name: scope.model.name, settings: scope.model.settings } : undefined);
      if (!after.model || only(after)) {
        const had = new Set(before ? keyRegionGaps(t, before.project.settings, models, keys, only(before)) : []);
        for (const g of keyRegionGaps(t, after.project.settings, models, keys, only(after))) if (!had.has(g)) gaps.push(g);
      }
    }
    if (!gaps.length) return;
    refuseRegionGap(canonicalJson(writes?.regions ?? null) !== canonicalJson(had?.regions ?? null) ? `${field}.regions.allowed` : `${field}.contentSafety`, gaps);
  }

  /**
   * A write to a project (or one of its models) in `environment` keeps what that environment's gates
   * require (src/domain/projects/gates.ts): a 409 `environment_gate_failed` naming what the write would
   * lose. `before`: the same scope as it stands (absent for a new project): a gap it already has (a project
   * promoted before the rule, a tenant default since removed) does not refuse an unrelated edit.
   */
  async checkEnvironment(tenantId: string, environment: Project["environment"], after: GateScope, before?: GateScope, projectId?: string): Promise<void> {
    if (environment === "sandbox" || environment === "dev") return;
    const tenant = (await this.tenant.scope(tenantId)).settings;
    const had = new Set(before ? gateGapsOfWrite(environment, tenant, before.project, before.model) : []);
    const gaps = gateGapsOfWrite(environment, tenant, after.project, after.model).filter((g) => !had.has(g));
    // A project's write (`projectId`): each of its models sits on the project's settings, so it is held on them too.
    if (projectId !== undefined && !after.model) {
      for (const m of await this.models(tenantId, projectId)) {
        const model = { label: `model ${m.name}`, settings: m.settings };
        const hadModel = new Set(before ? gateGapsOfWrite(environment, tenant, before.project, model) : []);
        gaps.push(...gateGapsOfWrite(environment, tenant, after.project, model).filter((g) => !hadModel.has(g)));
      }
    }
    if (gaps.length) fail({ kind: "conflict", detail: `a ${environment} project keeps its environment's gates: ${gaps.join("; ")} (an approved exemption is the way below a control)`, reason: "environment_gate_failed" });
  }
}

/** The guard's rules against given tenant settings (saved, or drafted in the policy editor): throws a 400. */
export function checkSettings(t: { settings: Settings; services: Parameters<typeof requireServices>[1] }, project: Settings | undefined, model: unknown, field: string): void {
  const written = model === undefined ? project : model;
  const loose = loosenings(t.settings, written);
  if (loose.length) {
    throw new AppError({
      kind: "validation",
      detail: "the settings loosen tenant controls: a project or model may tighten a tenant control, never loosen it; request an exemption instead",
      errors: loose.map((l) => ({ field: `${field}.${l.path}`, message: `${l.message} (${l.control}; request an exemption to go below the tenant's floor)` })),
      reason: "loosens_tenant_control",
    });
  }
  requireSeverityScale([t.settings, project, model], field);
  requireServices([t.settings, project, model], t.services, field);
}
