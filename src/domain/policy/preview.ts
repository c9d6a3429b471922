import type { PolicyDraft, PolicyPreview } from "./preview-schema.js";
import { checkSettings } from "./settings-guard.js";
import { mapLimit } from "../../util/map-limit.js";
import { PolicyCompileError } from "../../policy/errors.js";
import { applyFloors } from "../../policy/floors.js";
import { MANAGED_IDENTITY_REFUSED } from "../../policy/identity.js";
import type { CompileResult, CompilerInputIn, ExplainEntry } from "../../policy/index.js";
import { serviceRegionFit } from "../../policy/service-regions.js";
import { mergeSettings, type CompilerModelSettings, type CompilerSettings, type ModelSettings, type Settings } from "../../policy/settings.js";
import { artifactRef, type GatewayArtifact } from "../../ports/gateway.js";
import type { RequestContext } from "../common.js";
import { AppError, fail } from "../errors.js";
import type { Project } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import type { RegistrySnapshot } from "../publishing/registry.js";
import type { TenantSettingsService } from "./tenant-settings.js";

export { PolicyPreview } from "./preview-schema.js";

type ProjectInput = NonNullable<CompilerInputIn["projects"]>[number];

/** A pillar's part of a project's compiler input (models: `models`), from the registry as it is. */
export type PillarInput = (tenantId: string, project: Project, vaultUri: string | undefined) => Promise<Partial<ProjectInput>>;

/** One project of the registry, as the policy compiler sees it: its own fields, then each pillar's part. */
export async function toProjectInput(tenantId: string, project: Project, pillars: readonly PillarInput[], vaultUri: string | undefined): Promise<ProjectInput> {
  const parts = await Promise.all(pillars.map((contribute) => contribute(tenantId, project, vaultUri)));
  return Object.assign(
    {
      id: project.id,
      settings: project.settings ?? {},
      name: project.name,
      ...(project.description ? { description: project.description } : {}),
      pillars: project.pillars,
    },
    ...parts,
  ) as ProjectInput;
}

/** What an operator assigned the tenant on its gateway, as compiler input: its artifact id key, its identities. */
export type TenantGatewayInput = (tenantId: string) => Pick<CompilerInputIn, "gatewayKey" | "gatewayIdentities" | "gatewaySharedHosts">;

/** The registry and the settings of every scope, as the policy compiler sees them (tenant controls as floors). */
export async function toCompilerInput(
  tenantId: string,
  tenant: { settings: CompilerInputIn["settings"]; services: CompilerInputIn["services"] },
  project: Project,
  pillars: readonly PillarInput[],
  vaultUri: string | undefined,
  gateway: ReturnType<TenantGatewayInput> = {},
  /** Drafted model settings by model id (the policy editor), in place of the saved ones. */
  modelSettings: Readonly<Record<string, ModelSettings | null>> = {},
): Promise<CompilerInputIn> {
  const input = await toProjectInput(tenantId, project, pillars, vaultUri);
  const models = input.models?.map((m) => (m.id in modelSettings ? { ...m, settings: modelSettings[m.id] ?? {} } : m));
  return applyFloors({ tenantId, ...gateway, settings: tenant.settings ?? {}, services: tenant.services ?? {}, projects: [{ ...input, ...(models ? { models } : {}) }] });
}

/** A last step on the compiler input before compiling (active exemptions relax controls here). */
export type InputTransform = (tenantId: string, input: CompilerInputIn) => Promise<CompilerInputIn>;
const asIs: InputTransform = (_tenantId, input) => Promise.resolve(input);

/** The compiler (and xmlbuilder2) load on first use: they would cost every cold start ~60 ms. */
function compileRaw(input: CompilerInputIn): CompileResult {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { compile } = require("../../policy/compile.js") as typeof import("../../policy/compile.js");
  return compile(input);
}

const compileError = (err: PolicyCompileError) => new AppError({ kind: "conflict", detail: `the registry cannot be compiled for the gateway: ${err.message}`, reason: "registry_not_compilable" });

function compileLazily(input: CompilerInputIn): CompileResult {
  try {
    return compileRaw(input);
  } catch (err) {
    if (err instanceof PolicyCompileError) throw compileError(err);
    throw err;
  }
}

/** A project whose registry does not compile, and what the publish did instead. */
export interface IsolatedProject {
  projectId: string;
  name: string;
  error: string;
  /**
   * keptPublished: the project's last published registry was compiled instead; keptArtifacts: that does not
   * compile either, so the gateway keeps what it holds for the project (the publish sends and deletes none of
   * it); leftOut: it was never published, so it is not — or what it holds sends the gateway's identity where it
   * may not go (ADR 022), so it is taken off the gateway until that is mended.
   */
  outcome: "keptPublished" | "keptArtifacts" | "leftOut";
}

/** A tenant compiled for a publish: the artifacts, the registry they were compiled from, and any project isolated. */
export interface CompiledTenant {
  result: CompileResult;
  /** The registry the gateway holds after the publish: what was compiled, plus the published entry of each project kept as held (keptArtifacts). */
  registry: RegistrySnapshot;
  isolated: IsolatedProject[];
}

/** Compiles a whole tenant (every project) from the registry and the settings: what a publish sends. */
export class TenantCompiler {
  constructor(
    private readonly projects: ProjectService,
    private readonly pillars: readonly PillarInput[],
    private readonly tenantSettings: TenantSettingsService,
    private readonly vaultUri: string | undefined,
    private readonly transform: InputTransform = asIs,
    /** What an operator assigned the tenant: a gateway key (names.ts; derived from the tenant id when absent) and identities (identity.ts). */
    private readonly gateway: TenantGatewayInput = () => ({}),
  ) {}

  async compile(tenantId: string): Promise<CompileResult> {
    return compileLazily(await this.input(tenantId));
  }

  /** The registry as it is now (tenant settings, projects and models), before keys, floors and exemptions. */
  async registry(tenantId: string): Promise<RegistrySnapshot> {
    const [projects, tenant] = await Promise.all([this.projects.listAll(tenantId), this.tenantSettings.scope(tenantId)]);
    const inputs: ProjectInput[] = await mapLimit(projects, 8, (p) => toProjectInput(tenantId, p, this.pillars, this.vaultUri));
    return { tenantId, settings: tenant.settings, services: tenant.services, projects: inputs };
  }

  /** The compiler input of the tenant, with every transform applied (keys, exemptions). */
  async input(tenantId: string): Promise<CompilerInputIn> {
    return this.inputFrom(await this.registry(tenantId));
  }

  /**
   * A registry snapshot as compiler input: tenant controls as floors, then keys and exemptions (the
   * transform). The artifact ids take the tenant's gateway key as assigned now, whatever snapshot is
   * compiled (a rollback's, a system publish's base): the key is where the tenant's artifacts live, the
   * one reserved for it, not configuration to restore — a key the tenant gave up may be another's now.
   */
  inputFrom(reg: RegistrySnapshot): Promise<CompilerInputIn> {
    const { tenantId, settings, services, projects } = reg;
    return this.transform(tenantId, applyFloors({ tenantId, ...this.gateway(tenantId), settings, services, projects }));
  }

  /**
   * Compiles a registry snapshot for a publish. One project that does not compile (a damaged record,
   * a registration the compiler refuses) never blocks the tenant: it is found by compiling projects
   * one by one, then replaced by its entry in `published` (the registry the gateway holds) when that
   * compiles, or left out when it was never published — and reported by name. A published project
   * whose published entry does not compile now either (the keys and exemptions in force changed, or
   * the stored entry is damaged) is not compiled, but its published entry stays in the returned
   * registry and the publisher keeps its artifacts at the gateway (`keptArtifacts`): removing them
   * would take a live project off the gateway. A failure that is not any single project's (the
   * tenant's settings) still fails the publish (409).
   */
  async compileRegistry(reg: RegistrySnapshot, published?: RegistrySnapshot): Promise<CompiledTenant> {
    const attempt = async (r: RegistrySnapshot): Promise<CompileResult | PolicyCompileError> => {
      try {
        return compileRaw(await this.inputFrom(r));
      } catch (err) {
        if (err instanceof PolicyCompileError) return err;
        throw err;
      }
    };
    const whole = await attempt(reg);
    if (!(whole instanceof PolicyCompileError)) return { result: whole, registry: reg, isolated: [] };
    const alone = (p: ProjectInput): RegistrySnapshot => ({ ...reg, projects: [{ ...p, sharedKeyTiers: [] }] });
    const isolated: IsolatedProject[] = [];
    const compiled: ProjectInput[] = [];
    /** What the returned registry holds: the compiled projects and, in their place, the entries of those kept as held. */
    const held: ProjectInput[] = [];
    for (const p of reg.projects) {
      const own = await attempt(alone(p));
      if (!(own instanceof PolicyCompileError)) {
        compiled.push(p);
        held.push(p);
        continue;
      }
      const before = published?.projects.find((q) => q.id === p.id);
      const beforeCompiled = before ? await attempt(alone(before)) : undefined;
      // What the gateway holds for a project whose published entry sends the gateway's identity where it may
      // not go (written before ADR 022's rule) is not kept: that policy would go on handing its token out.
      const unsafe = beforeCompiled instanceof PolicyCompileError && beforeCompiled.issues.some((i) => i.message.startsWith(MANAGED_IDENTITY_REFUSED));
      const outcome = !before || unsafe ? "leftOut" : beforeCompiled instanceof PolicyCompileError ? "keptArtifacts" : "keptPublished";
      if (outcome === "keptPublished") compiled.push(before!);
      if (outcome !== "leftOut") held.push(before!);
      isolated.push({ projectId: p.id, name: p.name, error: own.message.slice(0, 1000), outcome });
    }
    if (!isolated.length) throw compileError(whole);
    const result = await attempt({ ...reg, projects: compiled });
    if (result instanceof PolicyCompileError) throw compileError(result);
    return { result, registry: { ...reg, projects: held }, isolated };
  }
}

/** What the gateway would get for one project: compiled from the registry, nothing published. */
export class PolicyPreviewService {
  constructor(
    private readonly projects: ProjectService,
    private readonly pillars: readonly PillarInput[],
    private readonly tenantSettings: TenantSettingsService,
    private readonly vaultUri: string | undefined,
    private readonly transform: InputTransform = asIs,
    private readonly gateway: TenantGatewayInput = () => ({}),
  ) {}

  /** With a draft: its settings replace the saved ones for this compile only (the policy editor's live preview). */
  async preview(ctx: RequestContext, projectId: string, explain: boolean, draft?: Omit<PolicyDraft, "explain">): Promise<PolicyPreview> {
    const saved = await this.projects.get(ctx, projectId);
    const tenantId = ctx.principal.tenantId;
    const savedTenant = await this.tenantSettings.scope(tenantId);
    const project = draft?.settings !== undefined ? { ...saved, settings: draft.settings ?? {} } : saved;
    const tenant = draft?.tenantSettings ? { ...savedTenant, settings: draft.tenantSettings } : savedTenant;
    // A draft is refused for what saving it would be refused for (a missing service, a loosened floor).
    if (draft?.tenantSettings) checkSettings(tenant, undefined, undefined, "body.tenantSettings");
    // With only a tenant draft, the saved project settings are what it is checked against (named as such).
    if (draft?.settings !== undefined || draft?.tenantSettings) checkSettings(tenant, project.settings ?? undefined, undefined, draft.settings !== undefined ? "body.settings" : "project.settings");
    const models = draft?.models ?? {};
    const input = await toCompilerInput(tenantId, tenant, project, this.pillars, this.vaultUri, this.gateway(tenantId), models);
    const known = new Set(input.projects.flatMap((p) => (p.models ?? []).map((m) => m.id)));
    const unknown = Object.keys(models).filter((id) => !known.has(id));
    if (unknown.length) fail({ kind: "validation", detail: "the draft names models this project does not have", errors: unknown.map((id) => ({ field: `body.models.${id}`, message: "no model with this id in the project" })) });
    for (const [id, settings] of Object.entries(models)) if (settings) checkSettings(tenant, project.settings ?? undefined, settings, `body.models.${id}`);
    const transformed = await this.transform(tenantId, input);
    const result = compileLazily(transformed);
    const artifacts = result.artifacts.map((a: GatewayArtifact) => ({ ref: artifactRef(a), ...a }));
    const warnings = serviceRegionWarnings(transformed);
    return {
      projectId,
      artifacts,
      sizes: result.sizes,
      ...(explain ? { explain: result.explain.map((e: ExplainEntry) => ({ ...e })) } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
  }
}

/**
 * The shared services that see prompts against the region rules of the compiled scopes (ADR 024), with
 * exemptions in force: content safety on under a region rule while its service states no region (a write
 * refuses a stated region the rule excludes; an unstated one is only warned of, so tenants written before
 * `region` existed keep publishing), and models the semantic cache skips because of their region rule.
 */
export function serviceRegionWarnings(input: CompilerInputIn): string[] {
  const tenant = input.settings as Settings | undefined;
  const services = input.services ?? {};
  const out: string[] = [];
  const check = (who: string, project: unknown, model: unknown, pillarModels: boolean, projectFit?: string) => {
    const eff = mergeSettings(tenant, project as CompilerSettings | undefined, model as CompilerModelSettings | undefined);
    const cs = eff.contentSafety ? serviceRegionFit(eff, services.contentSafety) : "ok";
    // A model that only inherits the project's case is not named again.
    const inherited = cs === projectFit;
    if (cs === "unstated" && !inherited) out.push(`${who}: content safety is on and regions.allowed applies, but services.contentSafety states no region: every prompt is screened wherever that resource runs; state its region`);
    if (cs === "excluded" && !inherited) out.push(`${who}: content safety is on, and services.contentSafety's region ${services.contentSafety?.region ?? ""} is outside regions.allowed: every prompt is screened there`);
    if (pillarModels && model !== undefined && eff.semanticCache) {
      const cache = serviceRegionFit(eff, services.embeddings);
      if (cache !== "ok") out.push(`${who}: the semantic cache is not used for this model: ${cache === "unstated" ? "services.embeddings states no region" : `services.embeddings' region ${services.embeddings?.region ?? ""} is outside regions.allowed`}`);
    }
    return cs;
  };
  const tiers = new Map((input.keyTiers ?? []).map((t) => [t.id, t]));
  for (const p of input.projects) {
    const modelsOn = p.pillars?.models ?? true;
    const projectFit = check(`project ${p.name} (${p.id})`, p.settings, undefined, modelsOn);
    for (const m of p.models ?? []) check(`model ${m.name} (${m.id})`, p.settings, m.settings ?? {}, modelsOn, projectFit === "ok" ? undefined : projectFit);
    if (!modelsOn) continue;
    // Key tiers with a content-safety level screen every prompt of their keys here, whatever the scope's own
    // content safety (keys written before their region rule was checked, or an exemption that allowed it ended).
    const applied = [...(p.keyTiers ?? []), ...(p.sharedKeyTiers ?? []).map((s) => s.tierId)];
    for (const id of [...new Set(applied)]) {
      const tier = tiers.get(id);
      if (!tier?.contentSafety) continue;
      const reached = (p.models ?? []).filter((m) => tier.models === undefined || tier.models.includes(m.name));
      const scopes: [string, unknown][] = [[`project ${p.name} (${p.id})`, undefined], ...reached.map((m): [string, unknown] => [`model ${m.name} (${m.id})`, m.settings ?? {}])];
      for (const [who, model] of scopes) {
        const fit = serviceRegionFit(mergeSettings(tenant, p.settings as CompilerSettings | undefined, model as CompilerModelSettings | undefined), services.contentSafety);
        if (fit === "ok") continue;
        out.push(
          fit === "unstated"
            ? `key tier ${id} on ${who}: its content safety (${tier.contentSafety}) is on and regions.allowed applies, but services.contentSafety states no region: its keys' prompts are screened wherever that resource runs; state its region`
            : `key tier ${id} on ${who}: its content safety (${tier.contentSafety}) screens its keys' prompts in services.contentSafety's region ${services.contentSafety?.region ?? ""}, outside regions.allowed`,
        );
        break;
      }
    }
  }
  return out;
}
