import { z } from "zod";
import { idSchema, PageQuery, serverFields } from "../common.js";
import { ProjectId } from "../projects/schema.js";

export const AccessReviewId = idSchema("arv");
export const ReviewItemId = idSchema("ari");

/** What a campaign reviews: each kind is one sort of standing access, with its own removal. */
export const REVIEW_KINDS = ["keys", "roleAssignments", "keyShares", "toolApprovals", "exemptions"] as const;
export type ReviewKind = (typeof REVIEW_KINDS)[number];

export const DEFAULT_DECISIONS = ["keep", "remove", "recommendation"] as const;
export const FREQUENCIES = ["weekly", "monthly", "quarterly", "semiannual", "annual"] as const;
export type Frequency = (typeof FREQUENCIES)[number];

const UserId = z.string().trim().min(1).max(256);

export const ReviewerSpec = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("projectOwners") }).meta({ description: "The reviewed item's project: its owner and its ProjectAdmins (snapshotted when the stage starts)" }),
    z.strictObject({ type: z.literal("users"), users: z.array(UserId).min(1).max(25) }).meta({ description: "Named users (the token's oid)" }),
  ])
  .meta({ id: "AccessReviewReviewers" });
export type ReviewerSpec = z.output<typeof ReviewerSpec>;

export const ReviewStageSpec = z.strictObject({
  reviewers: ReviewerSpec,
  fallbackReviewers: z.array(UserId).max(25).default([]).meta({ description: "Review an item when its reviewers resolve to nobody (a project without owner or admins), or only to the item's holder" }),
  durationDays: z.int().min(1).max(90).default(14).meta({ description: "How long the stage runs; reminders go out halfway" }),
});

export const ReviewScope = z
  .discriminatedUnion("level", [z.strictObject({ level: z.literal("tenant") }), z.strictObject({ level: z.literal("project"), projectId: ProjectId })])
  .meta({ id: "AccessReviewScope", description: "The tenant (every project) or one project" });
export type ReviewScope = z.output<typeof ReviewScope>;

export const Recurrence = z
  .strictObject({
    frequency: z.enum(FREQUENCIES),
    occurrences: z.int().min(2).max(100).optional().meta({ description: "Campaigns in all, this one included; unbounded when absent" }),
  })
  .meta({ description: "A recurring review: when a campaign completes, the next one is scheduled one period after this one's start" });

const fields = {
  name: z.string().trim().min(1).max(100),
  description: z.string().max(2000).optional(),
  scope: ReviewScope,
  kind: z.enum(REVIEW_KINDS),
  stages: z.array(ReviewStageSpec).min(1).max(3).meta({ description: "1–3 stages; every item goes through each, and the last decision made counts" }),
  recommendations: z
    .strictObject({ inactiveDays: z.int().min(1).max(730).default(30) })
    .default({ inactiveDays: 30 })
    .meta({ description: "An item unused at the gateway for this many days is recommended for removal (evaluated once, when the campaign starts)" }),
  justificationRequiredOnApproval: z.boolean().default(true),
  reminders: z.boolean().default(true).meta({ description: "Remind reviewers with undecided items halfway through each stage" }),
  completion: z
    .strictObject({
      autoApply: z.boolean().default(false).meta({ description: "Apply the outcomes when the campaign ends (remove = revoke the key, remove the assignment, end the share, withdraw the approval, revoke the exemption)" }),
      defaultDecision: z.enum(DEFAULT_DECISIONS).default("keep").meta({ description: "The outcome of an item no reviewer decided. With autoApply, `remove` or `recommendation` can remove every item when reviewers do not answer" }),
    })
    .default({ autoApply: false, defaultDecision: "keep" }),
  startAt: z.iso.datetime({ offset: true }).optional().meta({ description: "When the first stage starts (default: now); at most 365 days ahead" }),
  recurrence: Recurrence.optional(),
};

export const AccessReviewSpec = z.strictObject(fields).meta({ id: "AccessReviewSpec" });
export type AccessReviewSpec = z.output<typeof AccessReviewSpec>;
export type AccessReviewSpecInput = z.input<typeof AccessReviewSpec>;

export const REVIEW_STATUSES = ["scheduled", "inProgress", "applying", "completed", "canceled"] as const;
export type ReviewStatus = (typeof REVIEW_STATUSES)[number];

const StageState = z.strictObject({
  status: z.enum(["waiting", "inProgress", "completed"]),
  startedAt: z.iso.datetime().optional(),
  endsAt: z.iso.datetime().optional(),
  remindedAt: z.iso.datetime().optional(),
  reviewers: z.record(z.string(), z.array(z.string())).optional().meta({ description: "The stage's reviewers by project id, snapshotted when it started" }),
});

const Counts = z.record(z.string(), z.int());

export const ReviewReport = z
  .strictObject({
    items: z.int(),
    recommendations: Counts.meta({ description: "remove / keep / none (no signal: newer than the look-back window, or no usage data)" }),
    decided: Counts.meta({ description: "Items whose outcome a reviewer decided, by decision (approve / deny)" }),
    notReviewed: z.int(),
    outcomes: Counts.meta({ description: "keep / remove, after the default decision" }),
    followedRecommendation: z.int().meta({ description: "Decided items whose decision matched a remove or keep recommendation" }),
    applied: Counts.optional().meta({ description: "removed / alreadyGone / failed, once applied" }),
    durationMs: z.int().optional(),
  })
  .meta({ id: "AccessReviewReport" });
export type ReviewReport = z.output<typeof ReviewReport>;

export const AccessReview = z
  .strictObject({
    id: AccessReviewId,
    ...fields,
    recommendations: z.strictObject({ inactiveDays: z.int() }),
    justificationRequiredOnApproval: z.boolean(),
    reminders: z.boolean(),
    completion: z.strictObject({ autoApply: z.boolean(), defaultDecision: z.enum(DEFAULT_DECISIONS) }),
    startAt: z.iso.datetime(),
    status: z.enum(REVIEW_STATUSES),
    currentStage: z.int(),
    stageStates: z.array(StageState),
    occurrence: z.int().meta({ description: "1 for the first campaign of a recurring review" }),
    previousId: AccessReviewId.optional(),
    nextId: AccessReviewId.optional(),
    activityThrough: z.iso.datetime().optional().meta({ description: "Usage was ingested up to here when the recommendations were made" }),
    itemCount: z.int(),
    report: ReviewReport.optional(),
    warnings: z.array(z.string()).meta({ description: "e.g. that auto-apply with a remove default can remove everything when nobody answers" }),
    startedAt: z.iso.datetime().optional(),
    completedAt: z.iso.datetime().optional(),
    canceledReason: z.string().optional(),
    ...serverFields,
  })
  .meta({ id: "AccessReview" });
export type AccessReview = z.output<typeof AccessReview>;

export const ReviewDecision = z.strictObject({
  stage: z.int(),
  decision: z.enum(["approve", "deny"]),
  by: z.string(),
  at: z.iso.datetime(),
  justification: z.string().optional(),
});

export const ReviewItem = z
  .strictObject({
    id: ReviewItemId,
    reviewId: AccessReviewId,
    kind: z.enum(REVIEW_KINDS),
    projectId: z.string(),
    target: z.strictObject({
      id: z.string().meta({ description: "What is reviewed: a key id, `<principal>/<role>`, `<key id>→<project id>`, `<server id>/<tool>`, an exemption id" }),
      label: z.string(),
      holder: z.string().optional().meta({ description: "Whose access it is (a key's owner, an assignment's principal…); a holder never reviews their own item" }),
    }),
    since: z.iso.datetime().meta({ description: "When the access began" }),
    lastActivityAt: z.iso.datetime().optional().meta({ description: "Last use through the gateway, from the usage rollups, when the campaign started" }),
    recommendation: z.enum(["remove", "keep", "none"]),
    recommendationReason: z.string(),
    reviewers: z.array(z.string()).meta({ description: "Who may decide it in the current stage (once the campaign is over: who could in its last stage)" }),
    decisions: z.array(ReviewDecision),
    outcome: z.enum(["keep", "remove"]).optional(),
    outcomeSource: z.enum(["decision", "default"]).optional(),
    applied: z.strictObject({ at: z.iso.datetime(), result: z.enum(["removed", "alreadyGone", "failed", "kept"]), detail: z.string().optional() }).optional(),
    etag: z.string(),
  })
  .meta({ id: "AccessReviewItem" });
export type ReviewItem = z.output<typeof ReviewItem>;

export const ReviewDecisionSpec = z
  .strictObject({
    decision: z.enum(["approve", "deny"]).meta({ description: "approve keeps the access, deny removes it (when applied)" }),
    justification: z.string().trim().min(1).max(2000).optional(),
  })
  .meta({ id: "AccessReviewDecisionSpec" });
export type ReviewDecisionSpec = z.output<typeof ReviewDecisionSpec>;

export const ReviewStopSpec = z.strictObject({ reason: z.string().trim().min(1).max(500) }).meta({ id: "AccessReviewStopSpec" });

export const AccessReviewListQuery = PageQuery.extend({
  status: z.enum(REVIEW_STATUSES).optional(),
  projectId: ProjectId.optional(),
  reviewer: z.literal("me").optional().meta({ description: "Only campaigns where the caller reviews something in the current stage" }),
});
export type AccessReviewListQuery = z.output<typeof AccessReviewListQuery>;

export const ReviewItemListQuery = PageQuery.extend({
  reviewer: z.literal("me").optional().meta({ description: "Only the items the caller may decide now" }),
  recommendation: z.enum(["remove", "keep", "none"]).optional(),
});
export type ReviewItemListQuery = z.output<typeof ReviewItemListQuery>;

export const AccessReviewList = z.object({ items: z.array(AccessReview), continuationToken: z.string().optional(), nextLink: z.string().optional() }).meta({ id: "AccessReviewList" });
export const ReviewItemList = z.object({ items: z.array(ReviewItem), continuationToken: z.string().optional(), nextLink: z.string().optional() }).meta({ id: "AccessReviewItemList" });

/**
 * The start of the occurrence `periods` periods after a series' first start: weeks are 7 days; calendar
 * months keep the first start's day, or the month's last day (a series started on the 31st is on the 31st
 * whenever the month has one). Counted from the series' start, never from the previous occurrence, so a
 * short month does not move every later occurrence to an earlier day.
 */
export function occurrenceStart(seriesStart: string, frequency: Frequency, periods: number): string {
  const d = new Date(seriesStart);
  if (frequency === "weekly") return new Date(d.getTime() + periods * 7 * 86_400_000).toISOString();
  const months = { monthly: 1, quarterly: 3, semiannual: 6, annual: 12 }[frequency] * periods;
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  // The 31st of a short month becomes its last day, not the 1st of the next.
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d.toISOString();
}
