import { loosenings } from "../../policy/floors.js";
import type { Settings } from "../../policy/settings.js";
import { AppError } from "../errors.js";
import { requireServices, type TenantSettingsService } from "./tenant-settings.js";

/**
 * What a project or model may set, given the tenant's settings: checked when a project's or a model's
 * settings are written, so what is stored always compiles and never undercuts the tenant:
 * - a control whose service is missing is a 400 here, never a failed publish later (ADR 009);
 * - tenant controls are floors (src/policy/floors.ts): loosening one is a 400 with reason
 *   `loosens_tenant_control` naming each field; an approved exemption is the way below a floor.
 */
export class SettingsGuard {
  constructor(private readonly tenant: Pick<TenantSettingsService, "scope">) {}

  /**
   * `project`: the project's settings (being written, or the model's project's); `model`: the model's
   * settings being written, if any. `field` names the settings being written (e.g. "body.settings").
   */
  async check(tenantId: string, project: Settings | undefined, model: unknown, field: string): Promise<void> {
    checkSettings(await this.tenant.scope(tenantId), project, model, field);
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
  requireServices([t.settings, project, model], t.services, field);
}
