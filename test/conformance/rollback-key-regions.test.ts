/**
 * Conformance: a rollback and a key tier's own content safety (a key's `limits.contentSafety`, ADR 024). Keys are
 * live inputs of a rollback: their tiers screen prompts whatever the restored revision's settings say, so a
 * rollback that brings back a region rule excluding the content-safety service's region (a project's or a
 * model's rule, dropped since and a content-safety key created meanwhile) would send that key's prompts to
 * the service outside the regions the restored rule allows — the state every settings and key write refuses.
 * The rollback refuses it (409 `revision_needs_service`, naming the key) and the gateway keeps serving what it
 * served. The reverse (a key tier whose service is gone) cannot be met: the service cannot be removed while a
 * key screens with it. Checked through the local gateway: the service's host records every prompt it screens.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { errorOf, reasonOf } from "../support/errors.js";

const CS_HOST = "cs-rb-eastus.cognitiveservices.azure.com";
const CONTENT_SAFETY = { url: `https://${CS_HOST}`, region: "eastus" };

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-rollback-key-regions");
  dev = await g.as("dora", ["Developer"]);
  await g.putServices({ contentSafety: CONTENT_SAFETY });
});
afterAll(() => g.stop());

const newestPublished = async () => (await g.admin.policy.revisions()).items.find((r) => r.status === "published")!;
const screened = () => g.t.backends.requests(CS_HOST).length;
const problemOf = (e: Error) => (e as ApiError).problem as { status?: number; reason?: string; detail?: string };

describe("conformance: a rollback and a key tier's content safety under region rules", () => {
  it("a rollback restoring a project's region rule that excludes the service of a content-safety key created since is refused; the key's prompts stay where they were allowed", async () => {
    const p = await g.project("rb-key-eu", { settings: { regions: { allowed: ["westeurope"] } } });
    await g.model(p.id, "rb-eu-model", { backend: { region: "westeurope" } });
    await g.publish("westeurope only");
    const target = await newestPublished();

    // The rule dropped; then a key whose tier screens (in eastus, which nothing forbids now).
    const cur = await g.admin.projects.get(p.id);
    await g.admin.projects.update(p.id, { settings: {} }, cur.etag);
    await g.publish("no region rule");
    const k = await g.key(dev, p.id, { name: "guarded", limits: { contentSafety: "medium" } });
    let before = screened();
    expect((await g.chat(p.id, k.key, "rb-eu-model")).status).toBe(200);
    expect(screened()).toBeGreaterThan(before);
    const revisionsBefore = (await g.admin.policy.revisions()).items.map((r) => [r.id, r.status]);

    // Restored, the rule (westeurope only) would hold while the key's tier screens every prompt in eastus.
    const err = await errorOf(g.admin.policy.rollback(target.id, { reason: "roll back the rule" }));
    expect(err).toBeInstanceOf(ApiError);
    const problem = problemOf(err);
    expect([problem.status, problem.reason]).toEqual([409, "revision_needs_service"]);
    expect(problem.detail).toContain(k.id);
    expect(problem.detail).toContain("excludes eastus");
    // Nothing recorded, nothing sent: the gateway serves what it served.
    expect((await g.admin.policy.revisions()).items.map((r) => [r.id, r.status])).toEqual(revisionsBefore);
    await g.settle();
    before = screened();
    expect((await g.chat(p.id, k.key, "rb-eu-model")).status).toBe(200);
    expect(screened()).toBeGreaterThan(before);

    // Without the key, the same rollback is what it was: restored, and nothing screens the prompts.
    await g.admin.keys.revoke(p.id, k.id, { reason: "done" } as never, (await g.admin.keys.get(p.id, k.id)).etag);
    const plain = (await g.key(dev, p.id, { name: "plain" })).key;
    const r = await g.admin.policy.rollback(target.id, { reason: "roll back the rule" });
    expect(r.revision).toBeDefined();
    await g.settle();
    expect((await g.admin.policy.revision(r.revision!.id)).status).toBe("published");
    expect(r.isolated ?? []).toEqual([]);
    before = screened();
    expect((await g.chat(p.id, plain, "rb-eu-model")).status).toBe(200);
    expect(screened()).toBe(before);
  });

  it("a rollback restoring a model's region rule is held on a content-safety key shared into the project", async () => {
    const from = await g.project("rb-key-home");
    await g.model(from.id, "rb-home-model");
    const into = await g.project("rb-key-there");
    await g.model(into.id, "rb-there-model", { backend: { region: "westeurope" }, extra: { settings: { regions: { allowed: ["westeurope"] } } } });
    await g.publish("model rule in westeurope");
    const target = await newestPublished();

    const model = (await g.admin.models.list(into.id)).items.find((m) => m.name === "rb-there-model")!;
    const m = await g.admin.models.get(into.id, model.id);
    await g.admin.models.update(into.id, model.id, { settings: null } as never, m.etag);
    await g.publish("model rule dropped");
    const k = await g.key(dev, from.id, { name: "shared-guarded", limits: { contentSafety: "low" } });
    await g.shareAndApprove(dev, from.id, k.id, into.id);
    await g.synced(from.id, k.id);
    const before = screened();
    expect((await g.chat(into.id, k.key, "rb-there-model")).status).toBe(200);
    expect(screened()).toBeGreaterThan(before);

    const err = await errorOf(g.admin.policy.rollback(target.id, { reason: "roll back the model rule" }));
    const problem = problemOf(err);
    expect([problem.status, problem.reason]).toEqual([409, "revision_needs_service"]);
    expect(problem.detail).toContain(`key ${k.id} of project ${from.id} (shared) on model rb-there-model`);
  });

  it("the reverse: the content-safety service cannot be removed while a key's tier screens with it, so no rollback meets a key tier without its service", async () => {
    const p = await g.project("rb-key-service");
    await g.model(p.id, "rb-service-model");
    await g.publish("before the key");
    const target = await newestPublished();
    const k = await g.key(dev, p.id, { name: "needs-service", limits: { contentSafety: "high" } });
    expect(await reasonOf(g.putServices({}))).toMatch(/^400 /);
    expect(((await g.admin.settings.get()).services as { contentSafety?: unknown }).contentSafety).toEqual(CONTENT_SAFETY);
    // A rollback to before the key keeps the key (a live input) and its tier's screening.
    const r = await g.admin.policy.rollback(target.id, { reason: "before the key" });
    expect(r.revision).toBeDefined();
    await g.settle();
    const before = screened();
    expect((await g.chat(p.id, k.key, "rb-service-model")).status).toBe(200);
    expect(screened()).toBeGreaterThan(before);
  });
});
