/**
 * Access reviews (docs/access-reviews.md, ADR 017): campaigns over one kind of standing access in a
 * project or the tenant, reviewed in 1–3 stages with recommendations from gateway activity, and at the
 * end kept or removed. This is the API; `Campaign` (./campaign.ts) is the course its orchestration drives.
 */
import { canonicalUser, sameUser } from "../users.js";
import type { Clock } from "../../ports/clock.js";
import { unversioned, type Filter, type Versioned } from "../../ports/store.js";
import { newId, etagMatches, type Page, type Principal, type RequestContext } from "../common.js";
import { AppError, fail } from "../errors.js";
import type { Driven, DriveRequest } from "../kernel/drive.js";
import { holdsAny, holdsOn, PROJECT_MANAGERS, TENANT_ADMINS } from "../kernel/roles.js";
import { parseOrThrow } from "../validation.js";
import { Campaign, stakeIn, type CampaignKit, type CampaignState } from "./campaign.js";
import { reviewPartition, UNFINISHED, type ItemDoc, type ReviewDoc, type ReviewDocuments } from "./documents.js";
import {
  AccessReviewSpec,
  ReviewDecisionSpec,
  ReviewStopSpec,
  type AccessReview,
  type AccessReviewListQuery,
  type AccessReviewSpecInput,
  type ReviewItem,
  type ReviewItemListQuery,
} from "./schema.js";
import type { ReviewTargets } from "./targets.js";

export const ACCESS_REVIEW_ORCHESTRATOR = "accessReviewOrchestrator";

/** What the orchestration is started with. */
export interface AccessReviewInput {
  tenantId: string;
  reviewId: string;
}

/** One orchestration per campaign, with the campaign's id (starting it twice is harmless; the sweep starts any that is missing). */
export const accessReviewDrive = (r: { tenantId: string; id: string }): DriveRequest<AccessReviewInput> => ({
  orchestrator: ACCESS_REVIEW_ORCHESTRATOR,
  instanceId: r.id,
  input: { tenantId: r.tenantId, reviewId: r.id },
});

/** May read every campaign of the tenant. */
const OVERSEERS = ["TenantAdmin", "Auditor"] as const;
const forbidden = (detail: string) => new AppError({ kind: "forbidden", detail });
const DAY_MS = 86_400_000;

export interface AccessReviewKit extends Omit<CampaignKit, "docs"> {
  docs: ReviewDocuments;
  clock: Clock;
  targets: ReviewTargets;
  /** A project's role assignments (undefined: no such project in the tenant). */
  projectRoles(tenantId: string, projectId: string): Promise<{ principalId: string; role: string }[] | undefined>;
}

export class AccessReviewService {
  readonly campaign: Campaign;
  private readonly docs: ReviewDocuments;

  constructor(private readonly kit: AccessReviewKit) {
    this.docs = kit.docs;
    this.campaign = new Campaign(kit);
  }

  async create(ctx: RequestContext, input: AccessReviewSpecInput): Promise<Driven<AccessReview>> {
    const { principal } = ctx;
    const parsed = parseOrThrow(AccessReviewSpec, input, "body");
    // Reviewers are kept as tokens carry them (an object id in lower case: users.ts), so "reviewer = me" finds them.
    const spec = {
      ...parsed,
      stages: parsed.stages.map((s) => ({ ...s, fallbackReviewers: s.fallbackReviewers.map(canonicalUser), ...(s.reviewers.type === "users" ? { reviewers: { ...s.reviewers, users: s.reviewers.users.map(canonicalUser) } } : {}) })),
    };
    await this.mayManage(principal, spec.scope.level === "project" ? spec.scope.projectId : undefined);
    const now = this.kit.clock.now();
    if (!this.kit.targets[spec.kind]) fail({ kind: "validation", detail: `nothing in this deployment holds ${spec.kind}`, errors: [{ field: "body.kind", message: "the tools pillar is not installed" }] });
    if (spec.startAt && Date.parse(spec.startAt) > now.getTime() + 365 * DAY_MS) fail({ kind: "validation", detail: "startAt is too far ahead", errors: [{ field: "body.startAt", message: "must be within 365 days" }] });
    const at = now.toISOString();
    const startAt = spec.startAt && Date.parse(spec.startAt) > now.getTime() ? new Date(spec.startAt).toISOString() : at;
    const doc: ReviewDoc = {
      ...spec,
      id: newId("arv"),
      tenantId: principal.tenantId,
      scopeId: reviewPartition(principal.tenantId).scopeId,
      docType: "accessReview",
      startAt,
      status: "scheduled",
      currentStage: 0,
      stageStates: spec.stages.map(() => ({ status: "waiting" as const })),
      occurrence: 1,
      itemCount: 0,
      warnings: warningsOf(spec),
      scopeProjectId: spec.scope.level === "project" ? spec.scope.projectId : "",
      currentReviewers: [],
      createdAt: at,
      createdBy: principal.userId,
      updatedAt: at,
      updatedBy: principal.userId,
    };
    const review = await this.docs.reviews.create(ctx, doc, { action: "accessReview.create", event: "aigov.accessReview.created.v1", data: eventData(doc) });
    return { ...review, drive: accessReviewDrive(doc) };
  }

  async get(ctx: RequestContext, id: string): Promise<AccessReview> {
    const doc = await this.docs.loadReview(ctx.principal.tenantId, id);
    await this.mayRead(ctx.principal, doc);
    return this.docs.reviews.view(doc);
  }

  /**
   * Overseers see every campaign; a project's managers that project's (`projectId`); everyone else
   * only the campaigns they review now (as if they asked `reviewer=me`).
   */
  async list(ctx: RequestContext, q: AccessReviewListQuery): Promise<Page<AccessReview>> {
    const { principal } = ctx;
    const filters: Filter[] = [];
    if (q.status) filters.push({ field: "status", op: "=", value: q.status });
    if (q.projectId) filters.push({ field: "scopeProjectId", op: "=", value: q.projectId });
    const whole = holdsAny(principal.roles, OVERSEERS) || (q.projectId !== undefined && (await this.manages(principal, q.projectId)) === true);
    if (q.reviewer === "me" || !whole) filters.push({ field: "currentReviewers", op: "arrayContains", value: principal.userId });
    return this.docs.reviews.page(reviewPartition(principal.tenantId), { filters, orderBy: { field: "createdAt", direction: "DESC" } }, q);
  }

  /** A campaign's items: all of them for those who may read the campaign as a whole, only their own for a reviewer. */
  async listItems(ctx: RequestContext, id: string, q: ReviewItemListQuery): Promise<Page<ReviewItem>> {
    const { principal } = ctx;
    const doc = await this.docs.loadReview(principal.tenantId, id);
    const whole = await this.readsWhole(principal, doc);
    if (!whole && !isReviewer(doc, principal.userId)) throw forbidden("you neither review nor oversee this access review");
    const filters: Filter[] = [{ field: "reviewId", op: "=", value: id }];
    if (q.reviewer === "me" || !whole) filters.push({ field: "reviewers", op: "arrayContains", value: principal.userId });
    if (q.recommendation) filters.push({ field: "recommendation", op: "=", value: q.recommendation });
    return this.docs.items.page(reviewPartition(principal.tenantId), { filters, orderBy: { field: "id", direction: "ASC" } }, q);
  }

  /**
   * A reviewer's decision on an item in the current stage: approve keeps the access, deny removes it
   * once applied. Changeable until the stage ends (the last one counts); audited, with its event.
   */
  async decide(ctx: RequestContext, id: string, itemId: string, input: unknown, ifMatch?: string): Promise<ReviewItem> {
    const { principal } = ctx;
    const review = await this.docs.loadReview(principal.tenantId, id);
    const item = await this.docs.loadItem(principal.tenantId, id, itemId);
    const spec = parseOrThrow(ReviewDecisionSpec, input, "body");
    // Only the item's reviewers decide (overseers included only when named): nobody else learns more than that.
    // The stakes as they are now too: the access may have passed to the reviewer, or they asked to renew it, since the snapshot.
    const stake = stakeIn(item, await this.kit.targets[item.kind]?.stakes?.(principal.tenantId, item.projectId, item.target.id), principal.userId);
    if (stake === "holder") fail({ kind: "forbidden", detail: "nobody reviews their own access", reason: "reviewer_is_holder" });
    if (stake === "party") fail({ kind: "forbidden", detail: "nobody reviews access they asked for", reason: "reviewer_is_party" });
    if (!item.reviewers.some((r) => sameUser(r, principal.userId))) fail({ kind: "forbidden", detail: "you are not a reviewer of this item in the current stage", reason: "not_item_reviewer" });
    const now = this.kit.clock.now();
    const stage = review.stageStates[review.currentStage];
    if (review.status !== "inProgress" || review.stopRequestedAt || stage?.status !== "inProgress" || !stage.endsAt || now.getTime() >= Date.parse(stage.endsAt)) {
      fail({ kind: "conflict", detail: `the access review is ${review.status === "inProgress" ? "past its stage's end" : review.status}: decisions are closed`, reason: "access_review_closed" });
    }
    // The campaign's completion fixed this item's outcome (a stop under way, read here before it was asked
    // for): a decision now would be recorded but never count. Written conditionally on the item, so a
    // completion that fixes it after this read makes the write below fail instead.
    if (item.outcome) fail({ kind: "conflict", detail: "the access review is completing: decisions are closed", reason: "access_review_closed" });
    if (spec.decision === "approve" && review.justificationRequiredOnApproval && !spec.justification) {
      fail({ kind: "validation", detail: "this review requires a justification to keep access", errors: [{ field: "body.justification", message: "is required to approve" }] });
    }
    if (ifMatch !== undefined && !etagMatches(item._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const decision = { stage: review.currentStage, decision: spec.decision, by: principal.userId, at: now.toISOString(), ...(spec.justification ? { justification: spec.justification } : {}) };
    const next: ItemDoc = { ...unversioned(item), decisions: [...item.decisions.filter((d) => d.stage !== review.currentStage), decision] };
    return this.docs.items.replace(ctx, item, next, {
      action: "accessReview.decide",
      event: "aigov.accessReview.decided.v1",
      // The justification stays in the item (and its audit digest): events carry no free text.
      data: { reviewId: id, itemId, kind: item.kind, projectId: item.projectId, targetId: item.target.id, stage: review.currentStage, decision: spec.decision, by: principal.userId },
    });
  }

  /** Applies a completed campaign's removals (when it did not auto-apply them, or some failed): the orchestration runs them. */
  async apply(ctx: RequestContext, id: string, ifMatch: string): Promise<Driven<AccessReview>> {
    const doc = await this.docs.loadReview(ctx.principal.tenantId, id);
    await this.mayManage(ctx.principal, doc.scope.level === "project" ? doc.scope.projectId : undefined);
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (doc.status !== "completed" || !doc.report) fail({ kind: "conflict", detail: `the access review is ${doc.status}: only a completed one can be applied`, reason: "access_review_not_completed" });
    const applied = doc.report!.applied;
    if (applied && (applied.failed ?? 0) === 0) fail({ kind: "conflict", detail: "the access review's outcomes are already applied", reason: "access_review_applied" });
    if ((doc.report!.outcomes.remove ?? 0) === 0) fail({ kind: "conflict", detail: "no item's outcome is remove: there is nothing to apply", reason: "access_review_applied" });
    // Removals that failed before are due again (never-applied ones still are).
    for await (const item of this.docs.itemsOf(doc.tenantId, id, [{ field: "applied.result", op: "=", value: "failed" }])) await this.docs.updateItem(item, (d) => (d.applied?.result === "failed" ? { ...d, applyDue: true } : undefined));
    const at = this.kit.clock.now().toISOString();
    const review = await this.docs.reviews.replace(ctx, doc, { ...unversioned(doc), status: "applying", updatedAt: at, updatedBy: ctx.principal.userId }, { action: "accessReview.apply", event: "aigov.accessReview.applying.v1", data: eventData(doc) });
    return { ...review, drive: accessReviewDrive(doc) };
  }

  /**
   * Stops a campaign: a scheduled one is canceled; one in progress completes now (its remaining stages
   * skipped, the completion settings applied as at its end). The caller wakes the orchestration.
   */
  async stop(ctx: RequestContext, id: string, input: unknown, ifMatch: string): Promise<AccessReview> {
    const doc = await this.docs.loadReview(ctx.principal.tenantId, id);
    await this.mayManage(ctx.principal, doc.scope.level === "project" ? doc.scope.projectId : undefined);
    const spec = parseOrThrow(ReviewStopSpec, input, "body");
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (doc.status !== "scheduled" && doc.status !== "inProgress") fail({ kind: "conflict", detail: `the access review is already ${doc.status}`, reason: "access_review_closed" });
    if (doc.stopRequestedAt) fail({ kind: "conflict", detail: "the access review is already stopping", reason: "access_review_closed" });
    const at = this.kit.clock.now().toISOString();
    const next: ReviewDoc =
      doc.status === "scheduled"
        ? { ...unversioned(doc), status: "canceled", canceledReason: spec.reason, completedAt: at, updatedAt: at, updatedBy: ctx.principal.userId }
        : { ...unversioned(doc), stopRequestedAt: at, canceledReason: spec.reason, updatedAt: at, updatedBy: ctx.principal.userId };
    return this.docs.reviews.replace(ctx, doc, next, { action: doc.status === "scheduled" ? "accessReview.cancel" : "accessReview.stop", event: doc.status === "scheduled" ? "aigov.accessReview.canceled.v1" : "aigov.accessReview.stopped.v1", data: eventData(next) });
  }

  /** The orchestration's one step (see Campaign.advance). */
  advance(tenantId: string, id: string, correlationId: string): Promise<CampaignState> {
    return this.campaign.advance(tenantId, id, correlationId);
  }

  /**
   * When the last campaign covering the project (its own or a tenant-wide one) completed as a review
   * (promotion gates): it reviewed something, and was not stopped before anyone decided anything — a
   * campaign created and stopped at once proves nothing.
   */
  async lastCompletedFor(tenantId: string, projectId: string): Promise<string | undefined> {
    let latest: string | undefined;
    for (const scope of [projectId, ""]) {
      const filters: Filter[] = [{ field: "status", op: "=", value: "completed" }, { field: "scopeProjectId", op: "=", value: scope }];
      let seen = 0;
      for await (const d of this.docs.reviews.every(reviewPartition(tenantId), { filters, orderBy: { field: "completedAt", direction: "DESC" } })) {
        const decided = Object.values(d.report?.decided ?? {}).reduce((a, b) => a + b, 0);
        if (d.itemCount > 0 && !(d.stopRequestedAt && decided === 0)) {
          if (d.completedAt && (!latest || d.completedAt > latest)) latest = d.completedAt;
          break;
        }
        // Newest first: after a few that do not count, an older one would not be recent anyway.
        if (++seen >= 20) break;
      }
    }
    return latest;
  }

  /** Campaigns that need a live orchestration, in every tenant (the sweep). */
  unfinishedEverywhere(): AsyncGenerator<Versioned<ReviewDoc>> {
    return this.docs.unfinishedEverywhere();
  }

  /** Whether the campaign still needs its orchestration (the sweep asks before starting a finished one again). */
  async needsDriver(tenantId: string, id: string): Promise<boolean> {
    const doc = await this.docs.readReview(tenantId, id);
    return !!doc && UNFINISHED.includes(doc.status);
  }

  /** Tenant-wide campaigns: TenantAdmin. A project's: its managers (tenant roles, or ProjectAdmin assigned on it). */
  private async mayManage(p: Principal, projectId: string | undefined): Promise<void> {
    if (!projectId) {
      if (holdsAny(p.roles, TENANT_ADMINS)) return;
      throw forbidden("tenant-wide access reviews require TenantAdmin");
    }
    const manages = await this.manages(p, projectId);
    if (manages === undefined) fail({ kind: "notFound", resource: `/projects/${projectId}` });
    if (!manages) throw forbidden("access reviews of a project require TenantAdmin or its ProjectAdmin");
  }

  /** Whether the principal manages the project (the one rule, kernel/roles.ts); undefined when it is not in the tenant. */
  private async manages(p: Principal, projectId: string): Promise<boolean | undefined> {
    const roleAssignments = await this.kit.projectRoles(p.tenantId, projectId);
    return roleAssignments && holdsOn(p, { roleAssignments }, PROJECT_MANAGERS);
  }

  /** Overseers, and a project campaign's managers, read a campaign whole. */
  private async readsWhole(p: Principal, doc: ReviewDoc): Promise<boolean> {
    if (holdsAny(p.roles, OVERSEERS)) return true;
    return doc.scope.level === "project" && (await this.manages(p, doc.scope.projectId)) === true;
  }

  private async mayRead(p: Principal, doc: ReviewDoc): Promise<void> {
    if ((await this.readsWhole(p, doc)) || isReviewer(doc, p.userId)) return;
    throw forbidden("you neither review nor oversee this access review");
  }
}

/** A reviewer of the campaign now or in a stage that has started. */
function isReviewer(doc: ReviewDoc, userId: string): boolean {
  const me = (u: string) => sameUser(u, userId);
  if (doc.currentReviewers.some(me)) return true;
  return doc.stages.some((s, i) => doc.stageStates[i]?.status !== "waiting" && (s.fallbackReviewers.some(me) || Object.values(doc.stageStates[i]?.reviewers ?? {}).some((r) => r.some(me))));
}

function warningsOf(spec: AccessReviewSpec): string[] {
  const { autoApply, defaultDecision } = spec.completion;
  if (!autoApply || defaultDecision === "keep") return [];
  return [
    defaultDecision === "remove"
      ? "autoApply with defaultDecision 'remove' removes every item no reviewer answers: if reviewers do not respond, all of the access under review is removed"
      : "autoApply with defaultDecision 'recommendation' removes every unanswered item recommended for removal: if reviewers do not respond, all unused access is removed",
  ];
}

function eventData(doc: ReviewDoc) {
  return { id: doc.id, name: doc.name, kind: doc.kind, scope: doc.scope, status: doc.status, startAt: doc.startAt };
}
