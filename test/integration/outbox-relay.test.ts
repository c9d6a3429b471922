import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { ChangeWriter } from "../../src/domain/changes.js";
import { OutboxRelay, UNDELIVERABLE } from "../../src/domain/outbox/relay.js";
import { systemClock } from "../../src/ports/clock.js";
import type { CloudEvent, EventPublisher } from "../../src/ports/events.js";

let cosmos: EmbeddedCosmos;
let store: CosmosStore;

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos();
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const writer = new ChangeWriter(store, systemClock);
  const ctx = (tenantId: string) => ({ principal: { tenantId, userId: "u", roles: new Set<never>() }, correlationId: "c" });
  for (const [tenant, n] of [["ta", 3], ["tb", 2]] as const) {
    for (let i = 0; i < n; i++) {
      await writer.commit({
        partition: { tenantId: tenant, scopeId: "_tenant" },
        ctx: ctx(tenant),
        action: "thing.create",
        resource: `/things/${i}`,
        after: { i },
        ops: [{ kind: "create", doc: { id: `thing-${i}`, tenantId: tenant, scopeId: "_tenant", docType: "thing" } }],
        event: { type: "aigov.thing.created.v1", subject: `/tenants/${tenant}/things/${i}`, data: { i } },
      });
    }
  }
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

describe("outbox relay", () => {
  it("keeps records when publishing fails, then delivers each once in batches within the limits", async () => {
    const batches: CloudEvent[][] = [];
    let failing = true;
    const publisher: EventPublisher = {
      publish: async (events) => {
        if (failing) throw new Error("topic unavailable");
        batches.push(events);
      },
    };
    const relay = new OutboxRelay(store, publisher, { maxEvents: 2, maxBytes: 1024 * 1024 });
    await expect(relay.runOnce()).rejects.toThrow(/topic unavailable/);
    const pending = await store.queryAcrossPartitions({ docType: "outbox", maxPageSize: 100 });
    expect(pending.items).toHaveLength(5);

    failing = false;
    expect(await relay.runOnce()).toEqual({ delivered: 5, setAside: 0 });
    expect(batches.map((b) => b.length)).toEqual([2, 2, 1]);
    expect(batches.flat().map((e) => e.subject).sort()).toEqual([
      "/tenants/ta/things/0", "/tenants/ta/things/1", "/tenants/ta/things/2", "/tenants/tb/things/0", "/tenants/tb/things/1",
    ]);
    expect(new Set(batches.flat().map((e) => e.id)).size).toBe(5);
    expect(await relay.runOnce()).toEqual({ delivered: 0, setAside: 0 });
  });

  it("sets an undeliverable record aside in its partition (kept, never relayed again) and delivers the rest", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const partition = { tenantId: "ta", scopeId: "_tenant" };
    await store.batch(partition, [{ kind: "create", doc: { id: "outbox.damaged", ...partition, docType: "outbox" } }]);
    const event = { specversion: "1.0", id: "e-late", source: "/aigov", type: "aigov.thing.created.v1", subject: "/tenants/tb/things/9", time: new Date().toISOString(), datacontenttype: "application/json", data: {} };
    await store.batch({ tenantId: "tb", scopeId: "_tenant" }, [{ kind: "create", doc: { id: "outbox.late", tenantId: "tb", scopeId: "_tenant", docType: "outbox", event } }]);
    const published: string[] = [];
    const relay = new OutboxRelay(store, { publish: async (events) => void published.push(...events.map((e) => e.id)) });
    expect(await relay.runOnce()).toEqual({ delivered: 1, setAside: 1 });
    expect(published).toEqual(["e-late"]);
    expect(await store.read(partition, "outbox.damaged")).toMatchObject({ docType: UNDELIVERABLE, undeliverable: { reason: "no event with an id" } });
    expect(await relay.runOnce()).toEqual({ delivered: 0, setAside: 0 });
  });
});
