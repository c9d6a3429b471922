/**
 * Conformance: usage history holds over time — what a request cost stays what it cost when its model is
 * later deleted and its hour recomputed, and a budget threshold crossed near a period's end is announced
 * for that period even when the run that ingests it starts after the period ended (ADR 016).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
let g: Governed;
let dev: AigovClient;
const started = new Date(Date.now() - 60_000).toISOString();
const price = (perK: number) => ({ pricing: { currency: "USD", inputPer1kTokens: perK, outputPer1kTokens: perK } });

/** What the gateway logged so far, ingested (the usageIngest job, as its timer runs it). */
async function ingest(): Promise<void> {
  await g.t.gateway.flushLogs();
  await g.t.app.host.invokeTimer("usageIngest");
  await g.t.relay();
}

/** The gateway's clock caught up with the app's, so the next call is logged after everything before it. */
const catchUp = () => g.t.clock.advance(Math.max(0, g.t.appClock.ms() - g.t.clock.now()) + 1);

/** A project with a USD budget and one model at 1e-5 USD a token (10 tokens a call: 0.0001), published, and a Developer's key to it. */
async function budgeted(name: string, period: "Hourly" | "Monthly", host: string) {
  const p = await g.project(name, { budget: { amount: 0.0001, currency: "USD", period } });
  const m = await g.model(p.id, "gpt-4o", { hosts: [host], extra: price(0.01) });
  await g.publish(name);
  const k = await g.key(dev, p.id, { name, scopes: { models: [m.id] } });
  return { p, k };
}

/** The budget thresholds announced for a project so far (the events' data). */
const announcedFor = (projectId: string) =>
  g.t
    .events()
    .filter((e) => e.type === "aigov.budget.thresholdReached.v1" && (e.data as { projectId: string }).projectId === projectId)
    .map((e) => e.data as { threshold: number; amount: number; spent: number; periodStart: string });

beforeAll(async () => {
  g = await Governed.start("t-usage-history");
  overrideServices({ clock: g.t.appClock });
  dev = await g.as("dora", ["Developer"]);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

describe("conformance: usage history", () => {
  it("deleting a model keeps what its requests cost, when their hour is recomputed", async () => {
    const p = await g.project("deleted model");
    const gone = await g.model(p.id, "gpt-4o-mini", { extra: price(0.02) });
    const stays = await g.model(p.id, "gpt-4o", { extra: price(0.01) });
    await g.publish("deleted model");
    const kGone = await g.key(dev, p.id, { name: "gone", scopes: { models: [gone.id] } });
    const kStays = await g.key(dev, p.id, { name: "stays", scopes: { models: [stays.id] } });
    // The gateway's clock to the app's, so requests are made after the models were registered.
    catchUp();
    expect((await g.chat(p.id, kGone.key, "gpt-4o-mini")).status).toBe(200); // 10 tokens at 2e-5
    await ingest();
    expect((await g.admin.usage.project(p.id, { from: started })).totals.cost).toEqual([{ currency: "USD", amount: 0.0002 }]);

    await g.admin.models.delete(p.id, gone.id, (await g.admin.models.get(p.id, gone.id)).etag);
    await g.publish("model deleted");
    // Another request in the same hour: the hour is read again, whole.
    expect((await g.chat(p.id, kStays.key, "gpt-4o")).status).toBe(200); // 10 tokens at 1e-5
    await ingest();
    const after = await g.admin.usage.project(p.id, { from: started, groupBy: "resource" });
    expect(after.totals.requests).toBe(2);
    expect(after.totals.cost).toEqual([{ currency: "USD", amount: 0.0003 }]);
    expect(after.totals.unpricedTokens).toBe(0);
    expect(after.groups.find((gr) => gr.resource === "gpt-4o-mini")?.summary.cost).toEqual([{ currency: "USD", amount: 0.0002 }]);

    // A new model under the old name, at another price: the old requests keep their price.
    const again = await g.model(p.id, "gpt-4o-mini", { hosts: ["again.mock.localhost"], extra: price(0.5) });
    await g.publish("same name again");
    const kAgain = await g.key(dev, p.id, { name: "again", scopes: { models: [again.id] } });
    catchUp();
    expect((await g.chat(p.id, kAgain.key, "gpt-4o-mini")).status).toBe(200); // 10 tokens at 5e-4
    await ingest();
    const byKey = await g.admin.usage.project(p.id, { from: started, groupBy: "key" });
    const cost = (key: string) => byKey.groups.find((gr) => gr.keyId === key)?.summary.cost;
    expect(cost(kGone.id)).toEqual([{ currency: "USD", amount: 0.0002 }]);
    expect(cost(kAgain.id)).toEqual([{ currency: "USD", amount: 0.005 }]);
  });

  it("a threshold crossed before a period ends and ingested after it is announced, once, for that period", async () => {
    // 10 tokens at 1e-5 USD: 100% of the hour's budget.
    const { p, k } = await budgeted("hourly budget", "Hourly", "hourly.mock.localhost");
    catchUp();
    const hour = Math.floor(g.t.clock.now() / HOUR) * HOUR;
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    // The run that reads it starts in the next hour (the schedule's period plus the logs' delay).
    g.t.appClock.advance(Math.max(0, hour + HOUR + 60_000 - g.t.appClock.ms()));
    await ingest();
    const announced = () => announcedFor(p.id);
    expect(announced()).toMatchObject([{ threshold: 100, periodStart: new Date(hour).toISOString(), spent: 0.0001 }]);
    const audited = (await g.admin.audit.list({ scope: p.id })).items.filter((a) => a.action === "budget.thresholdReached");
    expect(audited).toHaveLength(1);

    // Read again (a later record of that hour): nothing announced twice.
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    await ingest();
    expect(announced()).toHaveLength(1);
  });

  it("a budget changed during its period is watched afresh: its thresholds are announced again, of the new amount", async () => {
    // 10 tokens at 1e-5 USD: 100% of 0.0001.
    const { p, k } = await budgeted("raised budget", "Monthly", "raised.mock.localhost");
    catchUp();
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    await ingest();
    const announced = () => announcedFor(p.id);
    expect(announced()).toMatchObject([{ threshold: 100, amount: 0.0001 }]);

    // Raised to 0.00025 (spent: 40%); another call takes it to 80% of the new amount.
    await g.admin.projects.update(p.id, { budget: { amount: 0.00025, currency: "USD", period: "Monthly" } }, (await g.admin.projects.get(p.id)).etag);
    catchUp();
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    await ingest();
    expect(announced()).toMatchObject([{ threshold: 100, amount: 0.0001 }, { threshold: 80, amount: 0.00025, spent: 0.0002 }]);
    expect((await g.admin.audit.list({ scope: p.id })).items.filter((a) => a.action === "budget.thresholdReached")).toHaveLength(2);
    // Past the new amount: its 100%, once.
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    await ingest();
    await ingest();
    expect(announced().map((a) => a.threshold)).toEqual([100, 80, 100]);
  });

  it("late usage of an ended period, read after the budget changed, is measured against that period's budget: nothing announced again", async () => {
    // 10 tokens at 1e-5 USD: 100% of the hour's 0.0001.
    const { p, k } = await budgeted("changed after its hour", "Hourly", "changed-after.mock.localhost");
    // Both clocks a minute into a fresh hour, so the hour's calls and its first reading fall in it.
    const hour = Math.floor(Math.max(g.t.clock.now(), g.t.appClock.ms()) / HOUR) * HOUR + HOUR;
    g.t.clock.advance(hour + 60_000 - g.t.clock.now());
    g.t.appClock.advance(hour + 60_000 - g.t.appClock.ms());
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    await ingest();
    const announced = () => announcedFor(p.id);
    expect(announced()).toMatchObject([{ threshold: 100, amount: 0.0001, periodStart: new Date(hour).toISOString() }]);

    // Another call that hour, read only in the next hour, after the budget was raised to 0.00025: the hour's
    // spend (0.0002) is 80% of the new amount, but that hour's budget was 0.0001 and both its thresholds were announced.
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    g.t.appClock.advance(hour + HOUR + 60_000 - g.t.appClock.ms());
    await g.admin.projects.update(p.id, { budget: { amount: 0.00025, currency: "USD", period: "Hourly" } }, (await g.admin.projects.get(p.id)).etag);
    await ingest();
    expect(announced()).toHaveLength(1);
    expect((await g.admin.audit.list({ scope: p.id })).items.filter((a) => a.action === "budget.thresholdReached")).toHaveLength(1);
  });

  it("a deleted project's spend stays in the tenant's report, as long as its rollups are kept", async () => {
    const p = await g.project("deleted project");
    const m = await g.model(p.id, "gpt-4o", { hosts: ["deleted.mock.localhost"], extra: price(0.01) });
    await g.publish("deleted project");
    const k = await g.key(dev, p.id, { name: "deleted", scopes: { models: [m.id] } });
    catchUp();
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200); // 10 tokens at 1e-5
    await ingest();
    const spent = async () => (await g.admin.usage.tenant({ from: started, groupBy: "project" })).groups.find((gr) => gr.projectId === p.id)?.summary;
    expect(await spent()).toMatchObject({ requests: 1, cost: [{ currency: "USD", amount: 0.0001 }] });
    const before = (await g.admin.usage.tenant({ from: started })).totals;

    await dev.keys.revoke(p.id, k.id, { reason: "project closed" }, (await dev.keys.get(p.id, k.id)).etag);
    await g.synced(p.id, k.id);
    await g.admin.models.delete(p.id, m.id, (await g.admin.models.get(p.id, m.id)).etag);
    await g.publish("project closing");
    await g.admin.projects.delete(p.id, (await g.admin.projects.get(p.id)).etag);
    expect(await spent()).toMatchObject({ requests: 1, cost: [{ currency: "USD", amount: 0.0001 }] });
    expect((await g.admin.usage.tenant({ from: started })).totals).toEqual(before);
  });

  it("a report on a day older than the minutes' retention comes from the hours kept, by default", async () => {
    const p = await g.project("older usage");
    const m = await g.model(p.id, "gpt-4o", { hosts: ["older.mock.localhost"], extra: price(0.01) });
    await g.publish("older usage");
    const k = await g.key(dev, p.id, { name: "older", scopes: { models: [m.id] } });
    // A request logged 5 days ago: within the logs' horizon (7 days), past the minutes' retention (3 days).
    const then = g.t.appClock.ms() - 5 * DAY;
    g.t.clock.t = then;
    try {
      expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
      await ingest();
    } finally {
      g.t.clock.t = Math.max(g.t.clock.t, g.t.appClock.ms());
    }
    const r = await g.admin.usage.project(p.id, { from: new Date(then - HOUR).toISOString(), to: new Date(then + HOUR).toISOString() });
    expect(r.totals).toMatchObject({ requests: 1, succeeded: 1, tokens: { total: 10 }, cost: [{ currency: "USD", amount: 0.0001 }] });
    expect(r.granularity).toBe("hour");
    expect(r.series.map((s) => s.requests)).toEqual([1]);
    // Asked for minutes, it answers what is kept of them: nothing.
    expect((await g.admin.usage.project(p.id, { from: new Date(then - HOUR).toISOString(), to: new Date(then + HOUR).toISOString(), granularity: "minute" })).totals.requests).toBe(0);
  });
});
