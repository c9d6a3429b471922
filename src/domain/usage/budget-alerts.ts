/**
 * Budget thresholds: when a key's or a project's spend this period reaches 80% and then 100% of its
 * budget, once each per period, an audited change and an event (`aigov.budget.thresholdReached.v1`).
 * The record of what was announced lives beside the budget's project, one document per subject and
 * period, so a rerun of ingestion announces nothing twice; a budget changed during the period is
 * watched afresh (its thresholds are announced again, of the new amount). A period that has ended keeps
 * the budget its record holds: late usage of it is measured against that amount, not a later one.
 */
import { randomUUID } from "node:crypto";
import type { Store, StoredDoc, Versioned } from "../../ports/store.js";
import type { UsageHour } from "../../ports/usage-logs.js";
import type { ChangeWriter } from "../changes.js";
import { AppError } from "../errors.js";
import { Collection } from "../kernel/collection.js";
import { systemContext } from "../kernel/system.js";
import { everyDoc } from "../paging.js";
import type { UsageAnalytics } from "./analytics.js";
import { bucketStart } from "./documents.js";
import type { Touched } from "./ingest.js";
import type { BudgetStatus } from "./schema.js";

export const BUDGET_THRESHOLDS = [80, 100] as const;

interface BudgetAlertDoc extends StoredDoc {
  docType: "budgetAlert";
  subject: BudgetStatus["subject"];
  periodStart: string;
  periodEnd: string;
  /** The budget the thresholds in `reached` were of (absent in records written before it was kept: taken as the budget now). */
  amount?: number;
  currency?: string;
  reached: number[];
}

/** A key shared into a project (the keys domain's index; only its owner project is read here). */
interface SharedInDoc extends StoredDoc {
  docType: "keyShareIn";
  fromProject: string;
}

export class BudgetAlerts {
  private readonly alerts: Collection<BudgetAlertDoc, BudgetAlertDoc & { etag: string }>;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
    private readonly analytics: UsageAnalytics,
  ) {
    this.alerts = new Collection(store, changes, { docType: "budgetAlert", path: (d) => `/projects/${d.scopeId}/budgets/${d.id}` });
  }

  /**
   * The budgets of the projects that had usage, and of the keys shared into them: a shared key's budget
   * lives with its owner project, but its spend may be all in the projects it is shared with.
   */
  async check(touched: Touched[]): Promise<number> {
    return (await this.checkOwed(touched)).announced;
  }

  /**
   * As check, and what is still owed: the projects whose check failed, with the hours read for them (the
   * ingestion keeps them with its position, so the next run checks them again, with or without traffic).
   */
  async checkOwed(touched: Touched[]): Promise<{ announced: number; failed: Touched[] }> {
    const failed: Touched[] = [];
    let announced = 0;
    // Each project with the hours of usage the run read for it (or for a project its keys are shared into):
    // a period that ended before the run read its last hours is checked too.
    const projects = new Map<string, { tenantId: string; projectId: string; hours: Set<number>; read: Set<UsageHour> }>();
    const add = (tenantId: string, projectId: string, hours: Iterable<UsageHour>) => {
      const k = `${tenantId}/${projectId}`;
      const p = projects.get(k) ?? { tenantId, projectId, hours: new Set<number>(), read: new Set<UsageHour>() };
      for (const h of hours) {
        p.hours.add(bucketStart(h));
        p.read.add(h);
      }
      projects.set(k, p);
    };
    for (const { owner, hours } of touched) {
      add(owner.tenantId, owner.projectId, hours);
      for await (const s of everyDoc<SharedInDoc>(this.store, { tenantId: owner.tenantId, scopeId: owner.projectId }, { docType: "keyShareIn" })) add(owner.tenantId, s.fromProject, hours);
    }
    for (const { tenantId, projectId, hours, read } of projects.values()) {
      // One project's damaged budget or key (written around the API) keeps no other project's thresholds from being announced.
      try {
        announced += await this.checkProject(tenantId, projectId, [...hours]);
      } catch (err) {
        console.error(`budget alerts: project ${projectId} of tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
        failed.push({ owner: { tenantId, projectId }, days: new Set(), hours: read as Set<UsageHour> });
      }
    }
    return { announced, failed };
  }

  private async checkProject(tenantId: string, projectId: string, hours: number[]): Promise<number> {
    let announced = 0;
    const statuses = await this.analytics.budgetStatus(tenantId, projectId, hours);
    // Each subject's current period is its latest (budgetStatus always gives it); the others have ended.
    const latest = new Map<string, string>();
    for (const s of statuses) latest.set(s.subject.id, [latest.get(s.subject.id) ?? "", s.periodStart].sort()[1]!);
    for (const computed of statuses) {
      const partition = { tenantId, scopeId: projectId };
      const id = `budget.${computed.subject.id}.${computed.periodStart.slice(0, 19)}`;
      const current: Versioned<BudgetAlertDoc> | undefined = await this.alerts.read(partition, id);
      // An ended period keeps the budget its record holds: a change made since is the current period's, and
      // late usage of the ended one is measured against what its thresholds were announced of, never re-armed.
      const ended = computed.periodStart < latest.get(computed.subject.id)!;
      const held = ended && current?.amount !== undefined ? { amount: current.amount, currency: current.currency ?? computed.currency } : undefined;
      // Its spend is counted in the budget's currency now: of another currency, the ended period is not measured.
      if (held && held.currency !== computed.currency) continue;
      const status = held ? { ...computed, amount: held.amount, percent: Math.round((computed.spent / held.amount) * 10_000) / 100 } : computed;
      const due = BUDGET_THRESHOLDS.filter((th) => status.percent >= th);
      if (!due.length) continue;
      // A budget changed during the period is watched afresh: 80% of the old amount says nothing about the new one.
      const sameBudget = current && (current.amount ?? status.amount) === status.amount && (current.currency ?? status.currency) === status.currency;
      const reached = sameBudget ? current.reached : [];
      const fresh = due.filter((th) => !reached.includes(th));
      if (!fresh.length) continue;
      // Past both at once: one announcement, of the higher (80% of a budget already spent is no news); both are recorded.
      const top = Math.max(...fresh);
      const ctx = systemContext(tenantId, "system:usage", randomUUID());
      const next: BudgetAlertDoc = {
        id,
        ...partition,
        docType: "budgetAlert",
        subject: status.subject,
        periodStart: status.periodStart,
        periodEnd: status.periodEnd,
        amount: status.amount,
        currency: status.currency,
        reached: [...reached, ...fresh].sort((a, b) => a - b),
      };
      const note = {
        action: "budget.thresholdReached",
        event: "aigov.budget.thresholdReached.v1",
        data: { projectId, subject: status.subject, threshold: top, percent: status.percent, spent: status.spent, amount: status.amount, currency: status.currency, period: status.period, periodStart: status.periodStart, forecast: status.forecast },
      };
      try {
        if (current) await this.alerts.replace(ctx, current, next, note);
        else await this.alerts.create(ctx, next, note);
        announced += 1;
      } catch (err) {
        // Another run announced it meanwhile: once is enough.
        if (!(err instanceof AppError && (err.error.kind === "conflict" || err.error.kind === "preconditionFailed"))) throw err;
      }
    }
    return announced;
  }
}
