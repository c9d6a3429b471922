import { z } from "zod";
import { ExemptionScope, Relaxation } from "../../policy/exemptions.js";
import { ControlId } from "../../policy/settings.js";
import { ExtraStages } from "../approvals/schema.js";
import { idSchema, PageQuery, queryInt, serverFields } from "../common.js";
import { ProjectId } from "../projects/schema.js";

export { ExemptionScope, Relaxation };

export const ExemptionId = idSchema("exm");
export const CATEGORIES = ["waiver", "mitigated"] as const;
export const EXEMPTION_STATUSES = ["requested", "approved", "active", "expiring", "expired", "rejected", "revoked"] as const;
export type ExemptionStatus = (typeof EXEMPTION_STATUSES)[number];
/** Statuses in which the exemption changes the compiled policy. */
export const IN_FORCE: readonly ExemptionStatus[] = ["active", "expiring"];
/** Statuses that still count in the portfolio (in force or on their way). */
export const OPEN: readonly ExemptionStatus[] = ["requested", "approved", "active", "expiring"];

const Text = (max: number) => z.string().trim().min(1).max(max);
const EvidenceLink = z.url({ protocol: /^https$/ }).max(2048).meta({ description: "An https link to evidence (ticket, risk assessment, test report)" });

export const Reason = z
  .strictObject({
    deliveryBlocker: Text(2000).meta({ description: "What the control blocks" }),
    affectedControl: Text(2000).meta({ description: "How the control gets in the way, in the team's words" }),
    expectedEndState: Text(2000).meta({ description: "What will make the exemption unnecessary" }),
  })
  .meta({ id: "ExemptionReason" });

const Approval = z
  .strictObject({ stages: ExtraStages })
  .meta({ description: "Stages added after the tenant's approval route for exemptions (GET /approval-routes); the route decides who approves" });

export const ExemptionSpec = z
  .strictObject({
    control: ControlId,
    scope: ExemptionScope,
    relaxation: Relaxation,
    category: z.enum(CATEGORIES).meta({ description: "waiver: non-compliance accepted for a time; mitigated: the intent is met another way" }),
    owner: Text(256).meta({ description: "The person accountable (user id); notified before expiry" }),
    reason: Reason,
    compensatingControls: z.array(Text(500)).max(20).default([]).meta({ description: "Required for waivers" }),
    evidence: z.array(EvidenceLink).max(20).default([]),
    expiresAt: z.iso.datetime({ offset: true }).meta({ description: "Mandatory; at most the tenant's maximum for the category and control (default waiver maximum 30 days)" }),
    approval: Approval.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.category === "waiver" && s.compensatingControls.length === 0) {
      ctx.addIssue({ code: "custom", path: ["compensatingControls"], message: "a waiver needs at least one compensating control" });
    }
  })
  .meta({ id: "ExemptionSpec" });
export type ExemptionSpecInput = z.input<typeof ExemptionSpec>;
export type ExemptionSpec = z.output<typeof ExemptionSpec>;

export const RenewalSpec = z
  .strictObject({
    expiresAt: z.iso.datetime({ offset: true }),
    evidence: z.array(EvidenceLink).min(1).max(20).meta({ description: "Updated evidence: at least one link the exemption does not already have" }),
    justification: Text(4000),
    compensatingControls: z.array(Text(500)).max(20).optional().meta({ description: "Replaces the list when given" }),
    approval: Approval.optional(),
  })
  .meta({ id: "ExemptionRenewalSpec" });
export type RenewalSpec = z.output<typeof RenewalSpec>;

export const RevokeSpec = z.strictObject({ reason: Text(2000) }).meta({ id: "ExemptionRevokeSpec" });
export type RevokeSpec = z.output<typeof RevokeSpec>;

export const Renewal = z.object({
  number: z.int(),
  approvalId: z.string(),
  requestedAt: z.iso.datetime(),
  requestedBy: z.string(),
  previousExpiresAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  evidence: z.array(z.string()),
  justification: z.string(),
  compensatingControls: z.array(z.string()).optional(),
  status: z.enum(["pending", "approved", "rejected", "lapsed"]).meta({ description: "lapsed: approved after the exemption had ended" }),
  settledAt: z.iso.datetime().optional(),
});

const Notice = z.object({ at: z.iso.datetime(), status: z.enum(["sent", "superseded"]) });

export const TimelineEntry = z.object({
  at: z.iso.datetime(),
  type: z.enum(["requested", "approved", "activated", "rejected", "expiring", "expired", "revoked", "renewalRequested", "renewed", "renewalRejected", "notApplied", "applied"]).meta({
    description: "notApplied / applied: the expiry sweep found a key exemption in force that the gateway configuration does not apply (its detail says why; the key keeps its own limits), or applies again",
  }),
  actor: z.string(),
  detail: z.string().optional(),
});

export const Exemption = z
  .object({
    id: ExemptionId,
    control: ControlId,
    scope: ExemptionScope,
    relaxation: Relaxation,
    category: z.enum(CATEGORIES),
    owner: z.string(),
    reason: Reason,
    compensatingControls: z.array(z.string()),
    evidence: z.array(z.string()),
    expiresAt: z.iso.datetime(),
    status: z.enum(EXEMPTION_STATUSES),
    requester: z.string(),
    approvalId: z.string().meta({ description: "The approval request that decides the exemption" }),
    activatedAt: z.iso.datetime().optional(),
    latent: z
      .literal(true)
      .optional()
      .meta({ description: "Requested when its control applied nowhere in the project (it changed nothing): it never takes effect, also once the control is set later — its approval was never about that limit. Request again once the control applies" }),
    judgedWith: z
      .array(z.string())
      .optional()
      .meta({ description: "The open exemptions of its control for the project it was judged together with when requested (their relaxations add up); judged again when approved with those it was not" }),
    gateway: z
      .object({ applied: z.boolean(), why: z.string().optional() })
      .optional()
      .meta({
        description:
          "A key exemption in force: whether the gateway configuration compiled now applies it (its key on its exemption tier). applied false: the compiler fails closed — the key keeps its own limits — and why says what keeps it out (a project with no key tier place left for it). Read live, on every read",
      }),
    endedAt: z.iso.datetime().optional().meta({ description: "When it expired, was rejected or revoked" }),
    revokeReason: z.string().optional(),
    notices: z.object({ "7d": Notice.optional(), "1d": Notice.optional() }).meta({ description: "Expiry notices to the owner for the current expiry (sent once each)" }),
    renewals: z.array(Renewal).meta({ description: "Every renewal request, oldest first" }),
    timeline: z.array(TimelineEntry),
    ...serverFields,
  })
  .meta({ id: "Exemption" });
export type Exemption = z.output<typeof Exemption>;

export const ExemptionList = z
  .object({ items: z.array(Exemption), continuationToken: z.string().optional(), nextLink: z.string().optional() })
  .meta({ id: "ExemptionList" });

export const ExemptionListQuery = z.strictObject({
  ...PageQuery.shape,
  status: z.enum(EXEMPTION_STATUSES).optional(),
  control: ControlId.optional(),
  projectId: ProjectId.optional(),
  owner: z.string().min(1).max(256).optional(),
});
export type ExemptionListQuery = z.output<typeof ExemptionListQuery>;

export const ReviewQuery = z.strictObject({
  clusterMinProjects: queryInt(2, 1000, 3).meta({ description: "A cluster is the same control exempted in at least this many projects" }),
  repeatMinRenewals: queryInt(1, 100, 2).meta({ description: "Exemptions renewed at least this many times are listed as repeat renewals" }),
});

const Count = <K extends string>(key: K) => z.array(z.object({ [key]: z.string(), count: z.int() } as Record<K, z.ZodString> & { count: z.ZodInt }));

export const ExemptionReview = z
  .object({
    at: z.iso.datetime(),
    total: z.int(),
    open: z.int().meta({ description: "requested, approved, active or expiring; the counts below are over these" }),
    byStatus: z.record(z.enum(EXEMPTION_STATUSES), z.int()),
    byControl: Count("control"),
    byProject: Count("projectId"),
    byOwner: Count("owner"),
    ageing: z.object({
      buckets: z.object({ "0-7d": z.int(), "8-30d": z.int(), "31-90d": z.int(), "91d+": z.int() }).meta({ description: "Age of open exemptions since they were requested" }),
      oldestDays: z.number().nullable(),
      averageDays: z.number().nullable(),
      expiringWithin7Days: z.int(),
    }),
    repeatRenewals: z.array(z.object({ id: z.string(), control: z.string(), scope: ExemptionScope, renewals: z.int() })),
    clusters: z.array(z.object({ control: z.string(), projects: z.array(z.string()), count: z.int() })).meta({ description: "The same control exempted in at least clusterMinProjects projects: the standard may be out of step with real work" }),
    withoutCompensatingControls: z.array(z.object({ id: z.string(), control: z.string(), category: z.enum(CATEGORIES) })),
    breadth: z.object({ tenant: z.int(), project: z.int(), model: z.int(), key: z.int() }).meta({ description: "Open exemptions by scope level" }),
  })
  .meta({ id: "ExemptionReview" });
export type ExemptionReview = z.output<typeof ExemptionReview>;

const MaxDays = z.int().min(1).max(365);

/** When a project-wide relaxation counts as high risk (two approval stages) by its effect. */
export const HighRiskRules = z
  .strictObject({
    limitFactor: z.int().min(2).max(1000).meta({ description: "A raised limit at least this many times the project's limit in force" }),
    thresholdLevel: z.int().min(1).max(7).meta({ description: "Content-safety thresholds that leave every category blocking only at this severity or above" }),
    allowValues: z.int().min(0).max(100).meta({ description: "An allow-list widened by more than this many values the project does not already admit" }),
  })
  .meta({ id: "ExemptionHighRiskRules", description: "Project-wide exemptions whose effect comes close to switching the control off are high risk, as the tenant and a control switched off for a project are" });
export type HighRiskRules = z.output<typeof HighRiskRules>;
export const DEFAULT_HIGH_RISK: HighRiskRules = { limitFactor: 10, thresholdLevel: 6, allowValues: 5 };

export const ExemptionPolicySpec = z
  .strictObject({
    maxDays: z.strictObject({ waiver: MaxDays, mitigated: MaxDays }).meta({ description: "Longest term per category, in days" }),
    controls: z
      .partialRecord(ControlId, z.strictObject({ waiver: MaxDays.optional(), mitigated: MaxDays.optional() }))
      .default({})
      .meta({ description: "Per-control maxima; both the category's and the control's maximum apply" }),
    highRisk: HighRiskRules.optional().meta({ description: "Absent: the rules stored are kept (the defaults before any were written)" }),
  })
  .meta({ id: "ExemptionPolicySpec" });
export type ExemptionPolicySpec = z.output<typeof ExemptionPolicySpec>;

export const ExemptionPolicy = z
  .object({
    maxDays: z.object({ waiver: z.int(), mitigated: z.int() }),
    controls: z.record(z.string(), z.object({ waiver: z.int().optional(), mitigated: z.int().optional() })),
    highRisk: HighRiskRules,
    updatedAt: z.iso.datetime().optional(),
    updatedBy: z.string().optional(),
    etag: z.string().meta({ description: "\"initial\" until first written" }),
  })
  .meta({ id: "ExemptionPolicy" });
export type ExemptionPolicy = z.output<typeof ExemptionPolicy>;

export const DEFAULT_EXEMPTION_POLICY: ExemptionPolicySpec & { highRisk: HighRiskRules } = { maxDays: { waiver: 30, mitigated: 90 }, controls: {}, highRisk: DEFAULT_HIGH_RISK };
