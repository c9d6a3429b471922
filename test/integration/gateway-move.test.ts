/**
 * A tenant an operator moves to another gateway instance (GATEWAY_ASSIGNMENTS, between two runs of the app
 * on one data dir): the next publish drains the old instance — every artifact and every key's
 * subscription — and sends everything to the new one, and the keys follow. Before, the old instance kept
 * serving the tenant, keys and all, and a revocation never reached it.
 */
import { mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AigovClient } from "../../src/client/index.js";
import { gatewayNames } from "../../src/policy/names.js";
import { ensureBuilt, startChildApp, stopChildApp, type ChildApp } from "../support/child-app.js";
import { until } from "../support/until.js";

const TENANT = "t-move";
const names = gatewayNames(TENANT);
const dataDir = mkdtempSync(join(tmpdir(), "aigov-move-"));
// Two instances in both runs; the jobs every 2 s, so keys and publishes settle without waiting a minute.
const BASE = { GATEWAY_INSTANCES: JSON.stringify({ iso: {} }), KEY_LIFECYCLE_SCHEDULE: "*/2 * * * * *", GATEWAY_PUBLISH_SWEEP_SCHEDULE: "*/2 * * * * *" };
let app: ChildApp | undefined;

const gatewayOf = (a: ChildApp, instance: "default" | "iso") => new RegExp(`gateway${instance === "default" ? "" : ` \\(${instance}\\)`}: (http://127\\.0\\.0\\.1:\\d+)`).exec(a.output())![1]!;
/** Files of the tenant's artifacts (and subscriptions) an instance's folder holds. */
function tenantFiles(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries) {
      const full = join(dir, e);
      if (statSync(full).isDirectory()) walk(full);
      else if (e.includes(names.prefix)) out.push(full.slice(folder.length));
    }
  };
  walk(folder);
  return out;
}

async function admin(a: ChildApp): Promise<AigovClient> {
  const anonymous = new AigovClient({ endpoint: a.url });
  return anonymous.withToken(await anonymous.dev.token({ tenant: TENANT, user: "alice", roles: ["TenantAdmin"] }));
}

async function published(client: AigovClient, reason: string): Promise<void> {
  const r = await client.policy.publish({ reason });
  expect(r.revision, `${reason}: a revision`).toBeDefined();
  await until(async () => ((await client.policy.revision(r.revision!.id)).status === "published" ? true : undefined), `${reason} published`, 30_000);
}

const chat = (gateway: string, projectId: string, key: string) =>
  fetch(`${gateway}/${names.apiPath(projectId)}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": key },
    body: JSON.stringify({ model: "gpt-4o-mini", max_tokens: 4, messages: [{ role: "user", content: "hello" }] }),
  }).then((r) => r.status);

beforeAll(() => ensureBuilt());
afterAll(async () => {
  if (app) await stopChildApp(app.child);
});

describe("moving a tenant to another gateway instance", () => {
  it("drains the old instance, serves from the new one, and a revocation reaches it", async () => {
    app = await startChildApp(dataDir, "node", BASE);
    let a = await admin(app);
    const project = await a.projects.create({ name: "moving", environment: "dev", owner: "alice" });
    await a.models.create(project.id, { name: "gpt-4o-mini", provider: "openai", modelName: "gpt-4o-mini", backends: [{ id: "b0", url: "https://mover.mock.localhost/v1", region: "eastus", credential: { type: "apiKey", header: "api-key", key: "provider-key-mover" } }] });
    await published(a, "on the shared instance");
    const key = await a.keys.create(project.id, { name: "mover" });
    await until(async () => ((await a.keys.get(project.id, key.id)).gateway.state === "synced" ? true : undefined), "key synced", 30_000);
    await expect.poll(() => chat(gatewayOf(app!, "default"), project.id, key.key), { timeout: 15_000 }).toBe(200);
    expect(tenantFiles(join(dataDir, "apim")).some((f) => f.includes("subscriptions"))).toBe(true);

    // The operator assigns the tenant its own instance; the app starts again on the same data.
    await stopChildApp(app.child);
    app = await startChildApp(dataDir, "node", { ...BASE, GATEWAY_ASSIGNMENTS: JSON.stringify({ [TENANT]: { instance: "iso" } }) });
    a = await admin(app);
    // Nothing changed in the registry, yet there is a publish to make: the new instance holds nothing.
    await published(a, "moved");
    expect(tenantFiles(join(dataDir, "apim"))).toEqual([]);
    expect(tenantFiles(join(dataDir, "apim-iso")).length).toBeGreaterThan(0);
    await expect.poll(() => chat(gatewayOf(app!, "iso"), project.id, key.key), { timeout: 20_000 }).toBe(200);
    await expect.poll(() => chat(gatewayOf(app!, "default"), project.id, key.key), { timeout: 15_000 }).not.toBe(200);

    // A revocation is confirmed where the key is now: nowhere does it work any more.
    const revoked = await a.keys.revoke(project.id, key.id, { reason: "leaked" }, (await a.keys.get(project.id, key.id)).etag);
    expect(["revoked", "revocationPending"]).toContain(revoked.status);
    await until(async () => ((await a.keys.get(project.id, key.id)).status === "revoked" ? true : undefined), "revocation confirmed", 30_000);
    await expect.poll(() => chat(gatewayOf(app!, "iso"), project.id, key.key), { timeout: 15_000 }).toBe(401);
    expect(await chat(gatewayOf(app!, "default"), project.id, key.key)).not.toBe(200);
  }, 180_000);
});
