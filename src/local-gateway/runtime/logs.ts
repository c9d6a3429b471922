/**
 * The local gateway's logs, in the shape of APIM's diagnostic tables so usage analytics reads the
 * same columns locally as from Log Analytics: `ApiManagementGatewayLogs` (one record per request) and
 * `ApiManagementGatewayLlmLog` (one per LLM call, joined on CorrelationId), `ApiManagementGatewayMCPLog`
 * (one per request to an MCP server), plus the custom metrics llm-emit-token-metric emits. NDJSON, one file per table and UTC hour
 * of TimeGenerated: <dir>/<Table>/<yyyy-mm-dd>/<hh>.ndjson (usage ingestion re-reads the hours that grew).
 * Lines are appended in batches; flush() writes what is pending, the request table last: a request's LLM
 * and MCP records are on disk no later than its gateway record, so a reader that sees a request sees its tokens.
 */
import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";

export interface GatewayLogRecord {
  TimeGenerated: string;
  CorrelationId: string;
  Region: string;
  Method: string;
  Url: string;
  ApiId: string;
  OperationId: string;
  ProductId: string;
  ApimSubscriptionId: string;
  BackendId: string;
  BackendUrl: string;
  BackendMethod: string;
  ResponseCode: number;
  BackendResponseCode: number;
  IsRequestSuccess: boolean;
  TotalTime: number;
  BackendTime: number;
  Cache: "hit" | "miss" | "none";
  CallerIpAddress: string;
  LastErrorSource: string;
  LastErrorReason: string;
  LastErrorMessage: string;
  LastErrorSection: string;
  LastErrorScope: string;
  RequestSize: number;
  ResponseSize: number;
}

export interface LlmLogRecord {
  TimeGenerated: string;
  CorrelationId: string;
  Region: string;
  OperationName: string;
  ApiVersion: string;
  DeploymentName: string;
  ModelName: string;
  PromptTokens: number;
  CompletionTokens: number;
  TotalTokens: number;
  IsStreamCompletion: boolean;
  SequenceNumber: number;
}

export interface MetricRecord {
  TimeGenerated: string;
  Namespace: string;
  Name: "Prompt Tokens" | "Completion Tokens" | "Total Tokens";
  Value: number;
  Dimensions: Record<string, string>;
}

/**
 * A request to an MCP server (table ApiManagementGatewayMCPLog, diagnostic category GatewayMCPLogs; the
 * columns of its Azure Monitor reference page). Values the page leaves open are the gateway's: ApiType
 * "passthrough" or "rest", AuthenticationMethod "api_key" or "none", OperationName the endpoint (or a
 * tool's operation), ServerName the API id of a server made of tools (a pass-through server's own name
 * would have to be read from its answers, which the gateway does not read).
 */
export interface McpLogRecord {
  TimeGenerated: string;
  CorrelationId: string;
  Region: string;
  ApiType: string;
  TransportType: string;
  McpServerEndpoint: string;
  Method: string;
  ToolName: string;
  ToolCount: number;
  SessionId: string;
  ProtocolVersion: string;
  ClientName: string;
  ClientVersion: string;
  ServerName: string;
  ServerVersion: string;
  AuthenticationMethod: string;
  OperationName: string;
  Error: string;
  ErrorType: string;
}

export const TABLES = { gateway: "ApiManagementGatewayLogs", llm: "ApiManagementGatewayLlmLog", mcp: "ApiManagementGatewayMCPLog", metrics: "CustomMetrics" } as const;

export class GatewayLogs {
  private pending = new Map<string, string[]>();
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly dir: string | undefined) {}

  write(table: typeof TABLES.gateway, record: GatewayLogRecord): void;
  write(table: typeof TABLES.llm, record: LlmLogRecord): void;
  write(table: typeof TABLES.metrics, record: MetricRecord): void;
  write(table: typeof TABLES.mcp, record: McpLogRecord): void;
  write(table: (typeof TABLES)[keyof typeof TABLES], record: GatewayLogRecord | LlmLogRecord | MetricRecord | McpLogRecord): void {
    if (!this.dir) return;
    const file = join(this.dir, table, record.TimeGenerated.slice(0, 10), `${record.TimeGenerated.slice(11, 13)}.ndjson`);
    const lines = this.pending.get(file) ?? [];
    lines.push(JSON.stringify(record));
    this.pending.set(file, lines);
    this.timer ??= setTimeout(() => void this.flush(), 50);
  }

  /** Writes every pending line (in order); resolves when they are on disk. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const requestTable = `${join(this.dir ?? "", TABLES.gateway)}/`;
    const batch = [...this.pending].sort(([a], [b]) => Number(a.startsWith(requestTable)) - Number(b.startsWith(requestTable)));
    this.pending = new Map();
    this.flushing = this.flushing.then(async () => {
      for (const [file, lines] of batch) {
        await mkdir(join(file, ".."), { recursive: true });
        await appendFile(file, `${lines.join("\n")}\n`);
      }
    });
    return this.flushing;
  }
}
