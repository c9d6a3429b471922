import { z } from "zod";
import { Services } from "../../policy/input.js";
import { mergeSettings, Settings } from "../../policy/settings.js";
import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, type RequestContext, type Role } from "../common.js";
import { fail } from "../errors.js";
import { parseOrThrow } from "../validation.js";

/** The ETag of tenant settings never written: send it in If-Match to write them the first time. */
export const INITIAL_ETAG = "initial";
const DOC_ID = "settings.tenant";
const READERS: Role[] = ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"];

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

interface TenantSettingsDoc extends StoredDoc {
  docType: "tenantSettings";
  settings: z.output<typeof Settings>;
  services?: z.output<typeof Services>;
  updatedAt: string;
  updatedBy: string;
}

/** Tenant-scope governance settings: one document per tenant, written with If-Match, audited. */
export class TenantSettingsService {
  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
  ) {}

  async get(ctx: RequestContext): Promise<TenantSettings> {
    if (!READERS.some((r) => ctx.principal.roles.has(r))) fail({ kind: "forbidden", detail: "reading settings requires a tenant role" });
    return this.read(ctx.principal.tenantId);
  }

  /** For the compiler: the tenant's settings (empty when never written). */
  async current(tenantId: string): Promise<z.output<typeof Settings>> {
    return (await this.scope(tenantId)).settings;
  }

  /** The tenant's settings and services in one read (what project and model writes check against). */
  async scope(tenantId: string): Promise<{ settings: z.output<typeof Settings>; services: z.output<typeof Services> }> {
    const doc = await this.store.read<TenantSettingsDoc>(this.partition(tenantId), DOC_ID);
    return { settings: doc?.settings ?? {}, services: doc?.services ?? {} };
  }

  async put(ctx: RequestContext, input: unknown, ifMatch: string): Promise<TenantSettings> {
    const { principal } = ctx;
    if (!principal.roles.has("TenantAdmin")) fail({ kind: "forbidden", detail: "changing tenant settings requires TenantAdmin" });
    const spec = parseOrThrow(TenantSettingsSpec, input, "body");
    requireServices([spec.settings], spec.services ?? {}, "body.settings");
    const partition = this.partition(principal.tenantId);
    const current = await this.store.read<TenantSettingsDoc>(partition, DOC_ID);
    if (!etagMatches(current?._etag ?? INITIAL_ETAG, ifMatch)) fail({ kind: "preconditionFailed" });
    const doc: TenantSettingsDoc = {
      id: DOC_ID,
      ...partition,
      docType: "tenantSettings",
      settings: spec.settings,
      ...(spec.services ? { services: spec.services } : {}),
      updatedAt: this.clock.now().toISOString(),
      updatedBy: principal.userId,
    };
    const view = (d: TenantSettingsDoc) => ({ settings: d.settings, services: d.services ?? {}, updatedAt: d.updatedAt, updatedBy: d.updatedBy });
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: "settings.update",
      resource: "/settings",
      ...(current ? { before: view(current) } : {}),
      after: view(doc),
      ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
      event: { type: "aigov.settings.updated.v1", subject: `/tenants/${principal.tenantId}/settings`, data: view(doc) },
      onFailure: (_i, status) => (status === 409 ? { kind: "preconditionFailed" } : undefined),
    });
    return { ...view(doc), etag: etagValue(etag ?? "") };
  }

  private async read(tenantId: string): Promise<TenantSettings> {
    const doc = await this.store.read<TenantSettingsDoc>(this.partition(tenantId), DOC_ID);
    if (!doc) return { settings: {}, services: {}, etag: INITIAL_ETAG };
    return { settings: doc.settings, services: doc.services ?? {}, updatedAt: doc.updatedAt, updatedBy: doc.updatedBy, etag: etagValue(doc._etag) };
  }

  private partition(tenantId: string): Partition {
    return { tenantId, scopeId: TENANT_SCOPE };
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
