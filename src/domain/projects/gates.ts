/**
 * Promotion gates: what the system checks before a project moves to a later environment
 * (docs/project-lifecycle.md). Each gate says whether it passes and why, so the checklist reads as a
 * to-do list; which gates apply grows with the target environment.
 */
import { clampToFloor } from "../../policy/floors.js";
import { mergeSettings, type EffectiveSettings, type ModelSettings, type Settings } from "../../policy/settings.js";
import type { Exemption } from "../exemptions/schema.js";
import type { GateName, Project, PromotionGates } from "./schema.js";

type Environment = Project["environment"];

/** The gates of each target: dev asks for an owner and a cost center; test adds the controls; prod everything. */
export const GATES_FOR: Record<Exclude<Environment, "sandbox">, readonly GateName[]> = {
  dev: ["ownerAndCostCenter"],
  test: ["ownerAndCostCenter", "contentSafety", "limits"],
  prod: ["ownerAndCostCenter", "contentSafety", "limits", "exemptionsReviewed", "keysRotated", "accessReview"],
};

/**
 * The gates time alone can fail once passed: an exemption reaches its review point, a key outlives the
 * rotation period, the access review grows old. Writes cannot hold a project to them (gateGapsOfWrite);
 * the lifecycle job watches them instead (gate drift, docs/project-lifecycle.md).
 */
export const TIME_BOUND_GATES: readonly GateName[] = ["exemptionsReviewed", "keysRotated", "accessReview"];

/** The time-bound gates a project in `environment` is held to (none below prod). */
export const timeBoundGatesOf = (environment: Environment): readonly GateName[] => (environment === "sandbox" ? [] : GATES_FOR[environment].filter((g) => TIME_BOUND_GATES.includes(g)));

/** A completed access review of the project (or the tenant) at most this old counts for prod. */
export const REVIEW_WITHIN_DAYS = 90;
const DAY_MS = 86_400_000;

/** What the gates read, each from the service that owns it. */
export interface GateDeps {
  tenantSettings(tenantId: string): Promise<Settings>;
  /** Exemptions in force whose scope lies in the project, and the tenant's own (scope tenant). */
  exemptionsInForce(tenantId: string, projectId: string): Promise<Exemption[]>;
  /** Live keys (active, suspended) of the project: id, name and when their secret was made. */
  liveKeys(tenantId: string, projectId: string): Promise<{ id: string; name: string; secretCreatedAt: string }[]>;
  /** When the last access review covering the project (its own or the tenant's) completed. */
  lastReviewCompletedAt(tenantId: string, projectId: string): Promise<string | undefined>;
  /** The project's models with their own settings: a model may override its project (src/policy/settings.ts). */
  models(tenantId: string, projectId: string): Promise<{ id: string; name: string; settings?: ModelSettings | undefined }[]>;
}

/** An exemption that switches `control` off for the whole project (its own, or the tenant's), or for the model `modelId`. */
const switchesOff = (e: Exemption, control: Exemption["control"], modelId?: string) =>
  e.control === control && e.relaxation.kind === "off" && (e.scope.level === "project" || e.scope.level === "tenant" || (modelId !== undefined && e.scope.level === "model" && e.scope.modelId === modelId));
const named = (list: Exemption[]) => list.map((e) => `${e.id} (until ${e.expiresAt})`).join(", ");

/** The fields of a project its environment's gates read at a write. */
export interface ProjectControls {
  costCenter?: string | undefined;
  settings?: Settings | undefined;
  keyPolicy?: { rotateAfterDays?: number | undefined } | undefined;
}

const LIMIT_CONTROLS = ["tokens.perMinute", "tokens.quota", "requests.rate"] as const;
/** What the settings of one scope (the project, or a model on top of it) lack for a controls gate, exemptions aside. */
function lacks(gate: "contentSafety" | "limits", effective: EffectiveSettings, label: string): string | undefined {
  if (gate === "contentSafety") return effective.contentSafety ? undefined : `content safety is off for ${label}`;
  return LIMIT_CONTROLS.some((c) => effective[c]) ? undefined : `no token limit, token quota or request rate applies to ${label}`;
}

/**
 * What a write would leave a project in test or prod without, that its environment's gates require: a
 * cost center, content safety and a limit on the project and on the model being written; in prod a key
 * rotation period.
 * The gates hold at promotion and after it: a project does not pass them to shed the controls once in.
 * Exemptions are not consulted: they are the approved way below a control, and their own gate's business.
 */
export function gateGapsOfWrite(environment: Environment, tenant: Settings, project: ProjectControls, model?: { label: string; settings?: ModelSettings | undefined }): string[] {
  // Sandbox and dev ask for no controls; a dev project's cost center is asked for at promotion to dev only.
  if (environment === "sandbox" || environment === "dev") return [];
  const wanted = GATES_FOR[environment];
  const projectSettings = clampToFloor(tenant, project.settings);
  const effective = model ? mergeSettings(tenant, projectSettings, clampToFloor(tenant, model.settings)) : mergeSettings(tenant, projectSettings);
  const label = model?.label ?? "the project";
  const gaps: string[] = [];
  if (wanted.includes("ownerAndCostCenter") && !model && !project.costCenter) gaps.push("the project has no cost center");
  if (wanted.includes("keysRotated") && !model && !project.keyPolicy?.rotateAfterDays) gaps.push("the project's key policy sets no rotation (keyPolicy.rotateAfterDays)");
  for (const gate of ["contentSafety", "limits"] as const) {
    const gap = wanted.includes(gate) ? lacks(gate, effective, label) : undefined;
    if (gap) gaps.push(gap);
  }
  return gaps;
}

/** The checklist of `to` for the project, now; `only` restricts it to those of its gates. */
export async function evaluateGates(deps: GateDeps, project: Project, to: Exclude<Environment, "sandbox">, now: Date, only?: readonly GateName[]): Promise<PromotionGates> {
  const wanted = only ? GATES_FOR[to].filter((g) => only.includes(g)) : GATES_FOR[to];
  // Read once: the controls gates judge the project as the gateway serves it, exemptions in force included.
  let inForce: Promise<Exemption[]> | undefined;
  const exemptions = () => (inForce ??= deps.exemptionsInForce(project.tenantId, project.id));
  const check = async (gate: GateName): Promise<{ gate: GateName; passed: boolean; detail: string }> => {
    const out = (passed: boolean, detail: string) => ({ gate, passed, detail });
    switch (gate) {
      case "ownerAndCostCenter":
        return project.costCenter ? out(true, `owner ${project.owner}, cost center ${project.costCenter}`) : out(false, "the project has no cost center");
      case "contentSafety":
      case "limits": {
        // The tenant's and the project's settings as the compiler merges them, and each model's on top: a
        // model may override its project (switch a control off for itself), so every model must keep it.
        // An exemption that switches a control off for the project (or the model) means the gateway does
        // not apply it, whatever the settings say: the gate fails until the exemption ends.
        const tenant = await deps.tenantSettings(project.tenantId);
        // Held to the tenant's floors, as the compiler holds them (settings stored before the tenant tightened).
        const projectSettings = clampToFloor(tenant, project.settings);
        const scopes: { label: string; modelId?: string; effective: EffectiveSettings }[] = [
          { label: "the project", effective: mergeSettings(tenant, projectSettings) },
          ...(await deps.models(project.tenantId, project.id)).map((m) => ({ label: `model ${m.name} (${m.id})`, modelId: m.id, effective: mergeSettings(tenant, projectSettings, clampToFloor(tenant, m.settings)) })),
        ];
        const list = await exemptions();
        if (gate === "contentSafety") {
          const projectOff = list.filter((e) => switchesOff(e, "contentSafety"));
          if (projectOff.length) return out(false, `content safety is switched off for the project by exemption ${named(projectOff)}`);
          const failing: string[] = [];
          for (const s of scopes) {
            const gap = lacks("contentSafety", s.effective, s.label);
            if (gap) failing.push(gap);
            else {
              const off = list.filter((e) => switchesOff(e, "contentSafety", s.modelId));
              if (off.length) failing.push(`content safety is switched off for ${s.label} by exemption ${named(off)}`);
            }
          }
          return failing.length ? out(false, failing.join("; ")) : out(true, `content safety on (set at ${scopes[0]!.effective.contentSafety!.scope})`);
        }
        const failing: string[] = [];
        let on: string[] = [];
        for (const s of scopes) {
          const configured = LIMIT_CONTROLS.filter((c) => s.effective[c]);
          const gap = lacks("limits", s.effective, s.label);
          if (gap) {
            failing.push(gap);
            continue;
          }
          const limits = configured.filter((c) => !list.some((e) => switchesOff(e, c, s.modelId)));
          if (!limits.length) failing.push(`every limit ${s.label} has is switched off by an exemption: ${named(list.filter((e) => configured.some((c) => switchesOff(e, c, s.modelId))))}`);
          else if (!s.modelId) on = limits;
        }
        return failing.length ? out(false, failing.join("; ")) : out(true, `limits on: ${on.join(", ")}`);
      }
      case "exemptionsReviewed": {
        // An exemption in its last 7 days ("expiring") is past its review point: renew it or let it end first.
        // The project's own: the tenant's are reviewed with the tenant, not with each project's promotion.
        const overdue = (await exemptions()).filter((e) => e.status === "expiring" && e.scope.level !== "tenant");
        return overdue.length ? out(false, `exemptions past their review: ${overdue.map((e) => `${e.id} (${e.control}, expires ${e.expiresAt})`).join(", ")}`) : out(true, "no exemption in force is past its review");
      }
      case "keysRotated": {
        const days = project.keyPolicy?.rotateAfterDays;
        if (!days) return out(false, "the project's key policy sets no rotation (keyPolicy.rotateAfterDays)");
        const stale = (await deps.liveKeys(project.tenantId, project.id)).filter((k) => now.getTime() - Date.parse(k.secretCreatedAt) > days * DAY_MS);
        return stale.length ? out(false, `keys not rotated within ${days} days: ${stale.map((k) => `${k.name} (${k.id})`).join(", ")}`) : out(true, `every key rotated within ${days} days`);
      }
      case "accessReview": {
        const at = await deps.lastReviewCompletedAt(project.tenantId, project.id);
        const fresh = at !== undefined && now.getTime() - Date.parse(at) <= REVIEW_WITHIN_DAYS * DAY_MS;
        return fresh ? out(true, `access review completed ${at}`) : out(false, at ? `the last access review completed ${at}, more than ${REVIEW_WITHIN_DAYS} days ago` : `no access review of the project has completed in the last ${REVIEW_WITHIN_DAYS} days`);
      }
    }
  };
  const gates = [];
  for (const gate of wanted) gates.push(await check(gate));
  return { from: project.environment, to, passed: gates.every((g) => g.passed), gates };
}
