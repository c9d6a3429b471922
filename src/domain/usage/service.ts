/**
 * Usage, cost and activity (ADR 016): ingestion of the gateway's logs into rollups (the scheduled job),
 * reports and budget burn over them (the API), the last use of keys and resources, budget thresholds.
 */
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import type { UsageLogSource } from "../../ports/usage-logs.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext } from "../common.js";
import type { ProjectService } from "../projects/service.js";
import { UsageAnalytics } from "./analytics.js";
import { BudgetAlerts } from "./budget-alerts.js";
import type { Retention } from "./documents.js";
import { UsageIngestion, type ActivityField, type ActivityMaps, type IngestReport } from "./ingest.js";
import type { BudgetList, UsageQuery, UsageReport } from "./schema.js";

export interface UsageKit {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  projects: ProjectService;
  /** The gateways' logs, one source per gateway instance (built on first use: the Log Analytics client is heavy). */
  sources: () => Promise<UsageLogSource[]>;
  /** Their names, without building them. */
  sourceNames: string[];
  retentionDays: Retention;
}

export class UsageService {
  readonly analytics: UsageAnalytics;
  readonly ingestion: UsageIngestion;
  private readonly alerts: BudgetAlerts;

  constructor(private readonly kit: UsageKit) {
    this.analytics = new UsageAnalytics(kit.store, kit.clock, kit.projects, () => kit.sourceNames, kit.retentionDays);
    this.alerts = new BudgetAlerts(kit.store, kit.changes, this.analytics);
    this.ingestion = new UsageIngestion(kit.store, kit.clock, { retention: kit.retentionDays, afterRun: async (touched) => (await this.alerts.checkOwed(touched)).failed });
  }

  /** One ingestion run over every source (the scheduled job), then retention. A failing source does not stop the others. */
  async ingest(): Promise<{ reports: IngestReport[]; failures: { source: string; error: string }[]; expired: number }> {
    const reports: IngestReport[] = [];
    const failures: { source: string; error: string }[] = [];
    for (const source of await this.kit.sources()) {
      try {
        reports.push(await this.ingestion.run(source));
      } catch (err) {
        failures.push({ source: source.name, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return { reports, failures, expired: await this.ingestion.sweep() };
  }

  projectReport(ctx: RequestContext, projectId: string, query: UsageQuery): Promise<UsageReport> {
    return this.analytics.projectReport(ctx, projectId, query);
  }

  tenantReport(ctx: RequestContext, query: UsageQuery): Promise<UsageReport> {
    return this.analytics.tenantReport(ctx, query);
  }

  budgets(ctx: RequestContext, projectId: string): Promise<BudgetList> {
    return this.analytics.budgets(ctx, projectId);
  }

  /** When each key, model, tool server, tool, toolbox and agent of a project was last used at the gateway (access reviews). */
  activity(tenantId: string, projectId: string): Promise<ActivityMaps | undefined> {
    return this.analytics.activity(tenantId, projectId);
  }

  /** Up to when usage is ingested, and since when each activity field is recorded (undefined before every source has run once). */
  coverage(): Promise<{ through: string; since: Partial<Record<ActivityField, string>> } | undefined> {
    return this.analytics.coverage();
  }

  /** The last use of each key of a project (for key views). */
  async keysLastUsed(tenantId: string, projectId: string): Promise<Record<string, string> | undefined> {
    return (await this.analytics.activity(tenantId, projectId))?.keys;
  }
}
