/**
 * Promotion gates: what the system checks before a project moves to a later environment
 * (docs/project-lifecycle.md). Each gate says whether it passes and why, so the checklist reads as a
 * to-do list; which gates apply grows with the target environment.
 */
import { clampToFloor } from "../../policy/floors.js";
import { mergeSettings, type Settings } from "../../policy/settings.js";
import type { Exemption } from "../exemptions/schema.js";
import type { GateName, Project, PromotionGates } from "./schema.js";

type Environment = Project["environment"];

/** The gates of each target: dev asks for an owner and a cost center; test adds the controls; prod everything. */
export const GATES_FOR: Record<Exclude<Environment, "sandbox">, readonly GateName[]> = {
  dev: ["ownerAndCostCenter"],
  test: ["ownerAndCostCenter", "contentSafety", "limits"],
  prod: ["ownerAndCostCenter", "contentSafety", "limits", "exemptionsReviewed", "keysRotated", "accessReview"],
};

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
}

/** An exemption that switches `control` off for the whole project (its own, or the tenant's). */
const switchesOff = (e: Exemption, control: Exemption["control"]) => e.control === control && e.relaxation.kind === "off" && (e.scope.level === "project" || e.scope.level === "tenant");
const named = (list: Exemption[]) => list.map((e) => `${e.id} (until ${e.expiresAt})`).join(", ");

export async function evaluateGates(deps: GateDeps, project: Project, to: Exclude<Environment, "sandbox">, now: Date): Promise<PromotionGates> {
  const wanted = GATES_FOR[to];
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
        // The tenant's and the project's settings as the compiler merges them (a model may add more, never less).
        // An exemption that switches a control off for the project means the gateway does not apply it,
        // whatever the settings say: the gate fails until the exemption ends.
        const tenant = await deps.tenantSettings(project.tenantId);
        // Held to the tenant's floors, as the compiler holds them (settings stored before the tenant tightened).
        const effective = mergeSettings(tenant, clampToFloor(tenant, project.settings));
        if (gate === "contentSafety") {
          if (!effective.contentSafety) return out(false, "content safety is off for the project");
          const off = (await exemptions()).filter((e) => switchesOff(e, "contentSafety"));
          return off.length ? out(false, `content safety is switched off for the project by exemption ${named(off)}`) : out(true, `content safety on (set at ${effective.contentSafety.scope})`);
        }
        const configured = (["tokens.perMinute", "tokens.quota", "requests.rate"] as const).filter((c) => effective[c]);
        if (!configured.length) return out(false, "no token limit, token quota or request rate applies to the project");
        const list = await exemptions();
        const limits = configured.filter((c) => !list.some((e) => switchesOff(e, c)));
        return limits.length
          ? out(true, `limits on: ${limits.join(", ")}`)
          : out(false, `every limit the project has is switched off by an exemption: ${named(list.filter((e) => configured.some((c) => switchesOff(e, c))))}`);
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
