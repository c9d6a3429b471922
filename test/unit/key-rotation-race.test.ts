// A rotation that loses the race for its key (ETag) must not leave the secret it created behind as an
// enabled version nobody references. The key service on the real store (embedded Cosmos) and the local
// encrypted secret store; the gateway side is a stub that never holds the key's product (no publishing).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import type { ApprovalService } from "../../src/domain/approvals/service.js";
import { ChangeWriter } from "../../src/domain/changes.js";
import type { RequestContext } from "../../src/domain/common.js";
import { AppError } from "../../src/domain/errors.js";
import { KeyDocuments } from "../../src/domain/keys/documents.js";
import { KeySecrets } from "../../src/domain/keys/secrets.js";
import { KeyService, type KeyDoc } from "../../src/domain/keys/service.js";
import { ModelService } from "../../src/pillars/models/service.js";
import { ProjectService } from "../../src/domain/projects/service.js";
import { gatewayNames } from "../../src/policy/names.js";
import type { SecretStore } from "../../src/ports/secrets.js";

const TENANT = "t-race";
let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let secrets: EncryptedFileSecretStore;
let keys: KeyService;
let projectId: string;
/** Runs once, right after the next secret write (inside the rotation, before it is recorded). */
let afterNextSet: (() => Promise<void>) | undefined;
/** Runs once, right after the next secret read (inside a collection, before it is recorded). */
let afterNextGet: (() => Promise<void>) | undefined;

const admin: RequestContext = { principal: { tenantId: TENANT, userId: "carol", roles: new Set(["TenantAdmin"]) }, correlationId: "test" };
const secretName = (keyId: string, slot: string) => `vkey-${keyId.replace("_", "-")}-${slot}`;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-keyrace-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const changes = new ChangeWriter(store, { now: () => new Date() });
  const clock = { now: () => new Date() };
  const projects = new ProjectService(store, changes, clock);
  secrets = new EncryptedFileSecretStore(join(dir, "secrets"));
  const racing: SecretStore = {
    get: async (n, v) => {
      const got = await secrets.get(n, v);
      const hook = afterNextGet;
      afterNextGet = undefined;
      if (hook) await hook();
      return got;
    },
    listVersions: (n) => secrets.listVersions(n),
    disableVersion: (n, v) => secrets.disableVersion(n, v),
    delete: (n) => secrets.delete(n),
    set: async (n, v, o) => {
      const made = await secrets.set(n, v, o);
      const hook = afterNextSet;
      afterNextSet = undefined;
      if (hook) await hook();
      return made;
    },
  };
  const models = new ModelService(store, changes, clock, racing, projects);
  const approvals = { onSettled: () => undefined } as unknown as ApprovalService;
  keys = new KeyService({
    clock,
    documents: new KeyDocuments(store, changes),
    secrets: new KeySecrets(store, racing),
    projects,
    models,
    approvals,
    gateway: {
      publisher: async () => {
        throw new Error("no gateway in this test");
      },
      names: (tenantId) => gatewayNames(tenantId),
      formerSubscriptions: async () => [],
      holds: async () => false,
      ensurePublished: async () => ({}),
      exemptionTier: async () => undefined,
    },
  });
  projectId = (await projects.create(admin, { name: "race", environment: "dev", owner: "carol" })).id;
});
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

describe("a rotation that loses the ETag race", () => {
  it("disables the secret version it created: the only enabled versions are the ones the key references", async () => {
    const key = await keys.create(admin, projectId, { name: "raced" });
    let winner: string | undefined;
    // Another rotation of the same key lands between this one's secret write and its conditional write.
    afterNextSet = async () => {
      winner = (await keys.rotate(admin, projectId, key.id, { overlap: "PT1H" })).rotationId;
    };
    const lost = await keys.rotate(admin, projectId, key.id, { overlap: "PT1H" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(lost).toBeInstanceOf(AppError);
    expect((lost as AppError).error.kind).toBe("preconditionFailed");
    expect(winner).toBeDefined();

    const doc = (await store.read<KeyDoc>({ tenantId: TENANT, scopeId: projectId }, key.id))!;
    expect(doc.rotation?.id).toBe(winner);
    expect(doc.slots.secondary.kind).toBe("secret");
    const versions = await secrets.listVersions(secretName(key.id, "secondary"));
    expect(versions).toHaveLength(2); // the winner's and the loser's
    expect(versions.filter((v) => v.enabled).map((v) => v.version)).toEqual([doc.slots.secondary.version]);
    // Every enabled secret version of the key is one its slots reference.
    const referenced = (["primary", "secondary"] as const).flatMap((s) => (doc.slots[s].kind === "secret" ? [`${s}/${doc.slots[s].version}`] : []));
    const enabled = (await Promise.all((["primary", "secondary"] as const).map(async (s) => (await secrets.listVersions(secretName(key.id, s))).filter((v) => v.enabled).map((v) => `${s}/${v.version}`)))).flat();
    expect(enabled.sort()).toEqual(referenced.sort());
  });
});

describe("key state conflicts say which (reason)", () => {
  const refusal = (p: Promise<unknown>) => p.then(() => "accepted", (e: unknown) => (e instanceof AppError && e.error.kind === "conflict" ? e.error.reason : String(e)));

  it("rotation in progress, not active, not suspended, revoked", async () => {
    const key = await keys.create(admin, projectId, { name: "states" });
    await keys.rotate(admin, projectId, key.id, { overlap: "PT1H" });
    expect(await refusal(keys.rotate(admin, projectId, key.id, { overlap: "PT1H" }))).toBe("rotation_in_progress");
    expect(await refusal(keys.resume(admin, projectId, key.id, { reason: "it is not suspended" }))).toBe("key_not_suspended");
    await keys.suspend(admin, projectId, key.id, { reason: "investigating" });
    expect(await refusal(keys.suspend(admin, projectId, key.id, { reason: "again" }))).toBe("key_not_active");
    expect(await refusal(keys.rotate(admin, projectId, key.id, { overlap: "PT1H" }))).toBe("key_not_active");
    await keys.revoke(admin, projectId, key.id, { reason: "leaked" });
    expect(await refusal(keys.revoke(admin, projectId, key.id, { reason: "again" }))).toBe("key_revoked");
    expect(await refusal(keys.resume(admin, projectId, key.id, { reason: "no" }))).toBe("key_not_suspended");
  });
});

describe("collecting a rotated secret while the system changes the key", () => {
  it("reads the key again and hands the secret over once, instead of refusing", async () => {
    const key = await keys.create(admin, projectId, { name: "collect-race" });
    await keys.rotate(admin, projectId, key.id, { overlap: "PT1H" });
    const partition = { tenantId: TENANT, scopeId: projectId };
    const rotated = (await store.read<KeyDoc>(partition, key.id))!;
    expect(rotated.slots.secondary.kind).toBe("secret");
    const version = (rotated.slots.secondary as { version: string }).version;
    // A scheduled rotation leaves its secret waiting for the owner (carol created the key).
    const { _etag, ...waiting } = rotated as KeyDoc & { _etag?: string };
    expect((await store.batch(partition, [{ kind: "replace", doc: { ...waiting, pickup: { slot: "secondary", version } }, ifMatch: _etag }])).ok).toBe(true);
    // The gateway's bookkeeping writes the key between the collection's read and its write.
    let raced = 0;
    afterNextGet = async () => {
      const current = (await store.read<KeyDoc>(partition, key.id))!;
      const { _etag: etag, ...doc } = current as KeyDoc & { _etag?: string };
      const r = await store.batch(partition, [{ kind: "replace", doc: { ...doc, updatedAt: new Date().toISOString() }, ifMatch: etag }]);
      if (r.ok) raced += 1;
    };
    const collected = await keys.pickup(admin, projectId, key.id);
    expect(raced).toBe(1);
    expect(collected.key).toBe(await secrets.get(secretName(key.id, "secondary"), version).then((s) => s?.value));
    expect(collected.awaitingCollection).toBe(false);
    const after = (await store.read<KeyDoc>(partition, key.id))!;
    expect(after.pickup).toBeUndefined();
    // Once: a second collection finds nothing waiting.
    const again = await keys.pickup(admin, projectId, key.id).then(
      () => "accepted",
      (e: unknown) => (e instanceof AppError && e.error.kind === "conflict" ? e.error.reason : String(e)),
    );
    expect(again).toBe("rotated_secret_not_waiting");
  });
});
