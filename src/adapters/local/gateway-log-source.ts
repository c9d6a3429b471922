/**
 * The local gateway's logs as a usage source: NDJSON files per table and UTC hour of TimeGenerated
 * (<dir>/<Table>/<yyyy-mm-dd>/<hh>.ndjson, src/local-gateway/runtime/logs.ts). The position is the size of
 * each hour's files: an hour whose files grew since has new records. Hours older than the horizon are
 * no longer watched (a request is logged when it ends, with the time it began: no request lasts days).
 */
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { GatewayCall, UsageHour, UsageLogSource } from "../../ports/usage-logs.js";

const TABLES = { gateway: "ApiManagementGatewayLogs", llm: "ApiManagementGatewayLlmLog", mcp: "ApiManagementGatewayMCPLog" } as const;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const HOUR_FILE = /^(\d{2})\.ndjson$/;
const PAGE = 5000;

interface GatewayLine {
  TimeGenerated: string;
  CorrelationId: string;
  ApiId: string;
  OperationId: string;
  ApimSubscriptionId: string;
  BackendId: string;
  ResponseCode: number;
  BackendResponseCode: number;
  TotalTime: number;
  BackendTime: number;
  Cache: "hit" | "miss" | "none";
  LastErrorReason: string;
  LastErrorSource: string;
}

interface LlmLine {
  CorrelationId: string;
  DeploymentName: string;
  PromptTokens: number;
  CompletionTokens: number;
  SequenceNumber: number;
}

interface McpLine {
  CorrelationId: string;
  ToolName: string;
}

export class LocalGatewayLogSource implements UsageLogSource {
  constructor(
    readonly name: string,
    private readonly dir: string,
    private readonly now: () => number,
    private readonly horizonHours = 7 * 24,
  ) {}

  async changes(position: string | undefined): Promise<{ hours: UsageHour[]; position: string }> {
    const before = position ? (JSON.parse(position) as Record<UsageHour, string>) : {};
    const oldest = new Date(this.now() - this.horizonHours * 3_600_000).toISOString().slice(0, 13);
    const sizes = new Map<UsageHour, number[]>();
    for (const [i, table] of [TABLES.gateway, TABLES.llm, TABLES.mcp].entries()) {
      for (const day of await list(join(this.dir, table))) {
        if (!DAY.test(day) || day < oldest.slice(0, 10)) continue;
        for (const file of await list(join(this.dir, table, day))) {
          const m = HOUR_FILE.exec(file);
          if (!m) continue;
          const hour = `${day}T${m[1]}`;
          if (hour < oldest) continue;
          const size = await stat(join(this.dir, table, day, file)).then((s) => s.size, () => 0);
          const row = sizes.get(hour) ?? [0, 0, 0];
          row[i] = size;
          sizes.set(hour, row);
        }
      }
    }
    const after: Record<UsageHour, string> = {};
    const hours: UsageHour[] = [];
    for (const [hour, row] of [...sizes].sort(([a], [b]) => a.localeCompare(b))) {
      after[hour] = row.join(",");
      if (before[hour] !== after[hour]) hours.push(hour);
    }
    return { hours, position: JSON.stringify(after) };
  }

  async *readHour(hour: UsageHour): AsyncIterable<GatewayCall[]> {
    const path = (table: string) => join(this.dir, table, hour.slice(0, 10), `${hour.slice(11, 13)}.ndjson`);
    // A streamed completion may be logged in several records (SequenceNumber): summed, each once.
    const llm = new Map<string, { model: string; prompt: number; completion: number; seen: Set<number> }>();
    for await (const r of lines<LlmLine>(path(TABLES.llm))) {
      const e = llm.get(r.CorrelationId) ?? { model: r.DeploymentName, prompt: 0, completion: 0, seen: new Set<number>() };
      if (e.seen.has(r.SequenceNumber)) continue;
      e.seen.add(r.SequenceNumber);
      e.prompt += r.PromptTokens;
      e.completion += r.CompletionTokens;
      llm.set(r.CorrelationId, e);
    }
    const tools = new Map<string, string>();
    for await (const r of lines<McpLine>(path(TABLES.mcp))) if (r.ToolName) tools.set(r.CorrelationId, r.ToolName);
    const seen = new Set<string>();
    let page: GatewayCall[] = [];
    for await (const r of lines<GatewayLine>(path(TABLES.gateway))) {
      if (seen.has(r.CorrelationId)) continue;
      seen.add(r.CorrelationId);
      const l = llm.get(r.CorrelationId);
      const tool = tools.get(r.CorrelationId);
      page.push({
        time: r.TimeGenerated,
        id: r.CorrelationId,
        apiId: r.ApiId,
        operationId: r.OperationId,
        subscriptionId: r.ApimSubscriptionId,
        backendId: r.BackendId,
        responseCode: r.ResponseCode,
        backendResponseCode: r.BackendResponseCode,
        totalTime: r.TotalTime,
        backendTime: r.BackendTime,
        cache: r.Cache,
        lastErrorReason: r.LastErrorReason,
        lastErrorSource: r.LastErrorSource,
        ...(l ? { model: l.model, promptTokens: l.prompt, completionTokens: l.completion } : {}),
        ...(tool ? { tool } : {}),
      });
      if (page.length >= PAGE) {
        yield page;
        page = [];
      }
    }
    if (page.length) yield page;
  }
}

async function list(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** The records of a file; a missing file has none, and a line still being written is left for the next read. */
async function* lines<T>(file: string): AsyncIterable<T> {
  const stream = createReadStream(file, { encoding: "utf8" });
  const done = new Promise<boolean>((ok) => {
    stream.once("error", () => ok(false));
    stream.once("open", () => ok(true));
  });
  if (!(await done)) return;
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (!line) continue;
    let record: T;
    try {
      record = JSON.parse(line) as T;
    } catch {
      continue;
    }
    yield record;
  }
}
