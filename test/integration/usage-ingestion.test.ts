/**
 * Usage ingestion is exactly-once by construction (ADR 016): whatever order the log records arrive in,
 * however often a run is repeated, wherever a run dies, the rollups equal totals computed here, apart
 * from the ingestion, straight from the generated records.
 */
import { appendFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { LocalGatewayLogSource } from "../../src/adapters/local/gateway-log-source.js";
import { everyDoc } from "../../src/domain/paging.js";
import { UsageIngestion } from "../../src/domain/usage/ingest.js";
import type { UsageRow } from "../../src/domain/usage/rollup.js";
import type { Store } from "../../src/ports/store.js";

const dataDir = mkdtempSync(join(tmpdir(), "aigov-usage-"));
let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let n = 0;

const GW = "k7gw0test1";
const TENANT = "t-usage";
const PROJECT = "prj_usage000000000000001";
const OTHER_TENANT_PROJECT = "prj_usage000000000000002";
const P = { tenantId: TENANT, scopeId: PROJECT };
const KEYS = ["key_aaaaaaaaaaaaaaaaaaaa", "key_bbbbbbbbbbbbbbbbbbbb", "key_cccccccccccccccccccc"];
const DAY = "2026-11-30";
const PRICE_CHANGE = `${DAY}T01:30:00.000Z`;
const now = () => Date.parse(`${DAY}T04:00:00Z`);
const clock = { now: () => new Date(now()) };
const retention = { minute: 3, hour: 95, day: 800 };

interface Gen {
  gateway: Record<string, unknown>;
  llm: Record<string, unknown>[];
  // what the request should count as
  key: string;
  time: string;
  status: number;
  reason: string;
  prompt: number;
  completion: number;
}

/** A deterministic pseudo-random stream (the test must not depend on luck). */
function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

function generate(count: number, seed: number): Gen[] {
  const r = rng(seed);
  const out: Gen[] = [];
  for (let i = 0; i < count; i++) {
    const time = new Date(Date.parse(`${DAY}T00:00:00Z`) + Math.floor(r() * 3 * 3_600_000)).toISOString();
    const key = KEYS[Math.floor(r() * KEYS.length)]!;
    const roll = r();
    const [status, reason] = roll < 0.8 ? [200, ""] : roll < 0.9 ? [429, "TokenLimitExceeded"] : roll < 0.95 ? [403, ""] : [400, "ContentSafetyBlocked"];
    const ok = status === 200;
    const prompt = ok ? 10 + Math.floor(r() * 500) : 0;
    const completion = ok ? Math.floor(r() * 300) : 0;
    const id = `corr-${seed}-${i}`;
    const stream = ok && r() < 0.3;
    const llm = !ok
      ? []
      : stream
        ? [
            { TimeGenerated: time, CorrelationId: id, DeploymentName: "gpt-4o", PromptTokens: prompt, CompletionTokens: Math.floor(completion / 2), SequenceNumber: 0 },
            { TimeGenerated: time, CorrelationId: id, DeploymentName: "gpt-4o", PromptTokens: 0, CompletionTokens: completion - Math.floor(completion / 2), SequenceNumber: 1 },
          ]
        : [{ TimeGenerated: time, CorrelationId: id, DeploymentName: "gpt-4o", PromptTokens: prompt, CompletionTokens: completion, SequenceNumber: 0 }];
    out.push({
      gateway: {
        TimeGenerated: time,
        CorrelationId: id,
        ApiId: `aigov-${GW}-${PROJECT}`,
        OperationId: "chat-completions",
        ApimSubscriptionId: `aigov-${GW}-${key}`,
        BackendId: `aigov-${GW}-be-eastus`,
        ResponseCode: status,
        BackendResponseCode: ok ? 200 : 0,
        TotalTime: 20 + Math.floor(r() * 400),
        BackendTime: ok ? 10 + Math.floor(r() * 300) : 0,
        Cache: "none",
        LastErrorReason: reason,
        LastErrorSource: reason ? "policy" : "",
      },
      llm,
      key,
      time,
      status,
      reason,
      prompt,
      completion,
    });
  }
  return out;
}

/** Appends records as the gateway would (LLM records first), to the file of each record's own hour. */
function append(dir: string, table: string, record: Record<string, unknown>) {
  const t = String(record.TimeGenerated);
  const folder = join(dir, table, t.slice(0, 10));
  mkdirSync(folder, { recursive: true });
  appendFileSync(join(folder, `${t.slice(11, 13)}.ndjson`), `${JSON.stringify(record)}\n`);
}
function deliver(dir: string, g: Gen, opts: { duplicate?: boolean } = {}) {
  for (const l of g.llm) append(dir, "ApiManagementGatewayLlmLog", l);
  if (opts.duplicate && g.llm[0]) append(dir, "ApiManagementGatewayLlmLog", g.llm[0]);
  append(dir, "ApiManagementGatewayLogs", g.gateway);
  if (opts.duplicate) append(dir, "ApiManagementGatewayLogs", g.gateway);
}

/** What the rollups must say, from the generated requests alone. */
function expected(gens: Gen[]) {
  const byKey = new Map<string, { requests: number; succeeded: number; prompt: number; completion: number; cost: number; limit: number; scope: number; contentSafety: number; lastAt: string }>();
  for (const g of gens) {
    const e = byKey.get(g.key) ?? { requests: 0, succeeded: 0, prompt: 0, completion: 0, cost: 0, limit: 0, scope: 0, contentSafety: 0, lastAt: "" };
    e.requests += 1;
    if (g.status === 200) e.succeeded += 1;
    if (g.status === 429) e.limit += 1;
    if (g.status === 403) e.scope += 1;
    if (g.reason.startsWith("ContentSafety")) e.contentSafety += 1;
    e.prompt += g.prompt;
    e.completion += g.completion;
    const [pin, pout] = g.time < PRICE_CHANGE ? [0.01, 0.03] : [0.02, 0.06];
    e.cost += (g.prompt * pin + g.completion * pout) / 1000;
    if (g.time > e.lastAt) e.lastAt = g.time;
    byKey.set(g.key, e);
  }
  return byKey;
}

/** The rollups of one granularity, per key, summed over the buckets. */
async function actual(s: Store, g: "minute" | "hour" | "day") {
  const ingestion = new UsageIngestion(s, clock, { retention });
  const [from, to] = g === "day" ? [DAY, `${DAY}~`] : g === "hour" ? [`${DAY}T00`, `${DAY}T99`] : [`${DAY}T00:00`, `${DAY}T99:99`];
  const byKey = new Map<string, { requests: number; succeeded: number; prompt: number; completion: number; cost: number; limit: number; scope: number; contentSafety: number; lastAt: string }>();
  for (const set of (await ingestion.rollups.rowsByBucket(P, g, from, to)).values()) {
    for (const row of set.list() as UsageRow[]) {
      const e = byKey.get(row.d.keyId) ?? { requests: 0, succeeded: 0, prompt: 0, completion: 0, cost: 0, limit: 0, scope: 0, contentSafety: 0, lastAt: "" };
      e.requests += row.m.requests;
      e.succeeded += row.m.succeeded;
      e.prompt += row.m.promptTokens;
      e.completion += row.m.completionTokens;
      e.cost += row.m.cost;
      e.limit += row.m.errors.limit ?? 0;
      e.scope += row.m.errors.scope ?? 0;
      e.contentSafety += row.m.errors.contentSafety ?? 0;
      if (row.m.lastAt > e.lastAt) e.lastAt = row.m.lastAt;
      byKey.set(row.d.keyId, e);
    }
  }
  return byKey;
}

function rounded(m: Map<string, { cost: number } & Record<string, unknown>>) {
  return Object.fromEntries([...m].sort().map(([k, v]) => [k, { ...v, cost: Math.round(v.cost * 1e6) / 1e6 }]));
}

async function expectRollups(s: Store, gens: Gen[]) {
  const want = rounded(expected(gens));
  for (const g of ["minute", "hour", "day"] as const) expect(rounded(await actual(s, g)), g).toEqual(want);
}

/** The store, failing every write after the first `okWrites` (a process that dies mid-run). */
function dying(s: Store, okWrites: number): Store {
  let writes = 0;
  return new Proxy(s, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if ((prop === "batch" || prop === "delete") && typeof v === "function") {
        return (...args: unknown[]) => {
          if (++writes > okWrites) return Promise.reject(new Error("killed"));
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos({ dataDir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const sys = { tenantId: "_system", scopeId: "gateway" };
  await store.batch(sys, [{ kind: "create", doc: { id: `gwkey.${GW}`, ...sys, docType: "gatewayKeyReservation", owner: TENANT, instance: "default", key: GW } }]);
  await store.batch(P, [
    {
      kind: "create",
      doc: {
        id: "mdl_usage000000000000001",
        ...P,
        docType: "model",
        name: "gpt-4o",
        pricing: { currency: "USD", inputPer1kTokens: 0.02, outputPer1kTokens: 0.06 },
        pricingHistory: [
          { from: `${DAY}T00:00:00.000Z`, pricing: { currency: "USD", inputPer1kTokens: 0.01, outputPer1kTokens: 0.03 } },
          { from: PRICE_CHANGE, pricing: { currency: "USD", inputPer1kTokens: 0.02, outputPer1kTokens: 0.06 } },
        ],
      },
    },
  ]);
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

describe("usage ingestion (local gateway logs → rollups)", () => {
  it("late, out-of-order, duplicated and replayed records all end in the independently computed totals", async () => {
    const dir = join(dataDir, `logs-${++n}`);
    const source = new LocalGatewayLogSource("default", dir, now);
    const ingestion = new UsageIngestion(store, clock, { retention });
    const gens = generate(3000, 7);
    // Arrival order is not time order: the second half of every hour arrives after later hours were ingested.
    const first = gens.filter((_, i) => i % 2 === 0);
    const late = gens.filter((_, i) => i % 2 === 1);
    first.forEach((g, i) => deliver(dir, g, { duplicate: i % 50 === 0 }));
    const r1 = await ingestion.run(source);
    expect(r1.hours).toEqual([`${DAY}T00`, `${DAY}T01`, `${DAY}T02`]);
    await expectRollups(store, first);

    late.reverse().forEach((g, i) => deliver(dir, g, { duplicate: i % 37 === 0 }));
    const r2 = await ingestion.run(source);
    expect(r2.hours).toHaveLength(3);
    await expectRollups(store, gens);

    // Nothing new: nothing read, nothing changes. A replay from the start (position lost) changes nothing either.
    const r3 = await ingestion.run(source);
    expect(r3.hours).toEqual([]);
    await store.delete({ tenantId: "_system", scopeId: "usage" }, "usage.state.default");
    const r4 = await ingestion.run(source);
    expect(r4.hours).toHaveLength(3);
    await expectRollups(store, gens);

    // One late record into the first hour recomputes that hour (and its day) only.
    const straggler = generate(1, 99)[0]!;
    straggler.gateway.TimeGenerated = straggler.time = `${DAY}T00:00:01.000Z`;
    for (const l of straggler.llm) l.TimeGenerated = straggler.time;
    deliver(dir, straggler);
    const r5 = await ingestion.run(source);
    expect(r5.hours).toEqual([`${DAY}T00`]);
    await expectRollups(store, [...gens, straggler]);

    // The latest use per key only moves forward.
    const activity = await store.read<{ keys: Record<string, string> } & { id: string; tenantId: string; scopeId: string; docType: string }>(P, "usage.activity");
    for (const [key, e] of expected([...gens, straggler])) expect(activity?.keys[key]).toBe(e.lastAt);
  });

  it("a run that dies anywhere is completed by the next run: the same rollups, never a double count", async () => {
    const dir = join(dataDir, `logs-${++n}`);
    const partition = { tenantId: TENANT, scopeId: PROJECT };
    // Start from nothing for this project (the first test's rollups live in the same partition).
    const ids: string[] = [];
    for await (const d of everyDoc(store, partition, { docType: "usageRollup" })) ids.push(d.id);
    for (const id of ids) await store.delete(partition, id);
    await store.delete({ tenantId: "_system", scopeId: "usage" }, "usage.state.default");
    const gens = generate(2000, 11);
    gens.forEach((g) => deliver(dir, g));
    const source = new LocalGatewayLogSource("default", dir, now);
    for (const okWrites of [0, 1, 2, 3, 4]) {
      await expect(new UsageIngestion(dying(store, okWrites), clock, { retention }).run(source)).rejects.toThrow("killed");
    }
    const report = await new UsageIngestion(store, clock, { retention }).run(source);
    expect(report.requests).toBe(2000);
    await expectRollups(store, gens);
  });

  it("requests to another tenant's APIs, or to no aigov API, are not counted in this tenant", async () => {
    const dir = join(dataDir, `logs-${++n}`);
    const stranger = generate(5, 3).map((g) => ({ ...g, gateway: { ...g.gateway, ApiId: `aigov-zz9other00-${OTHER_TENANT_PROJECT}` } }));
    const foreign = generate(5, 4).map((g) => ({ ...g, gateway: { ...g.gateway, ApiId: "echo-api" } }));
    [...stranger, ...foreign].forEach((g) => deliver(dir, g));
    await store.delete({ tenantId: "_system", scopeId: "usage" }, "usage.state.default");
    const report = await new UsageIngestion(store, clock, { retention }).run(new LocalGatewayLogSource("default", dir, now));
    expect(report).toMatchObject({ requests: 10, unattributed: 10, projects: 0 });
    expect(await store.read({ tenantId: TENANT, scopeId: OTHER_TENANT_PROJECT }, "usage.activity")).toBeUndefined();
  });

  it("the budget check a run owes survives a crash or a failing check: the next run makes it, with no new traffic", async () => {
    const dir = join(dataDir, `logs-${++n}`);
    await store.delete({ tenantId: "_system", scopeId: "usage" }, "usage.state.default");
    generate(20, 13).forEach((g) => deliver(dir, g));
    const source = new LocalGatewayLogSource("default", dir, now);
    // The rollups and the position are written, then the check dies (or the process does).
    const dies = new UsageIngestion(store, clock, { retention, afterRun: () => Promise.reject(new Error("killed")) });
    await expect(dies.run(source)).rejects.toThrow("killed");
    const checked: string[][] = [];
    const checks = new UsageIngestion(store, clock, {
      retention,
      afterRun: async (touched) => void checked.push(touched.flatMap((t) => [...t.hours].map((h) => `${t.owner.tenantId}/${t.owner.projectId}/${h}`)).sort()),
    });
    expect((await checks.run(source)).hours).toEqual([]);
    expect(checked).toEqual([[`${TENANT}/${PROJECT}/${DAY}T00`, `${TENANT}/${PROJECT}/${DAY}T01`, `${TENANT}/${PROJECT}/${DAY}T02`]]);
    // Made once, it is owed no more.
    await checks.run(source);
    expect(checked).toHaveLength(1);
  });

  it("a check that failed for a project (caught, the others made) stays owed: the next run makes it, with no new traffic", async () => {
    const dir = join(dataDir, `logs-${++n}`);
    await store.delete({ tenantId: "_system", scopeId: "usage" }, "usage.state.default");
    generate(20, 13).forEach((g) => deliver(dir, g));
    const source = new LocalGatewayLogSource("default", dir, now);
    const checked: string[][] = [];
    let failing = true;
    const checks = new UsageIngestion(store, clock, {
      retention,
      // The budget check's answer: the projects whose check failed (budget-alerts.ts checkOwed), still owed.
      afterRun: async (touched) => {
        checked.push(touched.flatMap((t) => [...t.hours].map((h) => `${t.owner.projectId}/${h}`)).sort());
        const still = failing ? touched : [];
        failing = false;
        return still;
      },
    });
    await checks.run(source);
    expect((await checks.run(source)).hours).toEqual([]);
    expect(checked).toHaveLength(2);
    expect(checked[1]).toEqual(checked[0]);
    await checks.run(source);
    expect(checked).toHaveLength(2);
  });
});
