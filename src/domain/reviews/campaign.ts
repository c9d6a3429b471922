/**
 * A campaign's course, one idempotent step at a time (the orchestration's single activity calls
 * `advance` whenever its timer fires or it is woken): start (snapshot the items with their
 * recommendations, resolve the first stage's reviewers), remind halfway, move to the next stage, complete
 * (outcomes, report, the next occurrence), apply the removals. Every step is decided from the stored
 * campaign and the clock, so a retried or repeated step does nothing twice.
 */
import { canonicalUser, sameUser } from "../users.js";
import type { Clock } from "../../ports/clock.js";
import { isNoNotificationChannel, type Notifier } from "../../ports/notifier.js";
import { TENANT_SCOPE, unversioned, type Versioned } from "../../ports/store.js";
import type { RequestContext } from "../common.js";
import { systemContext } from "../kernel/system.js";
import { itemId, nextReviewId, type ItemDoc, type ReviewDoc, type ReviewDocuments } from "./documents.js";
import { occurrenceStart, type ReviewReport, type ReviewStatus } from "./schema.js";
import { ACTIVITY_OF, recommend, type ReviewTargets, type Stakes } from "./targets.js";
import type { ActivityField } from "../usage/ingest.js";

/** At most this many items per campaign: a larger estate is reviewed per project. */
export const MAX_ITEMS = 5000;
/** Removals applied per step (each may confirm a gateway change): the orchestration calls again until done. */
const APPLY_CHUNK = 50;
const DAY_MS = 86_400_000;
const ACTOR = "system:access-reviews" as const;

/** What the orchestration needs to know: go on now (no wakeAt), at wakeAt, or stop (a final status). */
export interface CampaignState {
  status: ReviewStatus;
  wakeAt?: string;
}

export interface CampaignKit {
  docs: ReviewDocuments;
  targets: ReviewTargets;
  clock: Clock;
  notifier: Notifier;
  publicUrl: () => string;
  /** The projects a tenant-wide campaign covers. */
  projectIds(tenantId: string): Promise<string[]>;
  /** A project's owner and its ProjectAdmins (undefined when the project is gone). */
  projectOwners(tenantId: string, projectId: string): Promise<string[] | undefined>;
  /** Up to when usage is ingested, and since when each activity field is recorded. */
  coverage(): Promise<{ through: string; since: Partial<Record<ActivityField, string>> } | undefined>;
}

export const isFinal = (s: ReviewStatus) => s === "completed" || s === "canceled";

/**
 * A user's stake in an item: its holder, or a party who asked for it — as snapshotted, or as it is now
 * (`now`, the target's current stakes: a holder or a party since the snapshot counts as well).
 */
export function stakeIn(item: Pick<ItemDoc, "target" | "parties">, now: Stakes | undefined, user: string): "holder" | "party" | undefined {
  if ([item.target.holder, now?.holder].some((h) => sameUser(h, user))) return "holder";
  if ([...(item.parties ?? []), ...(now?.parties ?? [])].some((p) => sameUser(p, user))) return "party";
  return undefined;
}

export class Campaign {
  constructor(private readonly kit: CampaignKit) {}

  /** Does what is due now and says when to look again. */
  async advance(tenantId: string, id: string, correlationId: string): Promise<CampaignState> {
    const ctx = systemContext(tenantId, ACTOR, correlationId);
    const doc = await this.kit.docs.readReview(tenantId, id);
    if (!doc) return { status: "canceled" };
    const now = this.kit.clock.now();
    switch (doc.status) {
      case "scheduled":
        if (now.getTime() < Date.parse(doc.startAt)) return { status: "scheduled", wakeAt: doc.startAt };
        await this.start(ctx, doc);
        return { status: "inProgress" };
      case "inProgress": {
        const stage = doc.stageStates[doc.currentStage]!;
        if (doc.stopRequestedAt || now.getTime() >= Date.parse(stage.endsAt!)) {
          if (!doc.stopRequestedAt && doc.currentStage + 1 < doc.stages.length) await this.startStage(ctx, doc, doc.currentStage + 1);
          else await this.complete(ctx, doc);
          return { status: "inProgress" };
        }
        const halfway = new Date((Date.parse(stage.startedAt!) + Date.parse(stage.endsAt!)) / 2).toISOString();
        if (doc.reminders && !stage.remindedAt) {
          if (now.toISOString() < halfway) return { status: "inProgress", wakeAt: halfway };
          await this.remind(ctx, doc);
          return { status: "inProgress" };
        }
        return { status: "inProgress", wakeAt: stage.endsAt! };
      }
      case "applying":
        return (await this.applyChunk(ctx, doc)) ? { status: "applying" } : { status: "completed" };
      default:
        return { status: doc.status };
    }
  }

  /** Snapshots every item with its recommendation, then starts the first stage. */
  private async start(ctx: RequestContext, doc: Versioned<ReviewDoc>): Promise<void> {
    const { tenantId } = doc;
    const target = this.kit.targets[doc.kind];
    const projectIds = doc.scope.level === "tenant" ? await this.kit.projectIds(tenantId) : [doc.scope.projectId];
    const now = this.kit.clock.now();
    const covered = await this.kit.coverage();
    const starts = ACTIVITY_OF[doc.kind].map((f) => covered?.since[f]);
    const since = starts.every((x) => x !== undefined) ? starts.sort().at(-1) : undefined;
    const coverage = covered && since ? { through: covered.through, since } : undefined;
    const activityThrough = covered?.through;
    const items: ItemDoc[] = [];
    // A tenant-wide campaign reviews what the tenant itself holds too (tenant-scope exemptions), under `_tenant`.
    const scopes = doc.scope.level === "tenant" && target?.listTenant ? [...projectIds, TENANT_SCOPE] : projectIds;
    for (const projectId of scopes) {
      const found = !target ? [] : projectId === TENANT_SCOPE ? await target.listTenant!(tenantId, projectIds) : await target.list(tenantId, projectId);
      for (const r of found) {
        items.push({
          id: itemId(doc.id, doc.kind, projectId, r.targetId),
          tenantId,
          scopeId: doc.scopeId,
          docType: "accessReviewItem",
          reviewId: doc.id,
          kind: doc.kind,
          projectId,
          target: { id: r.targetId, label: r.label, ...(r.holder ? { holder: r.holder } : {}) },
          since: r.since,
          ...(r.lastActivityAt ? { lastActivityAt: r.lastActivityAt } : {}),
          ...(r.parties?.length ? { parties: r.parties } : {}),
          ...recommend(r, now.getTime(), doc.recommendations.inactiveDays, coverage),
          reviewers: [],
          decisions: [],
        });
      }
      if (items.length > MAX_ITEMS) {
        await this.transition(ctx, doc, { ...unversioned(doc), status: "canceled", canceledReason: `more than ${MAX_ITEMS} items: review per project instead`, completedAt: now.toISOString() }, "accessReview.cancel", "aigov.accessReview.canceled.v1");
        return;
      }
    }
    // A retried start writes the same ids; an item of an earlier attempt whose access is gone since goes.
    const kept = new Set(items.map((i) => i.id));
    const stale: string[] = [];
    for await (const old of this.kit.docs.itemsOf(tenantId, doc.id)) if (!kept.has(old.id)) stale.push(old.id);
    await this.kit.docs.deleteItems(tenantId, stale);
    await this.kit.docs.putItems(tenantId, items);
    const started: ReviewDoc = { ...unversioned(doc), status: "inProgress", startedAt: now.toISOString(), itemCount: items.length, ...(activityThrough ? { activityThrough } : {}) };
    await this.startStage(ctx, doc, 0, "accessReview.start", "aigov.accessReview.started.v1", started);
  }

  /** Resolves the stage's reviewers per project, gives each item its reviewers, then records the stage (and tells the reviewers). */
  private async startStage(ctx: RequestContext, doc: Versioned<ReviewDoc>, index: number, action = "accessReview.stage", event = "aigov.accessReview.stageStarted.v1", base: ReviewDoc = doc): Promise<void> {
    const { tenantId } = doc;
    const stage = doc.stages[index]!;
    const now = this.kit.clock.now();
    const byProject: Record<string, string[]> = {};
    const reviewersOf = async (projectId: string) => {
      byProject[projectId] ??= stage.reviewers.type === "users" ? stage.reviewers.users : ((await this.kit.projectOwners(tenantId, projectId)) ?? []);
      return byProject[projectId];
    };
    const everyone = new Set<string>();
    const count = new Map<string, number>();
    const target = this.kit.targets[doc.kind];
    for await (const item of this.kit.docs.itemsOf(tenantId, doc.id)) {
      // A later stage asks who has a stake now: the first starts on the snapshot just taken.
      const now = index > 0 ? await target?.stakes?.(tenantId, item.projectId, item.target.id) : undefined;
      const stake = (u: string) => stakeIn(item, now, u) !== undefined;
      let reviewers = (await reviewersOf(item.projectId)).filter((u) => !stake(u));
      // Nobody to review (no owner, or only the holder): the fallback reviewers do.
      if (reviewers.length === 0) reviewers = stage.fallbackReviewers.filter((u) => !stake(u));
      // Kept as tokens carry them (project owners come from assignments as written), so "reviewer = me" finds them.
      reviewers = [...new Set(reviewers.map(canonicalUser))].sort();
      for (const r of reviewers) {
        everyone.add(r);
        count.set(r, (count.get(r) ?? 0) + 1);
      }
      await this.kit.docs.updateItem(item, (d) => (sameList(d.reviewers, reviewers) ? undefined : { ...d, reviewers }));
    }
    const endsAt = new Date(now.getTime() + stage.durationDays * DAY_MS).toISOString();
    const stageStates = base.stageStates.map((s, i) =>
      i === index ? { status: "inProgress" as const, startedAt: now.toISOString(), endsAt, reviewers: byProject } : i < index ? { ...s, status: "completed" as const } : s,
    );
    const next: ReviewDoc = { ...unversioned(base as ReviewDoc & { _etag?: string }), currentStage: index, stageStates, currentReviewers: [...everyone].sort(), updatedAt: now.toISOString(), updatedBy: ACTOR };
    // Notices first, then the transition: a step retried after a failed delivery sends them again
    // (at least once), where the other order could lose them for good.
    for (const [reviewer, n] of count) {
      await this.tell(doc, reviewer, {
        subject: `Access review: ${doc.name} (stage ${index + 1} of ${doc.stages.length})`,
        body: `You have ${n} item(s) to review (${doc.kind}) by ${endsAt}. Approve keeps the access, deny removes it.`,
        link: this.itemsLink(doc.id),
      });
    }
    await this.transition(ctx, doc, next, action, event);
  }

  /**
   * A notice to one reviewer. A failed delivery fails the step (it is retried: at least once), except
   * where no channel exists at all: a retry would never deliver, and the review must go on (reviewers
   * find their items through the API, the portal and the CLI).
   */
  private async tell(doc: ReviewDoc, reviewer: string, message: Parameters<Notifier["deliver"]>[1]): Promise<void> {
    try {
      await this.kit.notifier.deliver(reviewer, message);
    } catch (err) {
      if (!isNoNotificationChannel(err)) throw err;
      console.warn(`access review ${doc.id}: no notification channel; '${message.subject}' was not delivered to a reviewer`);
    }
  }

  /** Halfway through the stage: reviewers who still have undecided items hear about it (once per stage). */
  private async remind(ctx: RequestContext, doc: Versioned<ReviewDoc>): Promise<void> {
    const waiting = new Map<string, number>();
    for await (const item of this.kit.docs.itemsOf(doc.tenantId, doc.id)) {
      if (item.decisions.some((d) => d.stage === doc.currentStage)) continue;
      for (const r of item.reviewers) waiting.set(r, (waiting.get(r) ?? 0) + 1);
    }
    const now = this.kit.clock.now().toISOString();
    const stageStates = doc.stageStates.map((s, i) => (i === doc.currentStage ? { ...s, remindedAt: now } : s));
    const endsAt = doc.stageStates[doc.currentStage]!.endsAt;
    for (const [reviewer, n] of waiting) {
      await this.tell(doc, reviewer, { subject: `Reminder — access review: ${doc.name}`, body: `${n} item(s) still await your decision; the stage ends ${endsAt}.`, link: this.itemsLink(doc.id) });
    }
    await this.transition(ctx, doc, { ...unversioned(doc), stageStates, updatedAt: now, updatedBy: ACTOR }, "accessReview.remind", "aigov.accessReview.reminded.v1", { reminded: waiting.size });
  }

  /** Each item's outcome (the last decision made, else the default), the report, and the next occurrence. */
  private async complete(ctx: RequestContext, doc: Versioned<ReviewDoc>): Promise<void> {
    const { tenantId } = doc;
    const now = this.kit.clock.now();
    const report: ReviewReport = { items: 0, recommendations: { remove: 0, keep: 0, none: 0 }, decided: { approve: 0, deny: 0 }, notReviewed: 0, outcomes: { keep: 0, remove: 0 }, followedRecommendation: 0 };
    let removals = 0;
    for await (const listed of this.kit.docs.itemsOf(tenantId, doc.id)) {
      // Derived from the item as it is written: a decision that lands meanwhile is taken into account.
      const item = await this.kit.docs.updateItem(listed, (d) => {
        if (d.outcome) return undefined;
        const o = this.outcomeOf(doc, d);
        return { ...d, ...o, ...(o.outcome === "remove" ? { applyDue: true } : {}) };
      });
      if (!item?.outcome) continue;
      const last = lastDecision(item);
      report.items += 1;
      report.recommendations[item.recommendation] = (report.recommendations[item.recommendation] ?? 0) + 1;
      if (last) report.decided[last.decision] = (report.decided[last.decision] ?? 0) + 1;
      else report.notReviewed += 1;
      report.outcomes[item.outcome] = (report.outcomes[item.outcome] ?? 0) + 1;
      if (last && item.recommendation !== "none" && item.recommendation === item.outcome) report.followedRecommendation += 1;
      if (item.outcome === "remove") removals += 1;
    }
    const stageStates = doc.stageStates.map((s) => (s.status === "inProgress" ? { ...s, status: "completed" as const } : s));
    const applying = doc.completion.autoApply && removals > 0;
    const at = now.toISOString();
    const next: ReviewDoc = {
      ...unversioned(doc),
      status: applying ? "applying" : "completed",
      stageStates,
      currentReviewers: [],
      report: { ...report, ...(applying ? {} : { durationMs: now.getTime() - Date.parse(doc.startedAt ?? doc.startAt) }) },
      ...(applying ? {} : { completedAt: at }),
      updatedAt: at,
      updatedBy: ACTOR,
    };
    const successor = this.successor(doc, now);
    if (successor) next.nextId = successor.id;
    await this.transition(ctx, doc, next, "accessReview.complete", "aigov.accessReview.completed.v1", { report, ...(successor ? { nextId: successor.id, nextStartAt: successor.startAt } : {}) }, successor);
  }

  /** Applies up to APPLY_CHUNK removals; returns whether the campaign is still applying. */
  private async applyChunk(ctx: RequestContext, doc: Versioned<ReviewDoc>): Promise<boolean> {
    const { tenantId } = doc;
    const target = this.kit.targets[doc.kind];
    // Only the items still due: each step reads its chunk, not everything applied before it.
    let done = 0;
    for await (const item of this.kit.docs.itemsOf(tenantId, doc.id, [{ field: "applyDue", op: "=", value: true }])) {
      if (done >= APPLY_CHUNK) return true;
      done += 1;
      const why = item.outcomeSource === "decision" ? `denied by ${lastDecision(item)!.by}` : `default decision '${doc.completion.defaultDecision}'`;
      const reason = `access review '${doc.name}' (${doc.id}): ${why}`;
      let applied: NonNullable<ItemDoc["applied"]>;
      try {
        if (!target) throw new Error(`nothing can remove ${doc.kind} here`);
        applied = { at: this.kit.clock.now().toISOString(), result: await target.remove(ctx, item.projectId, item.target.id, reason, item.since) };
      } catch (err) {
        // One item that cannot be removed does not hold up the others; the report counts it, and applying again retries it.
        applied = { at: this.kit.clock.now().toISOString(), result: "failed", detail: (err instanceof Error ? err.message : String(err)).slice(0, 500) };
      }
      await this.kit.docs.updateItem(item, (d) => ({ ...d, applied, applyDue: false }));
    }
    const counts = { removed: 0, alreadyGone: 0, failed: 0 };
    for await (const item of this.kit.docs.itemsOf(tenantId, doc.id, [{ field: "outcome", op: "=", value: "remove" }])) {
      const result = item.applied?.result;
      if (result && result !== "kept") counts[result] += 1;
    }
    const now = this.kit.clock.now();
    const report = { ...(doc.report ?? blankReport()), applied: counts, durationMs: now.getTime() - Date.parse(doc.startedAt ?? doc.startAt) };
    await this.transition(ctx, doc, { ...unversioned(doc), status: "completed", completedAt: now.toISOString(), report, updatedAt: now.toISOString(), updatedBy: ACTOR }, "accessReview.applied", "aigov.accessReview.applied.v1", { applied: counts });
    return false;
  }

  /** An item's outcome: the last decision made (a later stage overrides an earlier one), else the campaign's default. */
  private outcomeOf(doc: ReviewDoc, item: ItemDoc): Pick<ItemDoc, "outcome" | "outcomeSource"> {
    const last = lastDecision(item);
    if (last) return { outcome: last.decision === "approve" ? "keep" : "remove", outcomeSource: "decision" };
    const d = doc.completion.defaultDecision;
    return { outcome: d === "recommendation" ? (item.recommendation === "remove" ? "remove" : "keep") : d, outcomeSource: "default" };
  }

  /** The next campaign of a recurring review: the first period start after now, same settings. */
  private successor(doc: ReviewDoc, now: Date): ReviewDoc | undefined {
    const r = doc.recurrence;
    if (!r || (r.occurrences !== undefined && doc.occurrence >= r.occurrences)) return undefined;
    // The first period after both this campaign's start and now, counted from the series' first start
    // (a series scheduled before it was kept: from this campaign's).
    const seriesStartAt = doc.seriesStartAt ?? doc.startAt;
    const after = Math.max(now.getTime(), Date.parse(doc.startAt));
    let periods = 1;
    let startAt = occurrenceStart(seriesStartAt, r.frequency, periods);
    while (Date.parse(startAt) <= after) startAt = occurrenceStart(seriesStartAt, r.frequency, ++periods);
    const at = now.toISOString();
    const { report: _r, startedAt: _s, completedAt: _c, nextId: _n, activityThrough: _a, stopRequestedAt: _st, canceledReason: _cr, ...settings } = unversioned(doc);
    return {
      ...settings,
      id: nextReviewId(doc.id),
      status: "scheduled",
      startAt,
      seriesStartAt,
      currentStage: 0,
      stageStates: doc.stages.map(() => ({ status: "waiting" as const })),
      occurrence: doc.occurrence + 1,
      previousId: doc.id,
      itemCount: 0,
      currentReviewers: [],
      createdAt: at,
      createdBy: ACTOR,
      updatedAt: at,
      updatedBy: ACTOR,
    };
  }

  private async transition(ctx: RequestContext, before: Versioned<ReviewDoc>, after: ReviewDoc, action: string, event: string, extra: Record<string, unknown> = {}, create?: ReviewDoc): Promise<void> {
    await this.kit.docs.reviews.replace(ctx, before, after, {
      action,
      event,
      data: { id: after.id, name: after.name, kind: after.kind, scope: after.scope, status: after.status, currentStage: after.currentStage, ...extra },
      ...(create ? { extraOps: [{ kind: "create", doc: create }] } : {}),
    });
  }

  private itemsLink(id: string): string {
    return `${this.kit.publicUrl()}/api/access-reviews/${id}/items?reviewer=me`;
  }
}

const lastDecision = (item: Pick<ItemDoc, "decisions">) => [...item.decisions].sort((a, b) => b.stage - a.stage)[0];
const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const blankReport = (): ReviewReport => ({ items: 0, recommendations: {}, decided: {}, notReviewed: 0, outcomes: {}, followedRecommendation: 0 });
