// Usage ingestion and analytics (npm run build first; `npm run bench:usage`), in this process on the
// embedded Cosmos server, with the same modules the usageIngest job and the usage API run:
//  1. ingestion of RECORDS gateway log records (default 1,000,000; 80% with an LLM record, 30% of those
//     streamed in two) spread over 24 hours, 1,000 keys in 10 projects, written as the local gateway
//     writes them: records per second and peak RSS; then a second run with nothing new.
//  2. analytics over 90 days of rollups for 1,000 keys (day rollups with every key every day, hour
//     rollups with 100 keys an hour): p50/p99 of reports a dashboard asks for.
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root } from "./lib.mjs";

const RECORDS = Number(process.env.RECORDS ?? 1_000_000);
const KEYS = Number(process.env.KEYS ?? 1000);
const PROJECTS = 10;
const DAYS = Number(process.env.DAYS ?? 90);
const QUERY_RUNS = Number(process.env.QUERY_RUNS ?? 20);

const load = (p) => import(join(root, "dist", p));
const { connectCosmos } = await load("src/adapters/cosmos/connect.js");
const { LocalGatewayLogSource } = await load("src/adapters/local/gateway-log-source.js");
const { UsageIngestion } = await load("src/domain/usage/ingest.js");
const { UsageAnalytics } = await load("src/domain/usage/analytics.js");
const { RollupDocuments } = await load("src/domain/usage/documents.js");
const { callMetrics, RowSet } = await load("src/domain/usage/rollup.js");

const dir = mkdtempSync(join(tmpdir(), "aigov-bench-usage-"));
// The store runs in its own process, as Cosmos DB does in Azure: this process's RSS is the job's.
const cosmos = await new Promise((resolve, reject) => {
  const child = spawn(process.execPath, ["--input-type=module", "-e", `
    const { startEmbeddedCosmos } = await import(${JSON.stringify(join(root, "dist/src/adapters/local/embedded-cosmos.js"))});
    const c = await startEmbeddedCosmos({ dataDir: ${JSON.stringify(join(dir, "cosmos"))} });
    console.log(JSON.stringify({ endpoint: c.endpoint, key: c.key }));
  `], { stdio: ["ignore", "pipe", "inherit"] });
  child.once("error", reject);
  child.stdout.once("data", (d) => resolve({ ...JSON.parse(String(d)), close: async () => void child.kill() }));
});
const store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
const GW = "benchgw001";
const projectId = (i) => `prj_bench${String(i).padStart(15, "0")}`;
const keyId = (i) => `key_${String(i).padStart(20, "0")}`;
const DAY0 = Date.UTC(2026, 10, 1);
const now = DAY0 + 26 * 3_600_000;
const clock = { now: () => new Date(now) };

let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
const mb = (b) => Math.round(b / 1_048_576);

// --- setup: gateway key, models with prices ----------------------------------------------------------
const sys = { tenantId: "_system", scopeId: "gateway" };
await store.batch(sys, [{ kind: "create", doc: { id: `gwkey.${GW}`, ...sys, docType: "gatewayKeyReservation", owner: "t-bench", instance: "default", key: GW } }]);
for (let p = 0; p < PROJECTS; p++) {
  const part = { tenantId: "t-bench", scopeId: projectId(p) };
  const models = ["gpt-4o", "gpt-4o-mini"].map((name, i) => ({
    kind: "create",
    doc: { id: `mdl_${p}_${i}`, ...part, docType: "model", name, pricingHistory: [{ from: "", pricing: { currency: "USD", inputPer1kTokens: 0.005 * (i + 1), outputPer1kTokens: 0.015 * (i + 1) } }], backends: [] },
  }));
  await store.batch(part, models);
}

// --- 1. ingestion ---------------------------------------------------------------------------------------
const logs = join(dir, "gateway");
const buffers = new Map();
const write = (table, rec) => {
  const file = join(logs, table, rec.TimeGenerated.slice(0, 10), `${rec.TimeGenerated.slice(11, 13)}.ndjson`);
  let b = buffers.get(file);
  if (!b) buffers.set(file, (b = []));
  b.push(JSON.stringify(rec));
  if (b.length >= 5000) flushFile(file);
};
const flushFile = (file) => {
  mkdirSync(join(file, ".."), { recursive: true });
  appendFileSync(file, buffers.get(file).join("\n") + "\n");
  buffers.set(file, []);
};
let seed = 42;
const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
const g0 = performance.now();
for (let i = 0; i < RECORDS; i++) {
  const t = new Date(DAY0 + Math.floor((i / RECORDS) * 24 * 3_600_000)).toISOString();
  const k = Math.floor(rnd() * KEYS);
  const p = k % PROJECTS;
  const id = `c${i}`;
  const ok = rnd() < 0.9;
  const llm = ok && rnd() < 0.89;
  const model = rnd() < 0.5 ? "gpt-4o" : "gpt-4o-mini";
  if (llm) {
    const prompt = 50 + Math.floor(rnd() * 800);
    const completion = Math.floor(rnd() * 400);
    if (rnd() < 0.3) {
      write("ApiManagementGatewayLlmLog", { TimeGenerated: t, CorrelationId: id, DeploymentName: model, PromptTokens: prompt, CompletionTokens: completion >> 1, SequenceNumber: 0 });
      write("ApiManagementGatewayLlmLog", { TimeGenerated: t, CorrelationId: id, DeploymentName: model, PromptTokens: 0, CompletionTokens: completion - (completion >> 1), SequenceNumber: 1 });
    } else write("ApiManagementGatewayLlmLog", { TimeGenerated: t, CorrelationId: id, DeploymentName: model, PromptTokens: prompt, CompletionTokens: completion, SequenceNumber: 0 });
  }
  write("ApiManagementGatewayLogs", {
    TimeGenerated: t, CorrelationId: id, ApiId: `aigov-${GW}-${projectId(p)}`, OperationId: "chat-completions", ApimSubscriptionId: `aigov-${GW}-${keyId(k)}`,
    BackendId: `aigov-${GW}-be-b_${p}`, ResponseCode: ok ? 200 : 429, BackendResponseCode: ok ? 200 : 0, TotalTime: 20 + Math.floor(rnd() * 900), BackendTime: ok ? 15 + Math.floor(rnd() * 800) : 0,
    Cache: "none", LastErrorReason: ok ? "" : "TokenLimitExceeded", LastErrorSource: ok ? "" : "llm-token-limit",
  });
}
for (const file of buffers.keys()) if (buffers.get(file).length) flushFile(file);
const generated = performance.now() - g0;

const ingestion = new UsageIngestion(store, clock, { retention: { minute: 3, hour: 95, day: 800 } });
const source = new LocalGatewayLogSource("default", logs, () => now);
const rssBefore = process.memoryUsage().rss;
peak = rssBefore;
const t0 = performance.now();
const run1 = await ingestion.run(source);
const ingestMs = performance.now() - t0;
const ingestPeak = peak;
const t1 = performance.now();
const run2 = await ingestion.run(source);
const rerunMs = performance.now() - t1;
console.log(`ingestion: ${RECORDS.toLocaleString()} records (generated in ${(generated / 1000).toFixed(1)} s) over ${run1.hours.length} hours, ${run1.projects} projects`);
console.log(`  run 1: ${(ingestMs / 1000).toFixed(1)} s = ${Math.round(RECORDS / (ingestMs / 1000)).toLocaleString()} records/s; RSS ${mb(rssBefore)} MB before, peak ${mb(ingestPeak)} MB`);
console.log(`  run 2 (nothing new): ${Math.round(rerunMs)} ms, ${run2.hours.length} hours read`);

// --- 2. analytics over 90 days ----------------------------------------------------------------------------
const P = { tenantId: "t-bench", scopeId: projectId(0) };
const rollups = new RollupDocuments(store, { minute: 3, hour: 95, day: 800 });
const metricsOf = (n) => {
  const set = new RowSet();
  return (k, model) => {
    const m = callMetrics({ time: "2026-08-01T00:00:00Z", id: "", apiId: "", operationId: "", subscriptionId: "", backendId: "", responseCode: 200, backendResponseCode: 200, totalTime: 40 + (k % 300), backendTime: 30 + (k % 250), cache: "none", lastErrorReason: "", lastErrorSource: "", model, promptTokens: 300 * n, completionTokens: 100 * n }, { currency: "USD", inputPer1kTokens: 0.005, outputPer1kTokens: 0.015 });
    m.requests = n;
    m.succeeded = n;
    return [set, m];
  };
};
const dim = (k, model) => ({ keyId: keyId(k), kind: "model", resource: model, tool: "", operation: "chat-completions", backend: "gpt-4o/eastus", currency: "USD" });
const endDay = Date.UTC(2026, 10, 1);
const w0 = performance.now();
let docs = 0;
for (let d = 0; d < DAYS; d++) {
  const day = new Date(endDay - (DAYS - d) * 86_400_000);
  const set = new RowSet();
  for (let k = 0; k < KEYS; k++) set.add(dim(k, k % 2 ? "gpt-4o" : "gpt-4o-mini"), metricsOf(24)(k)[1]);
  const ops = rollups.bucketOps(P, "bench", "day", day.toISOString().slice(0, 10), set.list(), 0);
  for (let h = 0; h < 24; h++) {
    const hs = new RowSet();
    for (let j = 0; j < 100; j++) {
      const k = (h * 100 + j + d * 7) % KEYS;
      hs.add(dim(k, k % 2 ? "gpt-4o" : "gpt-4o-mini"), metricsOf(1)(k)[1]);
    }
    ops.push(...rollups.bucketOps(P, "bench", "hour", new Date(day.getTime() + h * 3_600_000).toISOString().slice(0, 13), hs.list(), 0));
  }
  docs += ops.length;
  await rollups.write(P, ops);
}
console.log(`analytics: ${DAYS} days × ${KEYS} keys of rollups written (${docs} documents) in ${((performance.now() - w0) / 1000).toFixed(1)} s`);

const analytics = new UsageAnalytics(store, { now: () => new Date(endDay) }, { get: async () => ({}) }, () => ["bench"]);
const ctx = { principal: { tenantId: "t-bench", userId: "bench", roles: ["TenantAdmin"] } };
const from = (days) => new Date(endDay - days * 86_400_000).toISOString();
const to = new Date(endDay).toISOString();
const queries = [
  ["90 days by day, totals", { from: from(DAYS), to, granularity: "day" }],
  ["90 days by day, per key", { from: from(DAYS), to, granularity: "day", groupBy: ["key"] }],
  ["30 days by hour, totals", { from: from(30), to, granularity: "hour" }],
  ["7 days by hour, per key and model", { from: from(7), to, granularity: "hour", groupBy: ["key", "resource"] }],
  ["90 days, one key", { from: from(DAYS), to, granularity: "day", keyId: keyId(7) }],
];
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];
for (const [name, q] of queries) {
  const times = [];
  let report;
  for (let i = 0; i < QUERY_RUNS; i++) {
    const s = performance.now();
    report = await analytics.projectReport(ctx, P.scopeId, q);
    times.push(performance.now() - s);
  }
  console.log(`  ${name}: p50 ${Math.round(pct(times, 50))} ms, p99 ${Math.round(pct(times, 99))} ms (${report.totals.requests.toLocaleString()} requests, ${report.groups.length} groups, ${report.series.length} buckets)`);
}
console.log(`peak RSS ${mb(peak)} MB`);

clearInterval(sampler);
store.dispose();
await cosmos.close();
rmSync(dir, { recursive: true, force: true });
