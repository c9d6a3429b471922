/**
 * A project delete's marks (src/domain/projects/deletion-marks.ts) against the embedded Cosmos server:
 * created, never overwritten, so two deletes never both hold them; a tombstone is never undone; a mark a
 * dead delete left lapses and is taken over. (The review of stop 41 found the first version's upserts let a
 * losing delete remove the mark the winner relied on, and a stale delete overwrite a tombstone.)
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { ChangeWriter } from "../../src/domain/changes.js";
import type { RequestContext } from "../../src/domain/common.js";
import { DELETE_MARK_MS, type ProjectDeletionDoc } from "../../src/domain/projects/deletion-marks.js";
import { ProjectService } from "../../src/domain/projects/service.js";
import type { Store } from "../../src/ports/store.js";

const T = "t-marks";
const admin: RequestContext = { principal: { tenantId: T, userId: "carol", roles: new Set(["TenantAdmin"]) }, correlationId: "test" };
let cosmos: EmbeddedCosmos;
let store: Store;
let now = Date.parse("2026-12-07T12:00:00Z");
const clock = { now: () => new Date(now) };

beforeAll(async () => {
  cosmos = await startEmbeddedCosmos({ dataDir: mkdtempSync(join(tmpdir(), "aigov-marks-")) });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
});
afterAll(() => cosmos?.close());

const gate = () => {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
};
const outcome = (p: Promise<void>) => p.then(() => "deleted", (e: { error?: { kind: string } }) => e.error?.kind ?? String(e));
const mark = async (scopeId: string, projectId: string) => store.read<ProjectDeletionDoc>({ tenantId: T, scopeId }, `deleting.${projectId}`);

describe("a project delete's marks", () => {
  it("a second delete while the first counts is refused (503) and leaves the first's marks; the first deletes and leaves a tombstone", async () => {
    const projects = new ProjectService(store, new ChangeWriter(store, clock), clock);
    const p = await projects.create(admin, { name: "raced", environment: "dev", owner: "carol" });
    const counting = gate();
    const release = gate();
    let counted = 0;
    projects.countDependentsWith("children", async () => {
      if (++counted === 1) {
        counting.open();
        await release.p;
      }
      return 0;
    });
    const first = outcome(projects.delete(admin, p.id, p.etag));
    await counting.p;
    expect(await outcome(projects.delete(admin, p.id, p.etag))).toBe("unavailable");
    // The first delete's marks stand in both partitions while it goes on: a child written now withdraws.
    expect([await mark("_tenant", p.id), await mark(p.id, p.id)].map((m) => m?.since)).toEqual([new Date(now).toISOString(), new Date(now).toISOString()]);
    release.open();
    expect(await first).toBe("deleted");
    expect(await mark("_tenant", p.id)).toBeUndefined();
    expect((await mark(p.id, p.id))?.deletedAt).toEqual(expect.any(String));
  });

  it("a stale delete of a project already gone never undoes its tombstone", async () => {
    const projects = new ProjectService(store, new ChangeWriter(store, clock), clock);
    const p = await projects.create(admin, { name: "gone", environment: "dev", owner: "carol" });
    await projects.delete(admin, p.id, p.etag);
    const tombstone = await mark(p.id, p.id);
    // A delete that read the project before it went (the project document put back, as a lagging read sees it).
    const { etag: _e, ...fields } = p;
    await store.batch({ tenantId: T, scopeId: "_tenant" }, [{ kind: "create", doc: { ...fields, tenantId: T, scopeId: "_tenant", docType: "project" } }]);
    expect(await outcome(projects.delete(admin, p.id, (await projects.get(admin, p.id)).etag))).toBe("notFound");
    expect(await mark(p.id, p.id)).toEqual(tombstone);
  });

  it("a mark a dead delete left lapses: creates go ahead, and the next delete takes it over", async () => {
    const projects = new ProjectService(store, new ChangeWriter(store, clock), clock);
    const p = await projects.create(admin, { name: "left behind", environment: "dev", owner: "carol" });
    const left = { id: `deleting.${p.id}`, docType: "projectDeletion", since: new Date(now).toISOString() };
    await store.batch({ tenantId: T, scopeId: p.id }, [{ kind: "create", doc: { ...left, tenantId: T, scopeId: p.id } }]);
    expect(await projects.stands(T, p.id)).toBe(false);
    expect(await outcome(projects.delete(admin, p.id, p.etag))).toBe("unavailable"); // not lapsed yet: another delete may be counting
    now += DELETE_MARK_MS;
    expect(await projects.stands(T, p.id)).toBe(true);
    expect(await outcome(projects.delete(admin, p.id, p.etag))).toBe("deleted");
    expect((await mark(p.id, p.id))?.deletedAt).toEqual(expect.any(String));
  });
});
