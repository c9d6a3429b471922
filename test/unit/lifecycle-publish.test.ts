// A sandbox's lock and its extension change what the gateway accepts (keys shared into it), so each asks
// for a system publish; a request that failed is asked for again. The lifecycle on the real store
// (embedded Cosmos), with a publish port that fails on demand and records what it was asked.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import type { Approval } from "../../src/domain/approvals/schema.js";
import type { ApprovalService } from "../../src/domain/approvals/service.js";
import { ChangeWriter } from "../../src/domain/changes.js";
import type { RequestContext } from "../../src/domain/common.js";
import { ProjectLifecycle } from "../../src/domain/projects/lifecycle.js";
import { ProjectService } from "../../src/domain/projects/service.js";

const TENANT = "t-lifecycle-publish";
const DAY = 86_400_000;
let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let projects: ProjectService;
let lifecycle: ProjectLifecycle;
let now = Date.parse("2026-06-01T12:00:00.000Z");
const clock = { now: () => new Date(now) };
/** The publishes asked for, by reason; while `failing`, asking fails. */
const asked: string[] = [];
let failing = false;
const settleHandlers = new Map<string, (a: Approval, c: string) => Promise<void>>();
const admin: RequestContext = { principal: { tenantId: TENANT, userId: "carol", roles: new Set(["TenantAdmin"]) }, correlationId: "test" };
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-lifecycle-publish-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const changes = new ChangeWriter(store, clock);
  projects = new ProjectService(store, changes, clock);
  let n = 0;
  const approvals = {
    onSettled: (type: string, handler: (a: Approval, c: string) => Promise<void>) => void settleHandlers.set(type, handler),
    requestFor: async <T>(_c: RequestContext, _i: unknown, record: (a: Approval) => Promise<T>) => {
      const approval = { id: `apr_${(++n).toString().padStart(20, "0")}`, tenantId: TENANT } as Approval;
      return { approval, recorded: await record(approval) };
    },
    withdraw: async () => true,
  } as unknown as ApprovalService;
  lifecycle = new ProjectLifecycle({
    store,
    changes,
    clock,
    notifier: { deliver: async () => undefined },
    approvals,
    projects,
    requestPublish: async (_tenantId, cause) => {
      if (failing) throw new Error("the store did not answer");
      asked.push(cause.reason);
    },
    gates: { tenantSettings: async () => ({}), exemptionsInForce: async () => [], liveKeys: async () => [], lastReviewCompletedAt: async () => undefined, models: async () => [] },
    keys: { liveKeyIds: async () => [], setActiveBySystem: async () => false, lockSuspendedIds: async () => [] },
  });
}, 120_000);
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

describe("the publishes a lock and an extension ask for", () => {
  it("a lock whose publish failed is published by a later run (for a day); an extension settled again after its publish failed asks again", async () => {
    const p = await projects.create(admin, { name: "sandbox", environment: "sandbox", reviewDate: day(now + 2 * DAY), owner: "carol" });
    now += 2 * DAY;
    failing = true;
    await lifecycle.sweep("run-1"); // locks it; its publish fails
    failing = false;
    expect((await projects.get(admin, p.id)).lock).toMatchObject({ reason: "sandboxExpired" });
    expect(asked).toEqual([]);
    now += 3_600_000;
    await lifecycle.sweep("run-2");
    expect(asked).toEqual([`sandbox ${p.id} locked`]);
    now += DAY;
    await lifecycle.sweep("run-3"); // a day on: nothing more
    expect(asked).toEqual([`sandbox ${p.id} locked`]);

    const reviewDate = day(now + 30 * DAY);
    const extension = await lifecycle.extend(admin, p.id, { reviewDate, justification: "another month" });
    const approval = { id: extension.extension!.approvalId, tenantId: TENANT, status: "approved", subject: { resourceType: "sandboxExtension", resourceId: p.id, change: { reviewDate, locked: true } } } as unknown as Approval;
    failing = true;
    await expect(settleHandlers.get("sandboxExtension")!(approval, "settle-1")).rejects.toThrow(/did not answer/);
    failing = false;
    expect((await projects.get(admin, p.id)).lock).toBeUndefined();
    await settleHandlers.get("sandboxExtension")!(approval, "settle-2");
    expect(asked).toEqual([`sandbox ${p.id} locked`, `sandbox ${p.id} extended: unlocked`]);
  });
});
