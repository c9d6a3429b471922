// One bad record never blocks a tenant (docs/governance.md): the timer jobs' work lists skip a damaged
// document (written around the API) with a logged line, and every other record's work still happens.
import { afterEach, describe, expect, it, vi } from "vitest";
import { OutboxRelay, UNDELIVERABLE } from "../../src/domain/outbox/relay.js";
import type { CloudEvent } from "../../src/ports/events.js";
import type { BatchOp, Store } from "../../src/ports/store.js";
import { KeyLifecycle } from "../../src/domain/keys/lifecycle.js";
import { BudgetAlerts } from "../../src/domain/usage/budget-alerts.js";
import { UsageIngestion } from "../../src/domain/usage/ingest.js";
import { SyncRunner } from "../../src/pillars/agents/sync/run.js";
import { ToolsService } from "../../src/pillars/tools/service.js";

const NOW = Date.parse("2026-06-01T00:00:00.000Z");
const clock = { now: () => new Date(NOW) };
async function* listing<T>(docs: T[]): AsyncGenerator<T> {
  yield* docs;
}
const collect = async <T>(items: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const i of items) out.push(i);
  return out;
};

afterEach(() => vi.restoreAllMocks());

const relayEvent = (id: string, data = ""): CloudEvent => ({ specversion: "1.0", id, source: "/aigov", type: "t", subject: "s", time: "", datacontenttype: "application/json", data });
/** An outbox as the relay sees it: pages of pending records in store order, batches that delete or replace (ifMatch honoured). */
function outboxStore(records: Record<string, unknown>[]): Store {
  return {
    queryAcrossPartitions: async ({ docType, maxPageSize }: { docType: string; maxPageSize: number }) => ({ items: records.filter((r) => r.docType === docType).slice(0, maxPageSize) }),
    batch: async (_p: unknown, ops: BatchOp[]) => {
      for (const op of ops) {
        const at = records.findIndex((r) => r.id === (op.kind === "delete" ? op.id : op.doc.id));
        if (at < 0) return { ok: false, failedIndex: 0, status: 404 };
        if (op.kind === "delete") records.splice(at, 1);
        else if (op.kind === "replace") {
          if (op.ifMatch && op.ifMatch !== records[at]!._etag) return { ok: false, failedIndex: 0, status: 412 };
          records[at] = { ...op.doc, _etag: String(Number(records[at]!._etag) + 1) };
        }
      }
      return { ok: true, etags: [] };
    },
  } as unknown as Store;
}

describe("a damaged document in a job's work list", () => {
  it("agent sync: a connection without its schedule does not keep another tenant's due connection from its run", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const connections = [
      { id: "conn-bad", tenantId: "t-a", enabled: true },
      { id: "conn-ok", tenantId: "t-b", enabled: true, schedule: { intervalMinutes: 60 } },
    ];
    const fake = { clock, connections: { connections: { every: () => listing(connections) } } };
    const due = await collect((SyncRunner.prototype.due as (this: unknown) => AsyncGenerator<{ id: string }>).call(fake));
    expect(due.map((c) => c.id)).toEqual(["conn-ok"]);
  });

  it("tool rediscovery: a server without its discovery settings or state does not keep another tenant's due server from discovery", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const servers = [
      { id: "srv-bad", tenantId: "t-a", projectId: "p-a", status: "active", createdAt: "2026-01-01T00:00:00.000Z" },
      { id: "srv-bad2", tenantId: "t-a", projectId: "p-a", status: "active", createdAt: "2026-01-01T00:00:00.000Z", discovery: { enabled: true, intervalHours: 1 } },
      { id: "srv-ok", tenantId: "t-b", projectId: "p-b", status: "active", createdAt: "2026-01-01T00:00:00.000Z", discovery: { enabled: true, intervalHours: 1 }, discoveryState: {} },
    ];
    const fake = { clock, registry: { servers: { every: () => listing(servers) } } };
    const due = await collect((ToolsService.prototype.dueForDiscovery as (this: unknown) => AsyncGenerator<{ instanceId: string }>).call(fake));
    expect(due.map((d) => d.instanceId).join(" ")).toMatch(/srv-ok/);
    expect(due.some((d) => d.instanceId.includes("srv-bad2"))).toBe(true);
    expect(due.some((d) => /srv-bad(?!2)/.test(d.instanceId))).toBe(false);
  });

  it("outbox relay: a damaged record (no event) or an oversized event in one tenant does not hold up another tenant's events; both are set aside", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const records: Record<string, unknown>[] = [
      { id: "outbox-bad", tenantId: "t-a", scopeId: "_tenant", docType: "outbox", _etag: "1" },
      { id: "outbox-big", tenantId: "t-a", scopeId: "_tenant", docType: "outbox", _etag: "1", event: relayEvent("e-big", "x".repeat(2000)) },
      { id: "outbox-ok", tenantId: "t-b", scopeId: "_tenant", docType: "outbox", _etag: "1", event: relayEvent("e-ok") },
    ];
    const store = outboxStore(records);
    const published: string[] = [];
    const relay = new OutboxRelay(store, { publish: async (events) => void published.push(...events.map((e) => e.id)) }, { maxEvents: 10, maxBytes: 1000 });
    expect(await relay.runOnce()).toEqual({ delivered: 1, setAside: 2 });
    expect(published).toEqual(["e-ok"]);
    expect(records.map((r) => [r.id, r.docType])).toEqual([["outbox-bad", UNDELIVERABLE], ["outbox-big", UNDELIVERABLE]]);
    expect(records.map((r) => (r.undeliverable as { reason: string }).reason)).toEqual(["no event with an id", expect.stringMatching(/e-big alone exceeds 1000 bytes/)]);
    expect(errors.mock.calls.flat().join("\n")).toMatch(/record outbox-bad of tenant t-a/);
    // Set aside, they are not read again: the next run has nothing to do and logs nothing.
    errors.mockClear();
    expect(await relay.runOnce()).toEqual({ delivered: 0, setAside: 0 });
    expect(errors).not.toHaveBeenCalled();
  });

  it("outbox relay: more undeliverable records than a page ahead of a good one do not hide it", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const records: Record<string, unknown>[] = [
      ...Array.from({ length: 1200 }, (_, i) => ({ id: `outbox-bad-${i}`, tenantId: "t-a", scopeId: "_tenant", docType: "outbox", _etag: "1" })),
      { id: "outbox-ok", tenantId: "t-b", scopeId: "_tenant", docType: "outbox", _etag: "1", event: relayEvent("e-ok") },
    ];
    const published: string[] = [];
    const relay = new OutboxRelay(outboxStore(records), { publish: async (events) => void published.push(...events.map((e) => e.id)) });
    expect(await relay.runOnce()).toEqual({ delivered: 1, setAside: 1200 });
    expect(published).toEqual(["e-ok"]);
  });

  it("outbox relay: a record the store will not set aside stays pending and ends the run (tried again next run)", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const records: Record<string, unknown>[] = [{ id: "outbox-bad", tenantId: "t-a", scopeId: "_tenant", docType: "outbox", _etag: "1" }];
    const store = outboxStore(records);
    store.batch = async () => ({ ok: false, failedIndex: 0, status: 503 });
    const relay = new OutboxRelay(store, { publish: async () => undefined });
    expect(await relay.runOnce()).toEqual({ delivered: 0, setAside: 0 });
    expect(records.map((r) => r.docType)).toEqual(["outbox"]);
  });

  it("usage ingestion: a damaged model document prices nothing wrong and fails no run (a run is every tenant's on its gateway)", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const models = [
      { id: "mdl-bad", tenantId: "t-a", scopeId: "p-a", docType: "model", name: "bad", pricingHistory: "not a list", backends: { id: "x" } },
      { id: "mdl-bad2", tenantId: "t-a", scopeId: "p-a", docType: "model", name: "bad2", backends: [null] },
      { id: "mdl-ok", tenantId: "t-a", scopeId: "p-a", docType: "model", name: "gpt-4o", pricing: { currency: "EUR", inputPer1kTokens: 1, outputPer1kTokens: 2 }, backends: [{ id: "east" }] },
    ];
    const store = { queryPage: async () => ({ items: models }) } as unknown as Store;
    const ingestion = new UsageIngestion(store, clock, { retention: { minute: 3, hour: 95, day: 800 } });
    type Book = { prices: Map<string, { currency: string }[]>; backends: Map<string, string> };
    const book = await (ingestion as unknown as { book(books: Map<string, Promise<Book>>, owner: { tenantId: string; projectId: string }): Promise<Book> }).book(new Map(), { tenantId: "t-a", projectId: "p-a" });
    expect(book.prices.get("gpt-4o")).toEqual([{ from: "", currency: "EUR", inputPer1kTokens: 1, outputPer1kTokens: 2 }]);
    expect([...book.backends.values()]).toContain("gpt-4o/east");
    expect(errors.mock.calls.flat().join("\n")).toMatch(/model mdl-bad2 of tenant t-a/);
  });

  it("key lifecycle: a key whose re-read fails in the retry pass does not keep the keys after it from their retry", async () => {
    const keys = [
      { id: "key-a", tenantId: "t-a", projectId: "p-a" },
      { id: "key-b", tenantId: "t-b", projectId: "p-b" },
    ];
    const docs = {
      everyKey: () => listing(keys),
      latest: async (k: { id: string }) => {
        if (k.id === "key-a") throw new Error("store hiccup");
        return k;
      },
    };
    const lifecycle = new KeyLifecycle(docs as never, {} as never, {} as never, {} as never, {} as never, clock, 10);
    const visits: string[] = [];
    // The first pass fails for both (a concurrent write); the retry pass succeeds for key-b.
    lifecycle.housekeep = async (listed) => {
      visits.push(listed.id);
      if (visits.length <= 2) throw new Error("changed meanwhile");
      return undefined;
    };
    const logged: string[] = [];
    const log = { log: () => undefined, warn: () => undefined, error: (m: string) => void logged.push(m) };
    const report = await lifecycle.run("c", {} as never, log);
    expect(visits).toEqual(["key-a", "key-b", "key-b"]);
    expect(report).toMatchObject({ retried: 2, failures: 1 });
    expect(logged.join("\n")).toMatch(/key key-a of tenant t-a: store hiccup/);
  });

  it("budget alerts: a damaged key in one tenant's project does not keep another tenant's budget threshold from being announced", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const store = { queryPage: async () => ({ items: [] }) } as unknown as Store;
    const analytics = {
      budgetStatus: async (tenantId: string) => {
        if (tenantId === "t-a") throw new TypeError("k.shares.filter is not a function");
        return [{ subject: { kind: "project", id: "p-b", name: "b" }, percent: 100, periodStart: "2026-06-01T00:00:00.000Z", periodEnd: "2026-07-01T00:00:00.000Z" }];
      },
    };
    const alerts = new BudgetAlerts(store, {} as never, analytics as never);
    const created: string[] = [];
    (alerts as unknown as { alerts: unknown }).alerts = { read: async () => undefined, create: async (_ctx: unknown, doc: { tenantId: string; id: string }) => void created.push(`${doc.tenantId}/${doc.id}`) };
    const touched = [
      { owner: { tenantId: "t-a", projectId: "p-a" }, days: new Set(["2026-06-01"]), hours: new Set(["2026-06-01T10"]) },
      { owner: { tenantId: "t-b", projectId: "p-b" }, days: new Set(["2026-06-01"]), hours: new Set(["2026-06-01T10"]) },
    ];
    expect(await alerts.check(touched)).toBe(1);
    expect(created).toEqual(["t-b/budget.p-b.2026-06-01T00:00:00"]);
    expect(errors.mock.calls.flat().join("\n")).toMatch(/project p-a of tenant t-a/);
  });

  it("budget alerts: a project whose check failed is still owed (its hours), so the ingestion's next run checks it again", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const store = { queryPage: async () => ({ items: [] }) } as unknown as Store;
    const analytics = {
      budgetStatus: async (tenantId: string) => {
        if (tenantId === "t-a") throw new Error("store time-out");
        return [];
      },
    };
    const alerts = new BudgetAlerts(store, {} as never, analytics as never);
    const touched = [
      { owner: { tenantId: "t-a", projectId: "p-a" }, days: new Set(["2026-06-01"]), hours: new Set(["2026-06-01T10", "2026-06-01T11"]) },
      { owner: { tenantId: "t-b", projectId: "p-b" }, days: new Set(["2026-06-01"]), hours: new Set(["2026-06-01T10"]) },
    ];
    const { failed } = await alerts.checkOwed(touched);
    expect(failed.map((t) => ({ ...t.owner, hours: [...t.hours].sort() }))).toEqual([{ tenantId: "t-a", projectId: "p-a", hours: ["2026-06-01T10", "2026-06-01T11"] }]);
  });
});
