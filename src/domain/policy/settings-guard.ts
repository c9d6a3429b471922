import type { Settings } from "../../policy/settings.js";
import { requireServices, type TenantSettingsService } from "./tenant-settings.js";

/**
 * What a project or model may set, given the tenant's settings: checked when a project's or a model's
 * settings are written, so what is stored always compiles (ADR 009: a control whose service is missing
 * is a 400 here, never a failed publish later).
 */
export class SettingsGuard {
  constructor(private readonly tenant: Pick<TenantSettingsService, "scope">) {}

  /** `field` names the settings being written in error messages (e.g. "body.settings"). */
  async check(tenantId: string, project: Settings | undefined, model: unknown, field: string): Promise<void> {
    const t = await this.tenant.scope(tenantId);
    requireServices([t.settings, project, model], t.services, field);
  }
}
