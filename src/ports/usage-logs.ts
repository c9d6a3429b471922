/**
 * The gateway's request logs, as usage ingestion reads them: in Azure, APIM's diagnostic tables in Log
 * Analytics (ApiManagementGatewayLogs joined with ApiManagementGatewayLlmLog and ApiManagementGatewayMCPLog
 * on CorrelationId); locally, the local gateway's NDJSON files in the same columns. ADR 016.
 */

/** One request through the gateway, with its LLM and MCP records joined in. */
export interface GatewayCall {
  /** TimeGenerated: when the request arrived (ISO 8601, UTC). */
  time: string;
  /** CorrelationId: the record's identity (a record read twice counts once). */
  id: string;
  apiId: string;
  operationId: string;
  /** ApimSubscriptionId: a virtual key's subscription id ("" without a key). */
  subscriptionId: string;
  backendId: string;
  responseCode: number;
  backendResponseCode: number;
  /** Milliseconds in the gateway (TotalTime) and waiting for the backend (BackendTime). */
  totalTime: number;
  backendTime: number;
  cache: "hit" | "miss" | "none";
  lastErrorReason: string;
  lastErrorSource: string;
  /** From the LLM log: the model as the client named it (DeploymentName) and the tokens (summed over the request's records). */
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  /** From the MCP log: the tool a tools/call named. */
  tool?: string;
}

/** Hours are UTC hours of TimeGenerated, written 'yyyy-mm-ddThh'. */
export type UsageHour = string;

export interface UsageLogSource {
  /** Names the source (the gateway instance it reads) in the ingestion state and the rollups. */
  readonly name: string;
  /**
   * The hours that received records since `position` (an opaque value this source returned before;
   * undefined: since the beginning), and the position to pass next time. Every record that arrives after
   * this call is reported by the next one: a position never skips a record.
   */
  changes(position: string | undefined): Promise<{ hours: UsageHour[]; position: string }>;
  /** Every request of one hour, in pages, each request once (by CorrelationId) with its LLM and MCP records joined. */
  readHour(hour: UsageHour): AsyncIterable<GatewayCall[]>;
}
