/**
 * APIM's diagnostic tables in Log Analytics as a usage source (ADR 016). The position is an ingestion-time
 * watermark: `changes` asks which hours of TimeGenerated received records whose ingestion_time() lies
 * between the last watermark and now minus a settling delay, so a record that arrives late (Azure Monitor
 * ingests minutes after the fact, sometimes hours) marks its old hour dirty and that hour is read again
 * whole. `readHour` reads one hour of ApiManagementGatewayLogs, one row per CorrelationId, with the
 * LLM records' tokens summed and the MCP record's tool joined on CorrelationId.
 *
 * Identity: the app's managed identity with Log Analytics Reader on the workspace (infra/main.bicep); no key.
 */
import type { TokenCredential } from "@azure/identity";
import type { LogsQueryClient, LogsTable } from "@azure/monitor-query-logs";

/** The one call this source makes (a test passes a recording fake). */
export type LogsQuerier = Pick<LogsQueryClient, "queryWorkspace">;
import type { GatewayCall, UsageHour, UsageLogSource } from "../../ports/usage-logs.js";

const PAGE = 10_000;
const HOUR_MS = 3_600_000;
/** Records become visible to queries a little after their ingestion_time(); the watermark stays behind by this much. */
const SETTLE_MS = 5 * 60_000;
/** Hours older than this are not watched (a request is logged when it ends, with the time it began). */
const HORIZON = "P8D";

export interface ApimInstance {
  subscriptionId: string;
  resourceGroup: string;
  serviceName: string;
}

/** A KQL string literal (the values are config and ids the query itself returned, but never trust a quote). */
export function kqlString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
const kqlTime = (ms: number) => `datetime(${new Date(ms).toISOString()})`;

export class LogAnalyticsUsageSource implements UsageLogSource {
  private client?: LogsQuerier;
  private readonly resourceId: string;

  constructor(
    readonly name: string,
    private readonly workspaceId: string,
    instance: ApimInstance,
    private readonly options: { credential?: TokenCredential; now?: () => number; client?: LogsQuerier } = {},
  ) {
    this.resourceId = `/subscriptions/${instance.subscriptionId}/resourceGroups/${instance.resourceGroup}/providers/Microsoft.ApiManagement/service/${instance.serviceName}`;
    this.client = options.client;
  }

  async changes(position: string | undefined): Promise<{ hours: UsageHour[]; position: string }> {
    const to = (this.options.now?.() ?? Date.now()) - SETTLE_MS;
    const from = position ? Date.parse(position) : 0;
    if (to <= from) return { hours: [], position: position ?? new Date(to).toISOString() };
    // An LLM or MCP record may carry a TimeGenerated a little after its gateway record's: its previous hour is dirty too.
    const query = `union isfuzzy=true ApiManagementGatewayLogs, ApiManagementGatewayLlmLog, ApiManagementGatewayMCPLog
| where _ResourceId =~ ${kqlString(this.resourceId)}
| where ingestion_time() > ${kqlTime(from)} and ingestion_time() <= ${kqlTime(to)}
| summarize by Type, Hour = bin(TimeGenerated, 1h)
| extend Hours = iff(Type == 'ApiManagementGatewayLogs', pack_array(Hour), pack_array(Hour, Hour - 1h))
| mv-expand Dirty = Hours to typeof(datetime)
| distinct Hour = Dirty`;
    const table = await this.query(query, { duration: HORIZON, endTime: new Date(to) });
    const hours = new Set<UsageHour>();
    for (const row of rows(table)) hours.add(toIso(row.Hour).slice(0, 13));
    return { hours: [...hours].sort(), position: new Date(to).toISOString() };
  }

  async *readHour(hour: UsageHour): AsyncIterable<GatewayCall[]> {
    const start = Date.parse(`${hour}:00:00Z`);
    let after = "";
    for (;;) {
      const query = `let resource = ${kqlString(this.resourceId)};
let llm = ApiManagementGatewayLlmLog
| where _ResourceId =~ resource
| summarize Model = take_any(DeploymentName), PromptTokens = sum(PromptTokens), CompletionTokens = sum(CompletionTokens) by CorrelationId;
let mcp = union isfuzzy=true (ApiManagementGatewayMCPLog | where _ResourceId =~ resource | summarize Tool = take_any(ToolName) by CorrelationId), (print CorrelationId = '', Tool = '' | where false);
ApiManagementGatewayLogs
| where _ResourceId =~ resource
| where TimeGenerated >= ${kqlTime(start)} and TimeGenerated < ${kqlTime(start + HOUR_MS)}
| where CorrelationId > ${kqlString(after)}
| summarize arg_min(TimeGenerated, ApiId, OperationId, ApimSubscriptionId, BackendId, ResponseCode, BackendResponseCode, TotalTime, BackendTime, Cache, LastErrorReason, LastErrorSource) by CorrelationId
| order by CorrelationId asc
| take ${PAGE}
| join kind=leftouter llm on CorrelationId
| join kind=leftouter mcp on CorrelationId
| project TimeGenerated, CorrelationId, ApiId, OperationId, ApimSubscriptionId, BackendId, ResponseCode, BackendResponseCode, TotalTime, BackendTime, Cache, LastErrorReason, LastErrorSource, Model, PromptTokens, CompletionTokens, Tool
| order by CorrelationId asc`;
      // The LLM and MCP records of the hour's requests may fall into the next hour.
      const table = await this.query(query, { startTime: new Date(start), endTime: new Date(start + 2 * HOUR_MS) });
      const page = rows(table).map(toCall);
      if (page.length) yield page;
      if (page.length < PAGE) return;
      after = page[page.length - 1]!.id;
    }
  }

  private async query(query: string, timespan: { duration: string; endTime: Date } | { startTime: Date; endTime: Date }): Promise<LogsTable | undefined> {
    const client = this.connect();
    const result = await client.queryWorkspace(this.workspaceId, query, timespan, { serverTimeoutInSeconds: 300 });
    // A partial result is a failure here: a missing page would undercount the hour for good.
    if (result.status !== "Success") {
      const error = "partialError" in result ? result.partialError : result;
      throw new Error(`Log Analytics query failed (${result.status}): ${JSON.stringify(error).slice(0, 500)}`);
    }
    return result.tables[0];
  }

  private connect(): LogsQuerier {
    if (!this.client) {
      // Loaded on first use: keeps cold start cheap and the CommonJS copy of the SDK the only one.
      /* eslint-disable @typescript-eslint/no-require-imports */
      const { LogsQueryClient } = require("@azure/monitor-query-logs") as typeof import("@azure/monitor-query-logs");
      const { DefaultAzureCredential } = require("@azure/identity") as typeof import("@azure/identity");
      /* eslint-enable @typescript-eslint/no-require-imports */
      this.client = new LogsQueryClient(this.options.credential ?? new DefaultAzureCredential());
    }
    return this.client;
  }
}

type Row = Record<string, unknown>;

function rows(table: LogsTable | undefined): Row[] {
  if (!table) return [];
  const names = table.columnDescriptors.map((c) => c.name ?? "");
  return table.rows.map((values) => Object.fromEntries(names.map((n, i) => [n, values[i]])));
}

function toIso(v: unknown): string {
  return v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString();
}

const num = (v: unknown) => (typeof v === "number" ? v : Number(v ?? 0) || 0);
const str = (v: unknown) => (v === null || v === undefined ? "" : String(v));

function toCall(r: Row): GatewayCall {
  const cache = str(r.Cache);
  return {
    time: toIso(r.TimeGenerated),
    id: str(r.CorrelationId),
    apiId: str(r.ApiId),
    operationId: str(r.OperationId),
    subscriptionId: str(r.ApimSubscriptionId),
    backendId: str(r.BackendId),
    responseCode: num(r.ResponseCode),
    backendResponseCode: num(r.BackendResponseCode),
    totalTime: num(r.TotalTime),
    backendTime: num(r.BackendTime),
    cache: cache === "hit" || cache === "miss" ? cache : "none",
    lastErrorReason: str(r.LastErrorReason),
    lastErrorSource: str(r.LastErrorSource),
    ...(r.Model ? { model: str(r.Model), promptTokens: num(r.PromptTokens), completionTokens: num(r.CompletionTokens) } : {}),
    ...(r.Tool ? { tool: str(r.Tool) } : {}),
  };
}
