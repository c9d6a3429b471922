/**
 * The Log Analytics usage source against a recording fake of the one SDK call it makes: the KQL it
 * sends, the watermark, paging by CorrelationId, and a partial answer refused.
 */
import { describe, expect, it } from "vitest";
import { kqlString, LogAnalyticsUsageSource, type LogsQuerier } from "../../src/adapters/monitor/log-analytics-source.js";

type Answer = { columns: string[]; rows: unknown[][] } | "partial";

function fake(answers: Answer[]) {
  const calls: { workspace: string; query: string; timespan: unknown }[] = [];
  const client = {
    queryWorkspace: async (workspace: string, query: string, timespan: unknown) => {
      calls.push({ workspace, query, timespan });
      const a = answers.shift() ?? { columns: [], rows: [] };
      if (a === "partial") return { status: "PartialFailure", partialTables: [], partialError: { code: "QueryTimeout", message: "timed out" } };
      return { status: "Success", tables: [{ name: "PrimaryResult", columnDescriptors: a.columns.map((name) => ({ name, type: "string" })), rows: a.rows }] };
    },
  } as unknown as LogsQuerier;
  return { client, calls };
}

const instance = { subscriptionId: "00000000-0000-0000-0000-000000000001", resourceGroup: "rg", serviceName: "apim-x" };
const NOW = Date.parse("2026-12-01T12:00:00Z");
const COLUMNS = ["TimeGenerated", "CorrelationId", "ApiId", "OperationId", "ApimSubscriptionId", "BackendId", "ResponseCode", "BackendResponseCode", "TotalTime", "BackendTime", "Cache", "LastErrorReason", "LastErrorSource", "Model", "PromptTokens", "CompletionTokens", "Tool"];
const row = (id: string, extra: Partial<Record<string, unknown>> = {}) => COLUMNS.map((c) => ({ TimeGenerated: new Date("2026-12-01T10:05:00Z"), CorrelationId: id, ApiId: "aigov-k-prj_x", ResponseCode: 200, Cache: "miss", ...extra })[c] ?? "");

describe("LogAnalyticsUsageSource", () => {
  it("escapes KQL string literals", () => {
    expect(kqlString("it's a \\ path")).toBe("'it\\'s a \\\\ path'");
  });

  it("reports the hours that received records by ingestion time, and keeps its watermark 5 minutes behind now", async () => {
    const { client, calls } = fake([{ columns: ["Hour"], rows: [[new Date("2026-12-01T09:00:00Z")], [new Date("2026-12-01T10:00:00Z")]] }, { columns: ["Hour"], rows: [] }]);
    let now = NOW;
    const source = new LogAnalyticsUsageSource("default", "ws-1", instance, { client, now: () => now });
    const first = await source.changes(undefined);
    expect(first).toEqual({ hours: ["2026-12-01T09", "2026-12-01T10"], position: "2026-12-01T11:55:00.000Z" });
    expect(calls[0]!.workspace).toBe("ws-1");
    expect(calls[0]!.query).toContain("_ResourceId =~ '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-x'");
    expect(calls[0]!.query).toContain("ingestion_time() > datetime(1970-01-01T00:00:00.000Z) and ingestion_time() <= datetime(2026-12-01T11:55:00.000Z)");
    // Within the settling delay nothing is asked; a minute later, only what arrived since.
    expect(await source.changes(first.position)).toEqual({ hours: [], position: first.position });
    expect(calls).toHaveLength(1);
    now += 60_000;
    await source.changes(first.position);
    expect(calls[1]!.query).toContain("ingestion_time() > datetime(2026-12-01T11:55:00.000Z) and ingestion_time() <= datetime(2026-12-01T11:56:00.000Z)");
  });

  it("reads an hour in pages ordered by CorrelationId, each request with its tokens and tool", async () => {
    const page1 = Array.from({ length: 10_000 }, (_, i) => row(`c${String(i).padStart(5, "0")}`, { Model: "gpt-4o", PromptTokens: 2, CompletionTokens: 8 }));
    const page2 = [row("d1", { Tool: "get_weather", ResponseCode: 403 })];
    const { client, calls } = fake([{ columns: COLUMNS, rows: page1 }, { columns: COLUMNS, rows: page2 }]);
    const source = new LogAnalyticsUsageSource("default", "ws-1", instance, { client, now: () => NOW });
    const pages = [];
    for await (const p of source.readHour("2026-12-01T10")) pages.push(p);
    expect(pages.map((p) => p.length)).toEqual([10_000, 1]);
    expect(pages[0]![0]).toMatchObject({ id: "c00000", time: "2026-12-01T10:05:00.000Z", model: "gpt-4o", promptTokens: 2, completionTokens: 8, cache: "miss", responseCode: 200 });
    expect(pages[1]![0]).toMatchObject({ id: "d1", tool: "get_weather", responseCode: 403 });
    expect(pages[1]![0]!.model).toBeUndefined();
    expect(calls[0]!.query).toContain("where CorrelationId > ''");
    expect(calls[1]!.query).toContain("where CorrelationId > 'c09999'");
    expect(calls[0]!.timespan).toEqual({ startTime: new Date("2026-12-01T10:00:00Z"), endTime: new Date("2026-12-01T12:00:00Z") });
  });

  it("refuses a partial answer (a missing page would undercount the hour for good)", async () => {
    const { client } = fake(["partial"]);
    const source = new LogAnalyticsUsageSource("default", "ws-1", instance, { client, now: () => NOW });
    await expect(source.changes(undefined)).rejects.toThrow(/PartialFailure/);
  });
});
