/**
 * Conformance: usage, cost and activity as the API reports them, from traffic sent through the local
 * gateway and ingested from the gateway's own logs (the usageIngest job, as its timer runs it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../../src/cli/main.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let p: Project;
let keyA: { id: string; key: string };
let keyB: { id: string; key: string };
let mini: { id: string; etag: string };
const started = new Date(Date.now() - 60_000).toISOString();
const cred = (h: string) => ({ type: "apiKey" as const, header: "api-key" as const, key: `provider-key-${h}` });

/** What the gateway logged so far, ingested. */
async function ingest(): Promise<void> {
  await g.t.gateway.flushLogs();
  await g.t.app.host.invokeTimer("usageIngest");
  await g.t.relay();
}

beforeAll(async () => {
  g = await Governed.start("t-usage");
  dev = await g.as("dora", ["Developer"]);
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings: {}, services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
  p = await g.project("usage", {
    budget: { amount: 0.0006, currency: "USD", period: "Monthly" },
    settings: {
      contentSafety: { categories: { Violence: 4 }, outputType: "EightSeverityLevels" },
      failover: { retry: { enabled: true }, circuitBreaker: { failureCount: 1, failureInterval: "PT1M", tripDuration: "PT1M", statusCodes: [{ min: 429, max: 429 }, { min: 500, max: 599 }] } },
    },
  });
  // 1e-5 USD a token on gpt-4o, 2e-5 on gpt-4o-mini.
  const gpt = await g.admin.models.create(p.id, {
    name: "gpt-4o",
    provider: "openai",
    modelName: "gpt-4o",
    pricing: { currency: "USD", inputPer1kTokens: 0.01, outputPer1kTokens: 0.01 },
    backends: [
      { id: "primary", url: "https://primary.mock.localhost/v1", region: "eastus", priority: 1, credential: cred("primary") },
      { id: "standby", url: "https://standby.mock.localhost/v1", region: "eastus", priority: 2, credential: cred("standby") },
    ],
  } as never);
  mini = await g.model(p.id, "gpt-4o-mini", { extra: { pricing: { currency: "USD", inputPer1kTokens: 0.02, outputPer1kTokens: 0.02 } } });
  await g.publish("usage");
  keyA = await g.key(dev, p.id, { name: "a", scopes: { models: [gpt.id, mini.id] }, limits: { tokensPerMinute: 30 } });
  keyB = await g.key(dev, p.id, { name: "b", scopes: { models: [mini.id] } });
}, 120_000);
afterAll(() => g.stop());

describe("conformance: usage and cost from the gateway's logs", () => {
  it("a scripted stretch of traffic yields exactly its tokens, cost, error classes, failover and lastUsedAt", async () => {
    // Every successful call: 2 prompt + 8 completion tokens, as the fake backend reports them.
    expect((await g.chat(p.id, keyA.key, "gpt-4o")).status).toBe(200);
    g.t.backends.configure("primary.mock.localhost", { failNext: { status: 429, count: 1 } });
    const failedOver = await g.chat(p.id, keyA.key, "gpt-4o");
    expect([failedOver.status, failedOver.headers.get("x-mock-instance")]).toEqual([200, "standby.mock.localhost"]);
    expect((await g.chat(p.id, keyA.key, "gpt-4o")).status).toBe(200);
    expect((await g.chat(p.id, keyA.key, "gpt-4o")).status).toBe(429); // the key's 30 tokens a minute
    expect((await g.chat(p.id, keyB.key, "gpt-4o-mini")).status).toBe(200);
    expect((await g.chat(p.id, keyB.key, "gpt-4o")).status).toBe(403); // not in its scope
    const unsafe = await g.call(p.id, "/v1/chat/completions", { key: keyB.key, body: { model: "gpt-4o-mini", messages: [{ role: "user", content: "something unsafe:Violence:5" }] } });
    expect(unsafe.status).toBe(403);
    expect((await g.chat(p.id, "aigw_not_a_key", "gpt-4o")).status).toBe(401);
    await ingest();

    const r = await g.admin.usage.project(p.id, { from: started, groupBy: "key" });
    expect(r.totals).toMatchObject({
      requests: 8,
      succeeded: 4,
      errors: { auth: 1, scope: 1, limit: 1, contentSafety: 1, request: 0, backend: 0, gateway: 0 },
      tokens: { prompt: 8, completion: 32, total: 40 },
      unpricedTokens: 0,
    });
    expect(r.totals.cost).toEqual([{ currency: "USD", amount: 0.0005 }]);
    const byKey = Object.fromEntries(r.groups.map((gr) => [gr.keyId ?? "", gr.summary]));
    expect(byKey[keyA.id]).toMatchObject({ requests: 4, succeeded: 3, tokens: { total: 30 }, cost: [{ currency: "USD", amount: 0.0003 }], errors: { limit: 1 } });
    expect(byKey[keyB.id]).toMatchObject({ requests: 3, succeeded: 1, tokens: { total: 10 }, cost: [{ currency: "USD", amount: 0.0002 }], errors: { scope: 1, contentSafety: 1 } });
    expect(byKey[""]).toMatchObject({ requests: 1, errors: { auth: 1 } });
    expect(r.totals.latencyMs.gateway.p50).toBeGreaterThanOrEqual(0);
    expect(r.series.reduce((n, s) => n + s.requests, 0)).toBe(8);

    // The failover shows as the backend that answered.
    const byBackend = await g.admin.usage.project(p.id, { from: started, groupBy: "resource,backend", kind: "model" });
    const gpt = byBackend.groups.filter((gr) => gr.resource === "gpt-4o" && gr.summary.succeeded > 0);
    expect(Object.fromEntries(gpt.map((gr) => [gr.backend, gr.summary.succeeded]))).toEqual({ "gpt-4o/primary": 1, "gpt-4o/standby": 2 });

    // The last use of each key, from the rollups.
    const a = await dev.keys.get(p.id, keyA.id);
    expect(a.lastUsedAt! >= started).toBe(true);
    expect((await dev.keys.get(p.id, keyB.id)).lastUsedAt! >= started).toBe(true);

    // 0.0005 of 0.0006 USD: 83%, one event for the 80% threshold.
    const budgets = await g.admin.usage.budgets(p.id);
    expect(budgets.items.find((b) => b.subject.kind === "project")).toMatchObject({ spent: 0.0005, percent: 83.33, currency: "USD" });
    const alerts = () => g.t.events().filter((e) => e.type === "aigov.budget.thresholdReached.v1" && (e.data as { projectId: string }).projectId === p.id);
    expect(alerts().map((e) => (e.data as { threshold: number }).threshold)).toEqual([80]);

    // Ingesting again changes nothing and announces nothing.
    await ingest();
    expect((await g.admin.usage.project(p.id, { from: started })).totals).toEqual(r.totals);
    expect(alerts()).toHaveLength(1);
  });

  it("a price change applies from then on: what was spent before keeps its price", async () => {
    const before = await g.admin.usage.project(p.id, { from: started, groupBy: "key" });
    const current = await g.admin.models.get(p.id, mini.id);
    await g.admin.models.update(p.id, mini.id, { pricing: { currency: "USD", inputPer1kTokens: 0.04, outputPer1kTokens: 0.04 } } as never, current.etag);
    await g.publish("price");
    // The gateway's clock stands still unless moved: move it just past the change (1 ms: a log stamped ahead of
    // real time falls outside reports that end now, rounded up to the minute, near a minute's end).
    g.t.clock.advance(Math.max(0, Date.now() - g.t.clock.now()) + 1);
    expect((await g.chat(p.id, keyB.key, "gpt-4o-mini")).status).toBe(200);
    await ingest();
    const after = await g.admin.usage.project(p.id, { from: started, groupBy: "key" });
    const cost = (r: typeof after, key: string) => r.groups.find((gr) => gr.keyId === key)?.summary.cost[0]?.amount;
    expect(cost(after, keyA.id)).toBe(cost(before, keyA.id));
    expect(cost(after, keyB.id)).toBe(0.0006); // 0.0002 before the change + 10 tokens at 4e-5
    // 0.0009 of 0.0006: the 100% threshold, once.
    const thresholds = g.t.events().filter((e) => e.type === "aigov.budget.thresholdReached.v1" && (e.data as { projectId: string }).projectId === p.id).map((e) => (e.data as { threshold: number }).threshold);
    expect(thresholds).toEqual([80, 100]);
  });

  it("a shared key's budget is announced when its spend is all in the project it is shared with", async () => {
    const home = await g.project("budget home");
    const away = await g.project("budget away");
    const homeModel = await g.model(home.id, "gpt-4o-mini", { hosts: ["home.mock.localhost"], extra: { pricing: { currency: "USD", inputPer1kTokens: 0.02, outputPer1kTokens: 0.02 } } });
    await g.model(away.id, "gpt-4o-mini", { hosts: ["away.mock.localhost"], extra: { pricing: { currency: "USD", inputPer1kTokens: 0.02, outputPer1kTokens: 0.02 } } });
    await g.publish("shared budgets");
    // 0.00025 USD: one call (10 tokens at 2e-5) is 80% of it.
    const k = await g.key(dev, home.id, { name: "shared budget", scopes: { models: [homeModel.id] }, limits: { budget: { amount: 0.00025, currency: "USD", period: "Monthly" } } });
    const { approval } = await dev.keys.share(home.id, k.id, { projectId: away.id, justification: "evaluation" }, (await dev.keys.get(home.id, k.id)).etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, (await g.admin.approvals.get(approval.id)).etag);
    await until(async () => ((await dev.keys.get(home.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(home.id, k.id);
    expect((await g.chat(away.id, k.key, "gpt-4o-mini")).status).toBe(200);
    await ingest();
    const status = (await g.admin.usage.budgets(home.id)).items.find((b) => b.subject.id === k.id);
    expect(status).toMatchObject({ spent: 0.0002, percent: 80 });
    const announced = g.t.events().filter((e) => e.type === "aigov.budget.thresholdReached.v1" && (e.data as { subject: { id: string } }).subject.id === k.id);
    expect(announced.map((e) => [(e.data as { projectId: string }).projectId, (e.data as { threshold: number }).threshold])).toEqual([[home.id, 80]]);

    // Unshared and shared again: the spend there is the same spend, counted once.
    await dev.keys.unshare(home.id, k.id, away.id, (await dev.keys.get(home.id, k.id)).etag);
    const again = await dev.keys.share(home.id, k.id, { projectId: away.id, justification: "again" }, (await dev.keys.get(home.id, k.id)).etag);
    await g.admin.approvals.decide(again.approval.id, { decision: "approve", justification: "ok" }, (await g.admin.approvals.get(again.approval.id)).etag);
    await until(async () => ((await dev.keys.get(home.id, k.id)).shares.filter((x) => x.status === "active").length === 1 ? true : undefined), "shared again");
    expect((await dev.keys.get(home.id, k.id)).shares.map((x) => x.status).sort()).toEqual(["active", "revoked"]);
    expect((await g.admin.usage.budgets(home.id)).items.find((b) => b.subject.id === k.id)).toMatchObject({ spent: 0.0002, percent: 80 });
  });

  it("a tenant report sums its projects and is for tenant admins and auditors", async () => {
    const r = await g.admin.usage.tenant({ from: started, groupBy: "project" });
    expect(r.groups.find((gr) => gr.projectId === p.id)?.summary.requests).toBe(9);
    await expect(dev.usage.tenant({ from: started })).rejects.toMatchObject({ status: 403 });
  });

  it("a range whose end, rounded up to its buckets, would pass the year 9999 is a 400, not a date the schema cannot hold", async () => {
    for (const q of [
      { from: "9999-12-30T00:00:00Z", to: "9999-12-31T12:00:00Z", granularity: "day" as const },
      { to: "9999-12-31T23:59:30Z", granularity: "minute" as const },
    ]) {
      await expect(g.admin.usage.project(p.id, q)).rejects.toMatchObject({ status: 400, problem: { reason: "usage_range_invalid", errors: [{ field: "query.to" }] } });
      await expect(g.admin.usage.tenant(q)).rejects.toMatchObject({ status: 400, problem: { reason: "usage_range_invalid" } });
    }
    // The last whole day there is still answered.
    const last = await g.admin.usage.project(p.id, { from: "9999-12-30T00:00:00Z", to: "9999-12-31T00:00:00Z", granularity: "day" });
    expect([last.from, last.to, last.totals.requests]).toEqual(["9999-12-30T00:00:00.000Z", "9999-12-31T00:00:00.000Z", 0]);
  });

  it("the CLI shows the same: usage per key, budget burn, and sets a project's budget", async () => {
    const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-usage-")), "config.json") };
    const aigov = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(["--endpoint", g.t.url, ...args], { out: (x) => out.push(x), err: (x) => err.push(x), env });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect((await aigov("login", "--dev", "--tenant", "t-usage", "--user", "alice", "--roles", "TenantAdmin,Auditor")).code).toBe(0);
    const shown = await aigov("usage", "show", p.id, "--since", "1h", "--group-by", "key");
    expect(shown.code).toBe(0);
    expect(shown.out).toContain(keyA.id);
    expect(shown.out).toMatch(/limit:1/);
    const raw = await aigov("-o", "json", "usage", "show", p.id, "--since", "1h");
    expect(raw.err).toBe("");
    const json = JSON.parse(raw.out) as { totals: { requests: number } };
    expect(json.totals.requests).toBe(9);
    const budgets = await aigov("usage", "budgets", p.id);
    expect(budgets.out).toContain("0.0006 USD/Monthly");
    expect(budgets.out).toContain("150");
    const updated = JSON.parse((await aigov("-o", "json", "projects", "update", p.id, "--budget", "1 USD/Monthly")).out) as { budget: unknown };
    expect(updated.budget).toEqual({ amount: 1, currency: "USD", period: "Monthly" });
    const clear = await aigov("-o", "json", "projects", "update", p.id, "--budget", "none");
    expect(clear.err).toBe("");
    const cleared = JSON.parse(clear.out) as { budget?: unknown };
    expect(cleared.budget).toBeUndefined();
    expect((await aigov("usage", "show", p.id, "--since", "2x")).code).not.toBe(0);
    // Keys take their budget the same way; a malformed one is a usage error, not silently dropped.
    const key = JSON.parse((await aigov("-o", "json", "keys", "create", p.id, "--name", "cli budget", "--budget", "0.5 USD/Monthly")).out) as { limits: { budget?: unknown } };
    expect(key.limits.budget).toEqual({ amount: 0.5, currency: "USD", period: "Monthly" });
    const bad = await aigov("keys", "create", p.id, "--name", "bad budget", "--budget", "lots");
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain("--budget expects");
  });

  it("adoption: each project's funnel from creation to its first governed request, gateway and key use, approval turnaround", async () => {
    const idle = await g.project("idle");
    const r = await g.admin.usage.adoption();
    const busy = r.projects.find((x) => x.projectId === p.id)!;
    expect(Object.keys(busy.reached).sort()).toEqual(["firstKey", "firstModel", "firstPublish", "firstRequest"]);
    // Registered, then published, then a key: in that order, each after the project's creation.
    const at = (step: keyof typeof busy.reached) => Date.parse(busy.reached[step]!);
    expect(at("firstModel")).toBeGreaterThanOrEqual(Date.parse(busy.createdAt));
    expect(at("firstPublish")).toBeGreaterThanOrEqual(at("firstModel"));
    expect(at("firstKey")).toBeGreaterThanOrEqual(at("firstPublish"));
    expect(busy.sinceCreationMs.firstKey).toBe(at("firstKey") - Date.parse(busy.createdAt));
    expect(busy).toMatchObject({ gatewayEnabled: true, keysInUse: true });
    // The idle project has reached nothing.
    expect(r.projects.find((x) => x.projectId === idle.id)).toMatchObject({ reached: {}, sinceCreationMs: {}, gatewayEnabled: false, keysInUse: false });
    // A published project nobody with a key called: calls without a key, or with another tenant's key, are
    // counted in its usage (the gateway answered them) but reach no milestone and make nothing look used.
    const knocked = await g.project("knocked on");
    await g.model(knocked.id, "gpt-4o-mini");
    await g.publish("a project only strangers call");
    const stranger = await Governed.start("t-usage-stranger", g.t);
    const theirs = await stranger.project("theirs");
    await stranger.model(theirs.id, "gpt-4o-mini");
    await stranger.publish("theirs");
    const foreignKey = (await stranger.key(stranger.admin, theirs.id, { name: "foreign" })).key;
    for (const key of ["", foreignKey]) expect((await g.chat(knocked.id, key, "gpt-4o-mini")).status).toBe(401);
    await ingest();
    const seen = await g.admin.usage.adoption();
    expect(seen.projects.find((x) => x.projectId === knocked.id)!.reached.firstRequest).toBeUndefined();
    expect((await g.admin.usage.project(knocked.id, { from: started })).totals).toMatchObject({ requests: 2, succeeded: 0, errors: { auth: 2 } });
    expect(r.summary.projects).toBe(r.projects.length);
    expect(r.funnel.firstRequest.reached).toBe(r.projects.filter((x) => x.reached.firstRequest).length);
    expect(r.funnel.firstRequest.share).toBe(r.funnel.firstRequest.reached / r.projects.length);
    expect(r.summary.gatewayEnabled.count).toBe(r.projects.filter((x) => x.gatewayEnabled).length);
    expect(r.approvals).toMatchObject({ objective: 0.95 });
    await expect(dev.usage.adoption()).rejects.toMatchObject({ status: 403 });
    const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-adoption-")), "config.json") };
    const out: string[] = [];
    expect(await runCli(["--endpoint", g.t.url, "login", "--dev", "--tenant", "t-usage", "--user", "alice", "--roles", "Auditor"], { out: (x) => out.push(x), err: (x) => out.push(x), env })).toBe(0);
    expect(await runCli(["--endpoint", g.t.url, "usage", "adoption"], { out: (x) => out.push(x), err: (x) => out.push(x), env })).toBe(0);
    expect(out.join("\n")).toMatch(/gateway enabled: \d+\/\d+/);
  });
});
