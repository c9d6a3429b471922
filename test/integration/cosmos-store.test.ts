import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import type { StoredDoc } from "../../src/ports/store.js";

const dataDir = mkdtempSync(join(tmpdir(), "aigov-store-"));
let cosmos: EmbeddedCosmos;
let store: CosmosStore;
const cfg = () => ({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key });
const A = { tenantId: "ta", scopeId: "_tenant" };
const B = { tenantId: "tb", scopeId: "_tenant" };
const doc = (p: typeof A, id: string, extra: Record<string, unknown> = {}): StoredDoc => ({ id, ...p, docType: "thing", ...extra });

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos({ dataDir });
  store = await connectCosmos(cfg(), { createIfMissing: true });
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

describe("CosmosStore on the embedded server", () => {
  it("a failing batch applies nothing (atomic)", async () => {
    const first = await store.batch(A, [{ kind: "create", doc: doc(A, "x1", { n: 1 }) }]);
    expect(first.ok).toBe(true);
    const r = await store.batch(A, [
      { kind: "create", doc: doc(A, "x2") },
      { kind: "replace", doc: doc(A, "x1", { n: 2 }) },
      { kind: "create", doc: doc(A, "x1") }, // conflict
    ]);
    expect(r).toEqual({ ok: false, failedIndex: 2, status: 409 });
    expect(await store.read(A, "x2")).toBeUndefined();
    expect((await store.read(A, "x1"))?.n).toBe(1);
  });

  it("replace with a stale ETag fails with 412 and keeps the document", async () => {
    const current = (await store.read(A, "x1"))!;
    const ok = await store.batch(A, [{ kind: "replace", doc: doc(A, "x1", { n: 3 }), ifMatch: current._etag }]);
    expect(ok.ok).toBe(true);
    const stale = await store.batch(A, [{ kind: "replace", doc: doc(A, "x1", { n: 4 }), ifMatch: current._etag }]);
    expect(stale).toEqual({ ok: false, failedIndex: 0, status: 412 });
    expect((await store.read(A, "x1"))?.n).toBe(3);
  });

  it("reads and queries are scoped to the partition", async () => {
    await store.batch(B, [{ kind: "create", doc: doc(B, "y1") }]);
    expect(await store.read(B, "x1")).toBeUndefined();
    const page = await store.queryPage(B, { docType: "thing", maxPageSize: 10 });
    expect(page.items.map((i) => i.id)).toEqual(["y1"]);
  });

  it("an id is unique per full hierarchical partition key, not per tenant (as in Cosmos DB)", async () => {
    const a = { tenantId: "h1", scopeId: "prj_a" };
    const b = { tenantId: "h1", scopeId: "prj_b" };
    expect((await store.batch(a, [{ kind: "create", doc: { id: "name.same", ...a, docType: "n", v: "a" } }])).ok).toBe(true);
    expect((await store.batch(b, [{ kind: "create", doc: { id: "name.same", ...b, docType: "n", v: "b" } }])).ok).toBe(true);
    expect(await store.read(a, "name.same")).toMatchObject({ v: "a", scopeId: "prj_a" });
    expect(await store.read(b, "name.same")).toMatchObject({ v: "b", scopeId: "prj_b" });
    expect(await store.delete(a, "name.same")).toBe(true);
    expect(await store.read(a, "name.same")).toBeUndefined();
    expect(await store.read(b, "name.same")).toMatchObject({ v: "b" });
    expect((await store.queryPage(b, { docType: "n", maxPageSize: 10 })).items.map((d) => d.v)).toEqual(["b"]);
  });

  it("the embedded server scopes a query to the partition key it is sent with, as Cosmos DB does", async () => {
    const { CosmosClient } = await import("@azure/cosmos");
    const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key, connectionPolicy: { enableEndpointDiscovery: false } });
    const container = client.database("db").container("c");
    const scoped = await container.items.query("SELECT * FROM c", { partitionKey: ["tb", "_tenant"] }).fetchAll();
    expect(scoped.resources.map((d: { id: string }) => d.id)).toEqual(["y1"]);
    const all = await container.items.query("SELECT * FROM c").fetchAll();
    expect(all.resources.length).toBeGreaterThan(1);
    client.dispose();
  });

  it("pages with continuation tokens", async () => {
    const P = { tenantId: "tp", scopeId: "_tenant" };
    for (let i = 0; i < 5; i++) await store.batch(P, [{ kind: "create", doc: doc(P, `p${i}`, { seq: i }) }]);
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await store.queryPage(P, { docType: "thing", maxPageSize: 2, orderBy: { field: "seq", direction: "ASC" }, ...(token ? { continuationToken: token } : {}) });
      seen.push(...page.items.map((i) => i.id));
      token = page.continuationToken;
    } while (token);
    expect(seen).toEqual(["p0", "p1", "p2", "p3", "p4"]);
  });

  it("persists across a restart with the same ETags", async () => {
    const before = (await store.read(A, "x1"))!;
    store.dispose();
    await cosmos.close();
    cosmos = await startEmbeddedCosmos({ dataDir });
    store = await connectCosmos(cfg(), { createIfMissing: true });
    const after = (await store.read(A, "x1"))!;
    expect(after).toEqual(before);
  });

  it("keeps changes that were only journaled when the process died (no clean close)", async () => {
    const crashDir = mkdtempSync(join(tmpdir(), "aigov-crash-"));
    const first = await startEmbeddedCosmos({ dataDir: crashDir });
    const s1 = await connectCosmos({ endpoint: first.endpoint, database: "db", container: "c", localKey: first.key }, { createIfMissing: true });
    await s1.batch(A, [{ kind: "create", doc: doc(A, "kept", { n: 1 }) }, { kind: "create", doc: doc(A, "gone") }]);
    await s1.batch(A, [{ kind: "replace", doc: doc(A, "kept", { n: 2 }) }, { kind: "delete", id: "gone" }]);
    const expected = await s1.read(A, "kept");
    await new Promise((r) => setTimeout(r, 300)); // the journal is flushed within ~100 ms
    s1.dispose(); // and `first` is never closed: as if the process had been killed
    const second = await startEmbeddedCosmos({ dataDir: crashDir });
    const s2 = await connectCosmos({ endpoint: second.endpoint, database: "db", container: "c", localKey: second.key }, { createIfMissing: true });
    expect(await s2.read(A, "kept")).toEqual(expected);
    expect(await s2.read(A, "gone")).toBeUndefined();
    s2.dispose();
    await second.close();
    await first.close();
  });
});
