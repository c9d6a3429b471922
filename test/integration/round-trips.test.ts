import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { RequestKind } from "../../src/adapters/local/embedded-cosmos.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let admin: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t1", "alice", ["TenantAdmin", "Auditor"]);
  // Warm-up: the SDK's metadata caches and this process's audit-chain head for the tenant.
  const warm = await admin.projects.create(projectSpec("warm-up"));
  await admin.projects.get(warm.id);
  await admin.projects.list();
});
afterAll(() => t.stop());

/** Store round trips (by kind, on the wire to the embedded Cosmos server) made by one API call. */
async function roundTrips(call: () => Promise<unknown>): Promise<Partial<Record<RequestKind, number>>> {
  const cosmos = t.app.cosmos!;
  cosmos.resetCounts();
  await call();
  return Object.fromEntries(Object.entries(cosmos.counts()).filter(([, n]) => n > 0));
}

describe("storage round trips per API call", () => {
  it("create = 1 transactional batch (state + name + audit + outbox + chain head)", async () => {
    expect(await roundTrips(() => admin.projects.create(projectSpec("counted")))).toEqual({ batch: 1 });
  });

  it("get by id = 1 point read", async () => {
    const p = await admin.projects.create(projectSpec("counted get"));
    expect(await roundTrips(() => admin.projects.get(p.id))).toEqual({ read: 1 });
  });

  it("list page = 1 single-partition query (plus the SDK's own query-plan lookup, which it does not wait for)", async () => {
    expect(await roundTrips(() => admin.projects.list({ maxPageSize: 5 }))).toEqual({ query: 1, queryPlan: 1 });
  });

  it("update = 1 point read (current state, for the audit digest) + 1 batch; delete also marks the project in both partitions that hold its children (2 batches), asks each pillar for the project's dependents (models: 1 query; tools: its servers and toolboxes; agents: its agents and the connections that sync into it) and the keys for theirs (1 query), and leaves its tombstone (1 batch)", async () => {
    const p = await admin.projects.create(projectSpec("counted update"));
    let etag = p.etag;
    expect(await roundTrips(async () => (etag = (await admin.projects.update(p.id, { description: "x" }, etag)).etag))).toEqual({ read: 1, batch: 1 });
    expect(await roundTrips(() => admin.projects.delete(p.id, etag))).toEqual({ read: 1, query: 6, queryPlan: 6, batch: 4 });
  });

  it("a refused request (bad input, no token, wrong role) costs no store round trip", async () => {
    const reader = await t.as("t1", "rita", ["Reader"]);
    expect(await roundTrips(() => admin.projects.create({ name: "" } as never).catch(() => undefined))).toEqual({});
    expect(await roundTrips(() => t.anonymous.projects.list().catch(() => undefined))).toEqual({});
    expect(await roundTrips(() => reader.projects.create(projectSpec("no")).catch(() => undefined))).toEqual({});
  });
});
