/**
 * A rollback compiles the tenant's services as they are now (ADR 006): an endpoint replaced since is the one
 * the gateway calls, and a revision that switches on content safety or the semantic cache whose service has
 * been removed since is refused (409 `revision_needs_service`) — before, every project it reached was
 * isolated (kept as the gateway held it) and the "rollback" answered as if it had been done, restoring
 * nothing. So is one whose content safety, under the tenant's regions as they are now (held through the
 * rollback), would be screened by a service outside them: before, the rollback published it and every
 * prompt went to that region. Checked through the API and by requests through the local gateway.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { ApiError } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { errorOf } from "../support/errors.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-rollback-services");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());

const SAFETY = "https://safety.cognitiveservices.azure.com";
const SAFETY2 = "https://safety-two.cognitiveservices.azure.com";
const newestPublished = async () => (await g.admin.policy.revisions()).items.find((r) => r.status === "published")!;
const unsafe = (projectId: string, key: string, model: string) =>
  g.call(projectId, "/v1/chat/completions", { key, body: { model, max_tokens: 8, messages: [{ role: "user", content: "text unsafe:Violence:6" }] } });
async function setTenant(settings: Record<string, unknown>, services: Record<string, unknown>) {
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings, services } as never, s.etag);
}
const contentSafetyBackendUrl = () => {
  const file = join(g.t.app.dataDir, "apim", "backends", `${g.names.contentSafety}.json`);
  return (JSON.parse(readFileSync(file, "utf8")) as { properties: { url: string } }).properties.url;
};

describe("rollback and the tenant's services", () => {
  it("content safety on in the target's tenant settings, its service removed since: refused, nothing changes; with a service again (another endpoint), restored and calling that one", async () => {
    const p = await g.project("cs-tenant");
    await g.model(p.id, "cs-model");
    await setTenant({ contentSafety: { categories: { Violence: 4 } } }, { contentSafety: { url: SAFETY } });
    await g.publish("content safety on");
    const target = await newestPublished();
    const k = (await g.key(dev, p.id, { name: "caller", scopes: {} })).key;
    expect((await unsafe(p.id, k, "cs-model")).status).toBe(403);

    await setTenant({}, {});
    await g.publish("content safety off, its service removed");
    expect((await unsafe(p.id, k, "cs-model")).status).toBe(200);
    const revisionsBefore = (await g.admin.policy.revisions()).items.map((r) => [r.id, r.status]);

    const err = await errorOf(g.admin.policy.rollback(target.id, { reason: "roll back" }));
    expect(err).toBeInstanceOf(ApiError);
    const problem = (err as ApiError).problem as { status?: number; reason?: string; detail?: string };
    expect([problem.status, problem.reason]).toEqual([409, "revision_needs_service"]);
    expect(problem.detail).toContain("content safety is on in the tenant's settings, and services.contentSafety is not configured");
    // Nothing recorded, nothing sent: the gateway serves what it served.
    expect((await g.admin.policy.revisions()).items.map((r) => [r.id, r.status])).toEqual(revisionsBefore);
    await g.settle();
    expect((await unsafe(p.id, k, "cs-model")).status).toBe(200);

    // The service configured again, at another endpoint (content safety still off): the rollback restores
    // content safety, and the gateway screens with the endpoint the tenant has now.
    await setTenant({}, { contentSafety: { url: SAFETY2 } });
    const r = await g.admin.policy.rollback(target.id, { reason: "roll back" });
    expect(r.revision).toBeDefined();
    const done = await until(async () => {
      const rev = await g.admin.policy.revision(r.revision!.id);
      return rev.status === "pending" ? undefined : rev;
    }, "rollback ends");
    expect(done.status).toBe("published");
    expect(r.isolated ?? []).toEqual([]);
    await g.settle();
    expect(contentSafetyBackendUrl().startsWith(SAFETY2)).toBe(true);
    const blocked = await unsafe(p.id, k, "cs-model");
    expect([blocked.status, blocked.text]).toEqual([403, expect.stringContaining("blocked by content safety")]);

    await setTenant({}, {});
    await g.publish("tidy: content safety off");
  });

  it("content safety on in a project of the target, its service removed since: refused, naming the project", async () => {
    await setTenant({}, { contentSafety: { url: SAFETY } });
    const p = await g.project("cs-project");
    await g.model(p.id, "cs-model-2");
    const cur = await g.admin.projects.get(p.id);
    await g.admin.projects.update(p.id, { settings: { contentSafety: { categories: { Violence: 4 } } } } as never, cur.etag);
    await g.publish("project content safety on");
    const target = await newestPublished();
    const k = (await g.key(dev, p.id, { name: "caller", scopes: {} })).key;
    expect((await unsafe(p.id, k, "cs-model-2")).status).toBe(403);

    const now = await g.admin.projects.get(p.id);
    await g.admin.projects.update(p.id, { settings: {} } as never, now.etag);
    await setTenant({}, {});
    await g.publish("project content safety off, service removed");
    expect((await unsafe(p.id, k, "cs-model-2")).status).toBe(200);

    const err = await errorOf(g.admin.policy.rollback(target.id, { reason: "roll back" }));
    const problem = (err as ApiError).problem as { status?: number; reason?: string; detail?: string };
    expect([problem.status, problem.reason]).toEqual([409, "revision_needs_service"]);
    expect(problem.detail).toContain("content safety is on in project cs-project, and services.contentSafety is not configured");
    await g.settle();
    expect((await unsafe(p.id, k, "cs-model-2")).status).toBe(200);
  });

  it("content safety on in the target, switched off since and the tenant's regions narrowed to exclude the service's region: refused, no prompt is screened outside the allowed regions", async () => {
    const p = await g.project("cs-region");
    await g.model(p.id, "cs-model-3"); // served from eastus
    const service = { contentSafety: { url: SAFETY, region: "westeurope" } };
    await setTenant({ contentSafety: { categories: { Violence: 4 } }, regions: { allowed: ["eastus", "westeurope"] } }, service);
    await g.publish("content safety on, screened in westeurope");
    const target = await newestPublished();
    const k = (await g.key(dev, p.id, { name: "caller", scopes: {} })).key;
    expect((await unsafe(p.id, k, "cs-model-3")).status).toBe(403);

    // Content safety off; then prompts may stay in eastus only (a write the region guard accepts: nothing screens).
    await setTenant({ regions: { allowed: ["eastus", "westeurope"] } }, service);
    await setTenant({ regions: { allowed: ["eastus"] } }, service);
    await g.publish("eastus only, content safety off");
    expect((await unsafe(p.id, k, "cs-model-3")).status).toBe(200);

    // Restored as is, content safety (the target's) would screen every prompt in westeurope, which the
    // tenant's regions (the live floor, held through the rollback) exclude: the state a settings write refuses.
    const err = await errorOf(g.admin.policy.rollback(target.id, { reason: "roll back" }));
    const problem = (err as ApiError).problem as { status?: number; reason?: string; detail?: string };
    expect([problem.status, problem.reason]).toEqual([409, "revision_needs_service"]);
    expect(problem.detail).toContain("excludes westeurope");
    await g.settle();
    expect((await unsafe(p.id, k, "cs-model-3")).status).toBe(200);

    await setTenant({}, {});
    await g.publish("tidy");
  });
});
