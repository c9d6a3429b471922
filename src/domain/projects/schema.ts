import { z } from "zod";
import { QUOTA_PERIODS, Settings } from "../../policy/settings.js";
import { idSchema, serverFields } from "../common.js";

/** Governance controls at project scope (src/policy/settings.ts); replaced as a whole on PATCH. */
export const ProjectSettings = Settings.meta({ description: "Governance controls at project scope; see GET /api/settings for precedence" });

export const ProjectId = idSchema("prj");
export const ENVIRONMENTS = ["sandbox", "dev", "test", "prod"] as const;
export const LIFECYCLE_STAGES = ["proposed", "active", "deprecated", "retired"] as const;
export const PROJECT_ROLES = ["ProjectAdmin", "Developer", "Approver", "Reader"] as const;

const TAG_KEY = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/;
const MAX_TAGS = 50;

const Tags = z
  .record(z.string().regex(TAG_KEY, "tag keys are 1-63 letters, digits, '.', '_', ':' or '-'"), z.string().max(256))
  .refine((t) => Object.keys(t).length <= MAX_TAGS, `at most ${MAX_TAGS} tags`);

export const Pillars = z
  .strictObject({
    models: z.boolean().default(true),
    tools: z.boolean().default(true),
    agents: z.boolean().default(true),
  })
  .meta({ description: "Per-pillar switches. Switching a pillar off keeps its registrations; switching it on restores them." });

export const RoleAssignment = z
  .strictObject({
    principalId: z.string().min(1).max(256),
    role: z.enum(PROJECT_ROLES),
  })
  .meta({ description: "A project-scoped role for a user (the token's oid)." });

export const KeyPolicy = z
  .strictObject({
    defaultTtlDays: z.int().min(1).max(365).default(90).meta({ description: "Expiry of a new virtual key when its request gives none" }),
    maxTtlDays: z.int().min(1).max(365).default(365).meta({ description: "Longest expiry a virtual key may have (at most 365 days)" }),
    rotateAfterDays: z.int().min(1).max(365).optional().meta({ description: "The scheduled job rotates keys whose secret is older; no scheduled rotation when absent" }),
    rotationOverlapHours: z.int().min(0).max(720).default(168).meta({ description: "Overlap of a scheduled rotation: how long the old secret keeps working (the owner collects the new one meanwhile)" }),
    requireApproval: z.boolean().default(false).meta({
      description: "Keys asked for by someone who does not manage the project wait for an approval (route: key requests): created suspended, with the secret in the response, working once approved",
    }),
  })
  .superRefine((p, ctx) => {
    if (p.defaultTtlDays > p.maxTtlDays) ctx.addIssue({ code: "custom", path: ["defaultTtlDays"], message: "must not exceed maxTtlDays" });
  })
  .meta({ description: "Virtual key lifetimes and scheduled rotation for the project" });
export type KeyPolicy = z.output<typeof KeyPolicy>;
export const DEFAULT_KEY_POLICY: KeyPolicy = { defaultTtlDays: 90, maxTtlDays: 365, rotationOverlapHours: 168, requireApproval: false };

const ProjectBudget = z
  .strictObject({ amount: z.number().positive().max(100_000_000), currency: z.string().regex(/^[A-Z]{3}$/), period: z.enum(QUOTA_PERIODS) })
  .meta({ description: "What the project may spend per period, over all its keys: alerts at 80% and 100% (aigov.budget.thresholdReached.v1); the gateway enforces keys' budgets, not this one" });

const fields = {
  // NFC: "Café" typed with a combining accent is the same name as with a precomposed one.
  name: z.string().trim().normalize("NFC").min(1).max(100).meta({ description: "Unique within the tenant (case-insensitive; compared in Unicode NFC)" }),
  description: z.string().max(2000).optional(),
  environment: z.enum(ENVIRONMENTS),
  owner: z.string().min(1).max(256),
  costCenter: z.string().min(1).max(64).optional(),
  tags: Tags.default({}),
  reviewDate: z.iso.date().optional().meta({ description: "Required for sandbox projects" }),
  lifecycleStage: z.enum(LIFECYCLE_STAGES).default("active"),
  pillars: Pillars.default({ models: true, tools: true, agents: true }),
  roleAssignments: z.array(RoleAssignment).max(100).default([]),
  settings: ProjectSettings.optional(),
  keyPolicy: KeyPolicy.optional(),
  budget: ProjectBudget.optional(),
};

/** A sandbox's review date is at most this many days ahead when it is set by an edit or an extension. */
export const MAX_SANDBOX_DAYS = 180;

/** A sandbox expires at the start (UTC) of its review date. */
export const expiryOf = (reviewDate: string) => Date.parse(`${reviewDate}T00:00:00.000Z`);

/**
 * Why nothing that adds access is accepted in a project now, or undefined: it is locked, or it is a
 * sandbox past its review date that the hourly sweep has not locked yet.
 */
export function lockedNow(p: { lock?: { detail: string } | undefined; environment: string; reviewDate?: string | undefined }, now: Date): string | undefined {
  if (p.lock) return `the project is locked (${p.lock.detail})`;
  if (p.environment === "sandbox" && p.reviewDate && now.getTime() >= expiryOf(p.reviewDate)) return `the sandbox is past its review date ${p.reviewDate}`;
  return undefined;
}

/** A review date set now (by an edit into the sandbox, or an extension): after today, at most MAX_SANDBOX_DAYS ahead. */
export function sandboxDateError(reviewDate: string, now: Date): { field: string; message: string } | undefined {
  const inRange = reviewDate > now.toISOString().slice(0, 10) && expiryOf(reviewDate) <= now.getTime() + MAX_SANDBOX_DAYS * 86_400_000;
  return inRange ? undefined : { field: "body.reviewDate", message: `must be after today and at most ${MAX_SANDBOX_DAYS} days ahead` };
}

function sandboxNeedsReviewDate(spec: { environment: string; reviewDate?: string | undefined }, ctx: z.RefinementCtx) {
  if (spec.environment === "sandbox" && !spec.reviewDate) {
    ctx.addIssue({ code: "custom", path: ["reviewDate"], message: "is required for sandbox projects" });
  }
}

export const ProjectSpec = z.strictObject(fields).superRefine(sandboxNeedsReviewDate).meta({ id: "ProjectSpec" });
export type ProjectSpec = z.output<typeof ProjectSpec>;
export type ProjectSpecInput = z.input<typeof ProjectSpec>;

/** PATCH body (merge-patch semantics): absent = unchanged, null = cleared (optional fields only). */
export const ProjectPatch = z
  .strictObject({
    name: fields.name.optional(),
    description: z.string().max(2000).nullable().optional(),
    environment: fields.environment.optional(),
    owner: fields.owner.optional(),
    costCenter: z.string().min(1).max(64).nullable().optional(),
    tags: Tags.optional(),
    reviewDate: z.iso.date().nullable().optional(),
    lifecycleStage: fields.lifecycleStage.optional(),
    pillars: z.strictObject({ models: z.boolean(), tools: z.boolean(), agents: z.boolean() }).partial().optional(),
    roleAssignments: z.array(RoleAssignment).max(100).optional(),
    settings: ProjectSettings.nullable().optional(),
    keyPolicy: KeyPolicy.nullable().optional(),
    budget: ProjectBudget.nullable().optional(),
  })
  .meta({ id: "ProjectPatch" });
export type ProjectPatch = z.output<typeof ProjectPatch>;

/** Why a project is locked: its writes that add access are refused, its keys suspended; nothing is deleted. */
export const ProjectLock = z
  .strictObject({
    at: z.iso.datetime(),
    reason: z.enum(["sandboxExpired"]),
    detail: z.string(),
  })
  .meta({ id: "ProjectLock" });

const PendingPromotion = z.strictObject({ approvalId: z.string(), to: z.enum(ENVIRONMENTS), requestedBy: z.string(), requestedAt: z.iso.datetime() });
const PendingExtension = z.strictObject({ approvalId: z.string(), reviewDate: z.iso.date(), requestedBy: z.string(), requestedAt: z.iso.datetime() });
const LastPromotion = z.strictObject({
  to: z.enum(ENVIRONMENTS),
  outcome: z.enum(["promoted", "rejected", "gatesFailed"]),
  at: z.iso.datetime(),
  approvalId: z.string(),
  failingGates: z.array(z.string()).optional(),
});

export const GATES = ["ownerAndCostCenter", "contentSafety", "limits", "exemptionsReviewed", "keysRotated", "accessReview"] as const;
export type GateName = (typeof GATES)[number];

/**
 * The time-bound gates of its environment a project in it no longer passes (the lifecycle job's record,
 * docs/project-lifecycle.md "Gate drift"): written when the first fails, changed when the set changes,
 * removed when none fails. Nothing is locked by it.
 */
export const GateDrift = z
  .strictObject({
    since: z.iso.datetime().meta({ description: "When the project first fell out of one of these gates (this episode)" }),
    gates: z.array(
      z.strictObject({
        gate: z.enum(GATES),
        since: z.iso.datetime().meta({ description: "When this gate started failing" }),
        detail: z.string().meta({ description: "Why, as the gate said when it started failing; GET /api/projects/{id}/promotion-gates?to=<environment> says why now" }),
      }),
    ),
  })
  .meta({ id: "GateDrift", description: "The time-bound gates (exemptionsReviewed, keysRotated, accessReview) of its environment the project fails now; absent while it passes them" });

export const Project = z
  .strictObject({
    id: ProjectId,
    ...fields,
    lock: ProjectLock.optional(),
    promotion: PendingPromotion.optional().meta({ description: "A promotion awaiting its approval" }),
    lastPromotion: LastPromotion.optional(),
    gateDrift: GateDrift.optional(),
    extension: PendingExtension.optional().meta({ description: "A sandbox extension awaiting its approval" }),
    tags: z.record(z.string(), z.string()),
    pillars: z.strictObject({ models: z.boolean(), tools: z.boolean(), agents: z.boolean() }),
    roleAssignments: z.array(RoleAssignment),
    lifecycleStage: z.enum(LIFECYCLE_STAGES),
    ...serverFields,
  })
  .meta({ id: "Project" });
export type Project = z.output<typeof Project>;

export const PromotionGates = z
  .strictObject({
    from: z.enum(ENVIRONMENTS),
    to: z.enum(ENVIRONMENTS),
    passed: z.boolean(),
    gates: z.array(z.strictObject({ gate: z.enum(GATES), passed: z.boolean(), detail: z.string() })),
  })
  .meta({ id: "PromotionGates", description: "The checklist a promotion must pass, evaluated now" });
export type PromotionGates = z.output<typeof PromotionGates>;

export const PromotionGatesQuery = z.strictObject({ to: z.enum(ENVIRONMENTS).exclude(["sandbox"]).default("prod").meta({ description: "The target environment (default prod: the whole checklist)" }) });

export const PromoteSpec = z
  .strictObject({
    to: z.enum(ENVIRONMENTS).exclude(["sandbox"]).meta({ description: "A later environment than the project's" }),
    justification: z.string().trim().min(1).max(2000),
  })
  .meta({ id: "PromoteSpec" });
export type PromoteSpec = z.output<typeof PromoteSpec>;

export const ExtendSpec = z
  .strictObject({
    reviewDate: z.iso.date().meta({ description: "The sandbox's new review date, later than today and at most 180 days ahead" }),
    justification: z.string().trim().min(1).max(2000),
  })
  .meta({ id: "ExtendSpec" });
export type ExtendSpec = z.output<typeof ExtendSpec>;

export const ProjectList = z
  .object({ items: z.array(Project), continuationToken: z.string().optional(), nextLink: z.string().optional() })
  .meta({ id: "ProjectList" });
