/**
 * Where the gateway may send a model's prompts (src/pillars/models/service.ts, checkBackendAddresses): in a
 * deployed control plane a backend URL naming a loopback, link-local (cloud metadata), reserved or
 * platform address, or a localhost name, is a 400 with the field; private networks stay allowed. Locally
 * (the fake backends) loopback and *.localhost are backends too. Nothing is stored for a refused create.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { ChangeWriter } from "../../src/domain/changes.js";
import type { RequestContext } from "../../src/domain/common.js";
import { AppError } from "../../src/domain/errors.js";
import { ProjectService } from "../../src/domain/projects/service.js";
import { ModelService } from "../../src/pillars/models/service.js";
import type { ModelSpecInput } from "../../src/pillars/models/schema.js";

let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let azure: ModelService;
let local: ModelService;
let projectId: string;
const admin: RequestContext = { principal: { tenantId: "t-backends", userId: "alice", roles: new Set(["TenantAdmin"]) }, correlationId: "test" };

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-backends-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const clock = { now: () => new Date() };
  const changes = new ChangeWriter(store, clock);
  const projects = new ProjectService(store, changes, clock);
  const secrets = new EncryptedFileSecretStore(join(dir, "secrets"));
  const grants = () => ({ identities: [], sharedHosts: [] });
  azure = new ModelService(store, changes, clock, secrets, projects, undefined, grants, false);
  local = new ModelService(store, changes, clock, secrets, projects, undefined, grants, true);
  projectId = (await projects.create(admin, { name: "backends", environment: "dev", owner: "olga" })).id;
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

const spec = (name: string, url: string): ModelSpecInput => ({
  name,
  provider: "openai",
  modelName: "gpt-4o",
  backends: [{ id: "b1", url, region: "eastus", credential: { type: "apiKey", header: "Authorization", key: "sk-test-0123456789" } }],
});
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => "created",
    (err: unknown) => (err instanceof AppError && err.error.kind === "validation" ? `${err.error.reason} ${err.error.errors?.map((e) => e.field).join(",")}` : String(err)),
  );

describe("model backend addresses", () => {
  it("a deployed control plane refuses backends the gateway must not call, with the field; private networks are allowed", async () => {
    const refused = ["https://169.254.169.254/v1", "https://127.0.0.1/v1", "https://2130706433/v1", "https://0.0.0.0/v1", "https://168.63.129.16/v1", "https://localhost/v1", "https://models.localhost./v1"];
    for (const [i, url] of refused.entries()) expect(await refusal(azure.create(admin, projectId, spec(`refused-${i}`, url))), url).toBe("backend_address_refused body.backends.0.url");
    expect((await azure.list(admin, projectId, { maxPageSize: 50 })).items).toEqual([]);
    for (const [i, url] of ["https://10.1.2.3/v1", "https://192.168.4.5/v1", "https://api.openai.com/v1"].entries()) expect(await refusal(azure.create(admin, projectId, spec(`allowed-${i}`, url))), url).toBe("created");
  });

  it("an update to a refused address is refused too; locally the fake backends' loopback names are allowed", async () => {
    const m = await azure.create(admin, projectId, spec("moving", "https://api.openai.com/v1"));
    const patch = { backends: [{ id: "b1", url: "https://169.254.169.254/v1", region: "eastus", priority: 1, weight: 1, credential: { type: "apiKey" as const, header: "Authorization" as const, keep: true as const } }] };
    expect(await refusal(azure.update(admin, projectId, m.id, patch, m.etag))).toBe("backend_address_refused body.backends.0.url");
    expect((await azure.get(admin, projectId, m.id)).backends[0]!.url).toBe("https://api.openai.com/v1");
    expect(await refusal(local.create(admin, projectId, spec("fake", "https://gpt-4o.mock.localhost/v1")))).toBe("created");
    expect(await refusal(local.create(admin, projectId, spec("metadata", "https://169.254.169.254/v1")))).toBe("backend_address_refused body.backends.0.url");
  });
});
