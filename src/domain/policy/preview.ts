import { createHash } from "node:crypto";
import { z } from "zod";
import { mapLimit } from "../../util/map-limit.js";
import { PolicyCompileError } from "../../policy/errors.js";
import type { CompileResult, CompilerInputIn, ExplainEntry } from "../../policy/index.js";
import { artifactRef, type GatewayArtifact } from "../../ports/gateway.js";
import type { RequestContext } from "../common.js";
import { AppError } from "../errors.js";
import type { Model } from "../models/schema.js";
import type { ModelService } from "../models/service.js";
import type { Project } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import type { TenantSettingsService } from "./tenant-settings.js";

export const PolicyPreview = z
  .object({
    projectId: z.string(),
    artifacts: z.array(z.object({ ref: z.string(), kind: z.string() }).catchall(z.unknown())).meta({ description: "What a publish would send for this project, in publish order" }),
    sizes: z.array(z.object({ ref: z.string(), bytes: z.number().int() })),
    explain: z.array(z.object({ ref: z.string(), path: z.string(), control: z.unknown(), scope: z.unknown(), note: z.string().optional() })).optional(),
  })
  .meta({ id: "PolicyPreview" });
export type PolicyPreview = z.output<typeof PolicyPreview>;

/** Compiler ids are ≤ 24 characters of [a-z0-9_] and unique in the tenant; registry backend ids are per model. */
const backendId = (model: Model, backend: string) => `b_${createHash("sha256").update(`${model.id}/${backend}`).digest("hex").slice(0, 22)}`;
/** Locally there is no vault: a synthetic vault URI names the secret the same way Key Vault would. */
const LOCAL_VAULT = "https://aigov-local.vault.azure.net";

type ProjectInput = NonNullable<CompilerInputIn["projects"]>[number];

/** One project of the registry, as the policy compiler sees it. */
export function toProjectInput(project: Project, models: Model[], vaultUri: string | undefined): ProjectInput {
  const vault = (vaultUri ?? LOCAL_VAULT).replace(/\/$/, "");
  return {
    id: project.id,
    settings: project.settings ?? {},
    name: project.name,
    ...(project.description ? { description: project.description } : {}),
    pillars: project.pillars,
    models: models.map((m) => ({
      id: m.id,
      name: m.name,
      deployment: m.modelName,
      ...(m.displayName ? { displayName: m.displayName } : {}),
      provider: m.provider,
      status: m.status,
      ...(m.sunsetDate ? { sunsetDate: m.sunsetDate } : {}),
      ...(m.status === "deprecated" && m.deprecatedAt ? { deprecatedAt: m.deprecatedAt } : {}),
      ...(m.pricing ? { pricing: { currency: m.pricing.currency, inputPerMillionTokens: m.pricing.inputPer1kTokens * 1000, outputPerMillionTokens: m.pricing.outputPer1kTokens * 1000 } } : {}),
      allowedDataClasses: m.dataClasses,
      settings: m.settings ?? {},
      ...(m.split ? { abSplit: m.split.variants } : {}),
      backends: m.backends.map((b) => ({
        id: backendId(m, b.id),
        url: b.url,
        region: b.region,
        priority: b.priority,
        weight: b.weight,
        ...(b.version ? { version: b.version } : {}),
        auth:
          b.credential.type === "managedIdentity"
            ? { type: "managedIdentity" as const, resource: b.credential.audience }
            : {
                type: "keyVaultSecret" as const,
                namedValueId: `nv-${backendId(m, b.id)}`,
                // Versionless: a new key version reaches the gateway through Key Vault rotation.
                secretIdentifier: `${vault}/secrets/${b.credential.secretRef.name}`,
                header: b.credential.header,
              },
      })),
    })),
  };
}

/** The registry and the settings of every scope, as the policy compiler sees them. */
export function toCompilerInput(
  tenantId: string,
  tenant: { settings: CompilerInputIn["settings"]; services: CompilerInputIn["services"] },
  project: Project,
  models: Model[],
  vaultUri: string | undefined,
  gatewayKey?: string,
): CompilerInputIn {
  return { tenantId, ...(gatewayKey ? { gatewayKey } : {}), settings: tenant.settings ?? {}, services: tenant.services ?? {}, projects: [toProjectInput(project, models, vaultUri)] };
}

/** A last step on the compiler input before compiling (active exemptions relax controls here). */
export type InputTransform = (tenantId: string, input: CompilerInputIn) => Promise<CompilerInputIn>;
const asIs: InputTransform = (_tenantId, input) => Promise.resolve(input);

/** The compiler (and xmlbuilder2) load on first use: they would cost every cold start ~60 ms. */
function compileLazily(input: CompilerInputIn): CompileResult {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { compile } = require("../../policy/compile.js") as typeof import("../../policy/compile.js");
  try {
    return compile(input);
  } catch (err) {
    if (err instanceof PolicyCompileError) {
      throw new AppError({ kind: "conflict", detail: `the registry cannot be compiled for the gateway: ${err.message}` });
    }
    throw err;
  }
}

/** Compiles a whole tenant (every project) from the registry and the settings: what a publish sends. */
export class TenantCompiler {
  constructor(
    private readonly projects: ProjectService,
    private readonly models: ModelService,
    private readonly tenantSettings: TenantSettingsService,
    private readonly vaultUri: string | undefined,
    private readonly transform: InputTransform = asIs,
    /** An operator-assigned gateway key for the tenant (names.ts); derived from the tenant id when undefined. */
    private readonly gatewayKey: (tenantId: string) => string | undefined = () => undefined,
  ) {}

  async compile(tenantId: string): Promise<CompileResult> {
    return compileLazily(await this.input(tenantId));
  }

  /** The compiler input of the tenant, with every transform applied (keys, exemptions). */
  async input(tenantId: string): Promise<CompilerInputIn> {
    const [projects, tenant] = await Promise.all([this.projects.listAll(tenantId), this.tenantSettings.scope(tenantId)]);
    const inputs: ProjectInput[] = await mapLimit(projects, 8, async (p) => toProjectInput(p, await this.models.listAll(tenantId, p.id), this.vaultUri));
    const key = this.gatewayKey(tenantId);
    return this.transform(tenantId, { tenantId, ...(key ? { gatewayKey: key } : {}), settings: tenant.settings, services: tenant.services, projects: inputs });
  }
}

/** What the gateway would get for one project: compiled from the registry, nothing published. */
export class PolicyPreviewService {
  constructor(
    private readonly projects: ProjectService,
    private readonly models: ModelService,
    private readonly tenantSettings: TenantSettingsService,
    private readonly vaultUri: string | undefined,
    private readonly transform: InputTransform = asIs,
    private readonly gatewayKey: (tenantId: string) => string | undefined = () => undefined,
  ) {}

  async preview(ctx: RequestContext, projectId: string, explain: boolean): Promise<PolicyPreview> {
    const project = await this.projects.get(ctx, projectId);
    const models = await this.models.listAll(ctx.principal.tenantId, projectId);
    const tenantId = ctx.principal.tenantId;
    const tenant = await this.tenantSettings.scope(tenantId);
    const result = compileLazily(await this.transform(tenantId, toCompilerInput(tenantId, tenant, project, models, this.vaultUri, this.gatewayKey(tenantId))));
    const artifacts = result.artifacts.map((a: GatewayArtifact) => ({ ref: artifactRef(a), ...a }));
    return {
      projectId,
      artifacts,
      sizes: result.sizes,
      ...(explain ? { explain: result.explain.map((e: ExplainEntry) => ({ ...e })) } : {}),
    };
  }
}
