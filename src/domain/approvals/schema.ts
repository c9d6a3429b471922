import { z } from "zod";
import { idSchema, PageQuery, ROLES, serverFields } from "../common.js";
import { ProjectId } from "../projects/schema.js";
import { isGuid } from "../users.js";

export const ApprovalId = idSchema("apr");

const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/** ISO-8601 duration (days, hours, minutes, seconds) → milliseconds; undefined when malformed. */
export function durationMs(iso: string): number | undefined {
  const m = DURATION.exec(iso);
  if (!m || iso === "P" || iso.endsWith("T")) return undefined;
  const [, d, h, min, s] = m.map((v) => Number(v ?? 0));
  return (((d! * 24 + h!) * 60 + min!) * 60 + s!) * 1000;
}

const MIN_TIMEOUT_MS = 1000;
const MAX_TIMEOUT_MS = 30 * 24 * 3600 * 1000;

const Duration = z
  .string()
  .refine((v) => durationMs(v) !== undefined, "must be an ISO-8601 duration such as PT4H or P2D")
  .refine((v) => {
    const ms = durationMs(v) ?? 0;
    return ms >= MIN_TIMEOUT_MS && ms <= MAX_TIMEOUT_MS;
  }, "must be between PT1S and P30D");

/**
 * A named approver: the user id exactly as tokens carry it (Entra: the lower-case object id; another
 * issuer: its `oid`/`sub`). A link acts as the user it names, so a name that no token carries — a
 * sign-in name, an e-mail address, an upper-case GUID — would escape the separation-of-duties checks
 * (the requester could approve through a link naming their own address): refused.
 */
export const ApproverUserId = z
  .string()
  .min(1)
  .max(256)
  .refine((v) => !/[\s@]/.test(v), "name the user's id as tokens carry it (the object id), not a sign-in name or e-mail address")
  .refine((v) => !isGuid(v) || v === v.toLowerCase(), "an object id is written in lower case, as tokens carry it")
  .meta({ description: "The user's id as tokens carry it (Entra: the lower-case object id, oid)" });

/** Whether a stored name is one tokens can carry (routes and requests written before the check existed may hold others). */
export const isApproverUserId = (v: string): boolean => ApproverUserId.safeParse(v).success;

export const ApproverRef = z
  .union([
    z.strictObject({ user: ApproverUserId }),
    z.strictObject({ role: z.enum(ROLES), scope: z.enum(["tenant", "project"]).default("tenant") }),
  ])
  .meta({ description: "A named user (the token's oid), or everyone holding a role in the tenant or in the subject's project" });
export type ApproverRef = z.output<typeof ApproverRef>;

export const StageSpec = z
  .strictObject({
    name: z.string().min(1).max(100).optional(),
    approvers: z.array(ApproverRef).min(1).max(20),
    decisionTimeout: Duration.meta({ description: "After this long without a decision the request is denied (expired)" }),
    escalateAfter: Duration.optional().meta({ description: "After this long without a decision the stage escalates once to escalateTo" }),
    escalateTo: z.array(ApproverRef).min(1).max(20).optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.escalateAfter === undefined) !== (s.escalateTo === undefined)) {
      ctx.addIssue({ code: "custom", path: ["escalateTo"], message: "escalateAfter and escalateTo go together" });
    }
    if (s.escalateAfter && (durationMs(s.escalateAfter) ?? 0) >= (durationMs(s.decisionTimeout) ?? 0)) {
      ctx.addIssue({ code: "custom", path: ["escalateAfter"], message: "must be shorter than decisionTimeout" });
    }
  });

/** Whether a parsed JSON value holds only finite numbers (a body's 1e309 parses as Infinity, which JSON stores as null). */
function finiteJson(v: unknown): boolean {
  if (typeof v === "number") return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(finiteJson);
  if (v !== null && typeof v === "object") return Object.values(v).every(finiteJson);
  return true;
}

export const Subject = z.strictObject({
  resourceType: z.string().regex(/^[a-z][a-zA-Z0-9.-]{0,63}$/, "a resource type such as tool or exemption"),
  resourceId: z.string().min(1).max(256).refine((id) => id.trim() !== "", "must not be blank"),
  projectId: ProjectId.optional(),
  change: z
    .record(z.string(), z.unknown())
    .refine((c) => Buffer.byteLength(JSON.stringify(c)) <= 32 * 1024, "the change is limited to 32 KiB")
    // Frozen as requested: a number JSON cannot hold would be stored as something else (null) than was asked.
    .refine(finiteJson, "numbers must be finite (JSON holds no larger number than about 1.8e308)")
    .meta({ description: "The exact change requested; frozen (with a digest) when the request is created" }),
});

/** Stages a requester may add after the route's (they never replace or shorten the route). */
export const MAX_EXTRA_STAGES = 2;
export const ExtraStages = z
  .array(StageSpec)
  .min(1)
  .max(MAX_EXTRA_STAGES)
  .meta({ description: "Stages the requester adds after the tenant's approval route (at most 2); they never replace the route's stages" });

export const ApprovalSpec = z
  .strictObject({
    subject: Subject,
    justification: z.string().trim().min(1).max(4000),
    stages: ExtraStages.optional(),
  })
  .superRefine((spec, ctx) => {
    spec.stages?.forEach((stage, i) => {
      if (stage.approvers.some((a) => "role" in a && a.scope === "project") && !spec.subject.projectId) {
        ctx.addIssue({ code: "custom", path: ["stages", i, "approvers"], message: "project-scoped roles need subject.projectId" });
      }
    });
  })
  .meta({ id: "ApprovalSpec", description: "A request for approval. Who approves is the tenant's approval route for the subject (GET /approval-routes); stages only add approvers." });
export type ApprovalSpecInput = z.input<typeof ApprovalSpec>;

/** withdrawn: the change it asked about was never recorded on its subject (a lost write race, a crash), so nobody waits for it. */
export const APPROVAL_STATUSES = ["pending", "approved", "rejected", "expired", "withdrawn"] as const;

export const Decision = z.object({
  stage: z.number().int(),
  approver: z.string(),
  decision: z.enum(["approve", "reject"]),
  justification: z.string(),
  at: z.iso.datetime(),
  via: z.enum(["api", "link"]),
});

export const Stage = z.object({
  name: z.string().optional(),
  approvers: z.array(ApproverRef),
  decisionTimeout: z.string(),
  escalateAfter: z.string().optional(),
  escalateTo: z.array(ApproverRef).optional(),
  status: z.enum(["waiting", "pending", "escalated", "approved", "rejected", "expired", "withdrawn"]),
  startedAt: z.iso.datetime().optional(),
  escalateAt: z.iso.datetime().optional(),
  deadline: z.iso.datetime().optional(),
  origin: z.enum(["route", "requester"]).optional().meta({ description: "route: a stage of the tenant's approval route; requester: a stage the requester added" }),
});

export const TimelineEntry = z.object({
  at: z.iso.datetime(),
  type: z.enum(["requested", "stageStarted", "escalated", "decided", "approved", "rejected", "expired", "withdrawn"]),
  stage: z.number().int().optional(),
  actor: z.string().optional(),
  detail: z.string().optional(),
});

export const Approval = z
  .object({
    id: ApprovalId,
    subject: Subject.extend({ digest: z.string().meta({ description: "SHA-256 of the canonical subject, including the change" }) }),
    justification: z.string(),
    requester: z.string(),
    parties: z
      .array(z.string())
      .optional()
      .meta({ description: "Others with a stake in the subject (an exemption's owner and original requester, earlier renewers): like the requester, they never decide the request" }),
    status: z.enum(APPROVAL_STATUSES),
    currentStage: z.number().int().meta({ description: "Index of the stage awaiting a decision" }),
    route: z
      .object({ name: z.string(), source: z.enum(["tenant", "product"]), risk: z.enum(["standard", "high"]) })
      .optional()
      .meta({ description: "The approval route the request was given when it was made (it keeps it when the routes change)" }),
    stages: z.array(Stage),
    decisions: z.array(Decision),
    timeline: z.array(TimelineEntry),
    decidedAt: z.iso.datetime().optional(),
    ...serverFields,
  })
  .meta({ id: "Approval" });
export type Approval = z.output<typeof Approval>;

export const ApprovalList = z
  .object({ items: z.array(Approval), continuationToken: z.string().optional(), nextLink: z.string().optional() })
  .meta({ id: "ApprovalList" });

export const DecisionSpec = z
  .strictObject({
    decision: z.enum(["approve", "reject"]),
    justification: z.string().trim().min(1).max(4000),
  })
  .meta({ id: "DecisionSpec" });
export type DecisionSpec = z.output<typeof DecisionSpec>;

export const ApprovalListQuery = z.strictObject({
  ...PageQuery.shape,
  status: z.enum(APPROVAL_STATUSES).optional(),
  approver: z.literal("me").optional().meta({ description: "Only requests awaiting a decision the caller may make" }),
  requester: z.string().min(1).max(256).optional(),
});

export const ApprovalMetrics = z
  .object({
    counts: z.record(z.enum(APPROVAL_STATUSES), z.number().int()),
    decided: z.number().int(),
    timeToDecisionMs: z.object({ p50: z.number().nullable(), p95: z.number().nullable() }),
    decidedWithin24hShare: z.number().nullable().meta({ description: "Share of decided requests decided within 24 h (SLA target > 0.95)" }),
  })
  .meta({ id: "ApprovalMetrics" });
export type ApprovalMetrics = z.output<typeof ApprovalMetrics>;

// ---------------------------------------------------------------------------------------------
// Approval routes: who approves what is the tenant's, not the requester's.

/** Subject types approval routes tell apart ("*" in a route matches any). */
export const ROUTE_SUBJECT_TYPES = ["exemption", "keyShare", "keyRequest", "tool", "agent", "promotion", "model"] as const;
export type RouteSubjectType = (typeof ROUTE_SUBJECT_TYPES)[number] | "other";
export const ROUTE_SCOPES = ["tenant", "project", "model", "key"] as const;
export const RISKS = ["standard", "high"] as const;
export type Risk = (typeof RISKS)[number];

/** What a route is matched on: the subject's type, the scope it affects, and its risk. */
export interface RouteKey {
  subjectType: RouteSubjectType;
  scope: (typeof ROUTE_SCOPES)[number];
  risk: Risk;
}

export const RouteMatch = z
  .strictObject({
    subjectType: z.enum([...ROUTE_SUBJECT_TYPES, "*"]).default("*"),
    scope: z.enum([...ROUTE_SCOPES, "*"]).default("*").meta({ description: "tenant, project, model or key: what the subject affects" }),
    risk: z.enum([...RISKS, "*"]).default("*").meta({ description: "high: an exemption of a whole scope (the tenant, or a control switched off for a project)" }),
  })
  .meta({ description: "Which requests the route applies to; omitted fields match anything" });

export const ApprovalRoute = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    match: RouteMatch,
    stages: z.array(StageSpec).min(1).max(3),
  })
  .meta({ id: "ApprovalRoute" });
export type ApprovalRoute = z.output<typeof ApprovalRoute>;

export const ApprovalRoutesSpec = z
  .strictObject({ routes: z.array(ApprovalRoute).max(50).meta({ description: "Tried in order; the first match wins, then the product defaults" }) })
  .meta({ id: "ApprovalRoutesSpec" });
export type ApprovalRoutesSpec = z.output<typeof ApprovalRoutesSpec>;

/** A route as the API returns it (every match field filled in). */
const ApprovalRouteView = z
  .object({
    name: z.string(),
    match: z.object({ subjectType: z.enum([...ROUTE_SUBJECT_TYPES, "*"]), scope: z.enum([...ROUTE_SCOPES, "*"]), risk: z.enum([...RISKS, "*"]) }),
    stages: z.array(Stage.pick({ name: true, approvers: true, decisionTimeout: true, escalateAfter: true, escalateTo: true })),
  })
  .meta({ id: "ApprovalRouteView" });

export const ApprovalRoutes = z
  .object({
    routes: z.array(ApprovalRouteView),
    defaults: z.array(ApprovalRouteView).meta({ description: "The product's routes, used when no tenant route matches (read-only)" }),
    minimums: z.array(z.string()).meta({ description: "The rules every route and request is held to" }),
    unusable: z
      .array(z.object({ name: z.string(), errors: z.array(z.object({ field: z.string(), message: z.string() })) }))
      .meta({ description: "Stored routes that are skipped (requests fall through to the next match or the defaults), and why: written before a rule they break" }),
    updatedAt: z.iso.datetime().optional(),
    updatedBy: z.string().optional(),
    etag: z.string().meta({ description: "\"initial\" before the first write" }),
  })
  .meta({ id: "ApprovalRoutes" });
export type ApprovalRoutes = z.output<typeof ApprovalRoutes>;
