// The key domain's integrity when a write fails half way or a project is locked: the key service on the
// real store (embedded Cosmos, with a seam that fails a chosen batch once) and the local encrypted secret
// store; the gateway is an in-memory subscription table the tests read.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import type { Approval } from "../../src/domain/approvals/schema.js";
import type { ApprovalService } from "../../src/domain/approvals/service.js";
import { ChangeWriter, type AuditDoc, type OutboxDoc } from "../../src/domain/changes.js";
import type { RequestContext } from "../../src/domain/common.js";
import { AppError } from "../../src/domain/errors.js";
import { acceptedInUse, KeyDocuments } from "../../src/domain/keys/documents.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";
import { KeyPlacement } from "../../src/domain/keys/placement.js";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { instanceBaseline } from "../../src/policy/compile/instance.js";
import { TenantGateways } from "../../src/domain/publishing/tenant-gateways.js";
import { KeySecrets } from "../../src/domain/keys/secrets.js";
import { KeyService, type KeyDoc } from "../../src/domain/keys/service.js";
import { subscriptionFor } from "../../src/domain/keys/subscription.js";
import { everyDoc } from "../../src/domain/paging.js";
import { ProjectService } from "../../src/domain/projects/service.js";
import { ModelService } from "../../src/pillars/models/service.js";
import { gatewayNames } from "../../src/policy/names.js";
import { artifactHash, artifactRef, subscriptionFingerprint, type GatewayPublisher, type SubscriptionArtifact } from "../../src/ports/gateway.js";
import { TENANT_SCOPE, type BatchOp, type Store, type StoredDoc } from "../../src/ports/store.js";

const TENANT = "t-key-integrity";
/** The tenant's gateway names: its derived key, until a test assigns another (an operator's GATEWAY_ASSIGNMENTS). */
let names = gatewayNames(TENANT);
/** Gateway keys the tenant held on its instance before the current one (tenant-gateways.ts keysOn). */
let formerKeys: string[] = [];
let cosmos: EmbeddedCosmos;
let store: CosmosStore;
let projects: ProjectService;
let documents: KeyDocuments;
let keys: KeyService;
let projectId: string;
let guardedId: string;
let now = Date.now();
const clock = { now: () => new Date(now) };
/** While true, the gateway answers every write with an error. */
let gatewayDown = false;
/** Runs once before the next subscription write reaches the gateway (a slow write). */
let beforePublish: ((a: SubscriptionArtifact) => Promise<void>) | undefined;
/** The gateway's subscriptions: state and the two key values. */
const gateway = new Map<string, { state: string; primary: string; secondary: string }>();
/** While true, the gateway holds none of the tenant's products or APIs (its projects never published). */
let neverPublished = false;
/** How many publishes key syncs asked for. */
let publishesAsked = 0;
/** Fails the next store batch whose ops match (a crash or a store time-out at that write). */
let failBatch: ((ops: BatchOp[]) => boolean) | undefined;
/** The approval outcome handlers the key services registered (what the approval engine calls). */
const settleHandlers = new Map<string, (a: Approval, correlationId: string) => Promise<void>>();
/** The approval of a share of key `keyId` (of the suite's project) into `target`, as the approval engine hands it to the settle and sweep hooks. */
const shareApproval = (id: string, keyId: string, target: string, status: "approved" | "pending") =>
  ({ id, tenantId: TENANT, status, subject: { resourceType: "keyShare", resourceId: keyId, change: { keyId, fromProject: projectId, toProject: target } } }) as unknown as Approval;
/** Whether each subject type's owner still awaits a pending request (what the approval sweep asks). */
const awaitedChecks = new Map<string, (a: Approval) => Promise<boolean>>();
/** The approval requests the key services withdrew (what the approval engine was told). */
const withdrawn: string[] = [];
/** The partitions (scopeIds) of the store's point reads, while a test counts them. */
let reads: string[] | undefined;

const admin: RequestContext = { principal: { tenantId: TENANT, userId: "carol", roles: new Set(["TenantAdmin"]) }, correlationId: "test" };
const dev: RequestContext = { principal: { tenantId: TENANT, userId: "dora", roles: new Set(["Developer"]) }, correlationId: "test" };

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-key-integrity-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  const failing: Store = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "batch") {
        return async (partition: Parameters<Store["batch"]>[0], ops: BatchOp[]) => {
          if (failBatch?.(ops)) {
            failBatch = undefined;
            throw new Error("store time-out (simulated)");
          }
          return target.batch(partition, ops);
        };
      }
      if (prop === "read") {
        return (partition: Parameters<Store["read"]>[0], id: string) => {
          reads?.push(partition.scopeId);
          return target.read(partition, id);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Store;
  const changes = new ChangeWriter(failing, clock);
  projects = new ProjectService(failing, changes, clock);
  const secretStore = new EncryptedFileSecretStore(join(dir, "secrets"));
  const models = new ModelService(failing, changes, clock, secretStore, projects);
  let n = 0;
  const nextApproval = () => ({ id: `apr_${(++n).toString().padStart(20, "0")}`, tenantId: TENANT }) as Approval;
  const approvals = {
    onSettled: (type: string, handler: (a: Approval, c: string) => Promise<void>, awaited?: (a: Approval) => Promise<boolean>) => {
      settleHandlers.set(type, handler);
      if (awaited) awaitedChecks.set(type, awaited);
    },
    request: async () => nextApproval(),
    withdraw: async (_t: string, id: string) => {
      withdrawn.push(id);
      return true;
    },
    requestFor: async <T>(_c: RequestContext, _i: unknown, record: (a: Approval) => Promise<T>) => {
      const approval = nextApproval();
      return { approval, recorded: await record(approval) };
    },
  } as unknown as ApprovalService;
  const secrets = new KeySecrets(failing, secretStore);
  documents = new KeyDocuments(failing, changes);
  const publisher: GatewayPublisher = {
    publish: async (desired, previous) => {
      if (gatewayDown) throw new Error("the gateway answered 500");
      const a = desired[0] as SubscriptionArtifact;
      const deleted = Object.keys(previous).filter((ref) => ref !== artifactRef(a));
      for (const ref of deleted) gateway.delete(ref.slice("subscription:".length));
      const hook = beforePublish;
      if (hook) await hook(a);
      gateway.set(a.id, { state: a.state, primary: await secrets.resolveSecret(a.primaryKey), secondary: await secrets.resolveSecret(a.secondaryKey) });
      const ref = artifactRef(a);
      return { sent: [ref], unchanged: [], deleted: deleted as never, hashes: { [ref]: artifactHash(a) } };
    },
    read: async (refs) => {
      const out: Record<string, unknown> = {};
      for (const ref of refs) {
        const id = ref.slice("subscription:".length);
        const held = gateway.get(id);
        const doc = [...(await documents.listAll(TENANT, projectId)), ...(await documents.listAll(TENANT, guardedId))].find((k) => id.endsWith(k.id));
        if (!doc) continue;
        const a = subscriptionFor(doc, names);
        out[ref] = held && { kind: "subscription", id, displayName: a.displayName, scope: a.scope, state: held.state, primaryKeyFingerprint: subscriptionFingerprint(held.primary), secondaryKeyFingerprint: subscriptionFingerprint(held.secondary) };
      }
      return out as never;
    },
  };
  keys = new KeyService({
    clock,
    documents,
    secrets,
    projects,
    models,
    approvals,
    gateway: {
      publisher: async () => publisher,
      names: () => names,
      formerSubscriptions: async (_t, keyId) => formerKeys.map((key) => gatewayNames(TENANT, key).subscription(keyId)),
      holds: async () => !neverPublished,
      ensurePublished: async () => {
        publishesAsked++;
        return {};
      },
      exemptionTier: async () => undefined,
    },
  });
  projectId = (await projects.create(admin, { name: "integrity", environment: "dev", owner: "carol" })).id;
  guardedId = (await projects.create(admin, { name: "guarded", environment: "dev", owner: "carol", keyPolicy: { requireApproval: true } })).id;
}, 120_000);
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

async function auditOf(scope: string, keyId: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of everyDoc<AuditDoc>(store, { tenantId: TENANT, scopeId: scope }, { docType: "audit", orderBy: { field: "seq", direction: "ASC" } })) if (d.resource.endsWith(keyId)) out.push(d.action);
  return out;
}
async function eventsOf(scope: string, keyId: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of everyDoc<OutboxDoc>(store, { tenantId: TENANT, scopeId: scope }, { docType: "outbox" })) if (d.event.subject.endsWith(keyId)) out.push(d.event.type);
  return out;
}
async function refusal(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  const e = (err as AppError).error;
  return "reason" in e ? e.reason : e.kind;
}

describe("a refused key request", () => {
  it("is revoked even when the revocation's write failed the first time the verdict was settled; its owner cannot resume it", async () => {
    const k = await keys.create(dev, guardedId, { name: "requested", justification: "the pilot" });
    expect([k.status, k.approval?.state]).toEqual(["suspended", "pending"]);
    const verdict = { id: k.approval!.approvalId, tenantId: TENANT, status: "rejected", subject: { resourceType: "keyRequest", resourceId: k.id, change: { keyId: k.id, projectId: guardedId } } } as unknown as Approval;
    // The verdict is recorded; the revocation that follows fails (the approval engine then settles again).
    failBatch = (ops) => ops.some((o) => o.kind === "replace" && (o.doc as KeyDoc).docType === "virtualKey" && (o.doc as KeyDoc).status === "revoked");
    await expect(settleHandlers.get("keyRequest")!(verdict, "settle-1")).rejects.toThrow(/simulated/);
    expect((await documents.read(TENANT, guardedId, k.id))!.approval?.state).toBe("rejected");
    expect(await refusal(keys.resume(dev, guardedId, k.id, { reason: "mine" }))).toBe("key_request_refused");
    await settleHandlers.get("keyRequest")!(verdict, "settle-2");
    const after = await keys.get(dev, guardedId, k.id);
    expect(after.status === "revoked" || after.status === "revocationPending").toBe(true);
    expect(await refusal(keys.resume(dev, guardedId, k.id, { reason: "mine" }))).not.toBeUndefined();
    expect(gateway.get(names.subscription(k.id))?.state ?? "absent").not.toBe("active");
    expect(await auditOf(guardedId, k.id)).toEqual(["key.create", "key.request.reject", "key.revoke", "key.revoke.confirm"]);
  });
});

describe("a revocation the gateway confirms", () => {
  it("is recorded, audited and announced in one batch: a failed write leaves none of them, and the next sync makes all three", async () => {
    const k = await keys.create(admin, projectId, { name: "to revoke" });
    gatewayDown = true;
    expect((await keys.revoke(admin, projectId, k.id, { reason: "leaked" })).status).toBe("revocationPending");
    gatewayDown = false;
    failBatch = (ops) => ops.some((o) => o.kind === "create" && (o.doc as AuditDoc).action === "key.revoke.confirm");
    await expect(keys.sync.sync(TENANT, projectId, k.id, "job-1")).rejects.toThrow(/simulated/);
    // Nothing was said, and nothing recorded that would stop the next sync from saying it.
    expect((await keys.get(admin, projectId, k.id)).status).toBe("revocationPending");
    expect(await auditOf(projectId, k.id)).not.toContain("key.revoke.confirm");
    expect(await keys.sync.sync(TENANT, projectId, k.id, "job-2")).toBe("synced");
    expect((await keys.get(admin, projectId, k.id)).status).toBe("revoked");
    expect(await auditOf(projectId, k.id)).toEqual(["key.create", "key.revoke", "key.revoke.confirm"]);
    expect((await eventsOf(projectId, k.id)).filter((t) => t === "aigov.key.revoked.v1")).toHaveLength(1);
    expect(gateway.get(names.subscription(k.id))?.state).toBe("cancelled");
  });

  it("until it does, the key still holds its project", async () => {
    const k = await keys.create(admin, projectId, { name: "holding" });
    const before = await documents.countHeld(TENANT, projectId);
    gatewayDown = true;
    await keys.revoke(admin, projectId, k.id, { reason: "leaked" });
    gatewayDown = false;
    expect(await documents.countHeld(TENANT, projectId)).toBe(before);
    await keys.sync.sync(TENANT, projectId, k.id, "job");
    expect(await documents.countHeld(TENANT, projectId)).toBe(before - 1);
  });
});

describe("a locked project", () => {
  it("accepts no shared key: refused when asked, and not made when an approval comes after the lock", async () => {
    const target = (await projects.create(admin, { name: "sandbox target", environment: "dev", owner: "carol" })).id;
    const k = await keys.create(admin, projectId, { name: "to share" });
    const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
    // Locked while the share waits (the sandbox sweep's write, made here directly).
    const partition = { tenantId: TENANT, scopeId: TENANT_SCOPE };
    const doc = (await store.read<StoredDoc>(partition, target))!;
    const { _etag, ...rest } = doc;
    expect((await store.batch(partition, [{ kind: "replace", doc: { ...rest, lock: { at: new Date(now).toISOString(), reason: "sandboxExpired", detail: "sandbox past its review date" }, suspendedByLock: [] } as never, ifMatch: _etag }])).ok).toBe(true);
    await settleHandlers.get("keyShare")!(shareApproval(asked.approval.id, k.id, target, "approved"), "settle");
    expect((await documents.read(TENANT, projectId, k.id))!.shares?.map((s) => [s.projectId, s.status])).toEqual([[target, "rejected"]]);
    const other = await keys.create(admin, projectId, { name: "another" });
    expect(await refusal(keys.share(admin, projectId, other.id, { projectId: target, justification: "again" }))).toBe("project_locked");
    expect((await documents.read(TENANT, projectId, other.id))!.shares ?? []).toEqual([]);
  });

  it("a target deleted while the share waited takes nothing: the approval that comes after is not made into a share", async () => {
    const target = (await projects.create(admin, { name: "gone target", environment: "dev", owner: "carol" })).id;
    const k = await keys.create(admin, projectId, { name: "to a gone project" });
    const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
    // Deleted while the share waits (its project document gone, as a delete leaves it).
    expect(await store.delete({ tenantId: TENANT, scopeId: TENANT_SCOPE }, target)).toBe(true);
    await settleHandlers.get("keyShare")!(shareApproval(asked.approval.id, k.id, target, "approved"), "settle");
    expect((await documents.read(TENANT, projectId, k.id))!.shares?.map((s) => [s.projectId, s.status])).toEqual([[target, "rejected"]]);
    const recorded: string[] = [];
    for await (const s of documents.sharedInto(TENANT, target)) recorded.push(s.keyId);
    expect(recorded).toEqual([]);
  });
});

describe("a share the approval makes", () => {
  it("is recorded in the target project too when the first settle failed between its two writes", async () => {
    const target = (await projects.create(admin, { name: "share target", environment: "dev", owner: "carol" })).id;
    const k = await keys.create(admin, projectId, { name: "shared" });
    const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
    const verdict = shareApproval(asked.approval.id, k.id, target, "approved");
    // The key's share is made active; the target project's record of it fails.
    failBatch = (ops) => ops.some((o) => o.kind === "create" && (o.doc as StoredDoc).docType === "keyShareIn");
    await expect(settleHandlers.get("keyShare")!(verdict, "settle-1")).rejects.toThrow(/simulated/);
    expect((await documents.read(TENANT, projectId, k.id))!.shares?.map((x) => x.status)).toEqual(["active"]);
    const listed = async () => {
      const out: string[] = [];
      for await (const s of documents.sharedInto(TENANT, target)) out.push(s.keyId);
      return out;
    };
    expect(await listed()).toEqual([]);
    await settleHandlers.get("keyShare")!(verdict, "settle-2");
    expect(await listed()).toEqual([k.id]);
    expect((await keys.listSharedIn(admin, target)).map((x) => x.id)).toEqual([k.id]);
    // Once: a third settle writes nothing more.
    await settleHandlers.get("keyShare")!(verdict, "settle-3");
    expect(await auditOf(target, k.id)).toEqual(["key.share.accept"]);
  });

});

describe("a share that ended", () => {
  it("is ended in the target project too when the unshare failed between its two writes: the key decides, and the lifecycle job ends the record", async () => {
    const target = (await projects.create(admin, { name: "unshare target", environment: "dev", owner: "carol" })).id;
    const k = await keys.create(admin, projectId, { name: "shared then ended" });
    const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
    const verdict = shareApproval(asked.approval.id, k.id, target, "approved");
    await settleHandlers.get("keyShare")!(verdict, "settle");
    const listed = async () => {
      const out: string[] = [];
      for await (const s of documents.sharedInto(TENANT, target)) out.push(s.keyId);
      return out;
    };
    expect(await listed()).toEqual([k.id]);
    // The key's share is ended; the target project's record of it fails (a crash between the two writes).
    failBatch = (ops) => ops.some((o) => o.kind === "replace" && (o.doc as StoredDoc).docType === "keyShareIn");
    await expect(keys.unshare(admin, projectId, k.id, target)).rejects.toThrow(/simulated/);
    const ended = (await documents.read(TENANT, projectId, k.id))!;
    expect(ended.shares.map((x) => x.status)).toEqual(["revoked"]);
    // Nobody lists it, and it no longer counts among the tiers the target accepts (the key's document decides).
    expect((await keys.listSharedIn(admin, target)).map((x) => x.id)).toEqual([]);
    // The lifecycle job's housekeeping of the key ends the record (once: a second run writes nothing more).
    await keys.lifecycle.housekeep(ended, "job-1");
    expect(await listed()).toEqual([]);
    await keys.lifecycle.housekeep((await documents.read(TENANT, projectId, k.id))!, "job-2");
    expect(await auditOf(target, k.id)).toEqual(["key.share.accept", "key.share.end"]);
  });
});

describe("the lifecycle job's repair of ended shares", () => {
  it("costs nothing per run once a share's end is recorded and confirmed: no read of the target project, no extra read of the key", async () => {
    const k = await keys.create(admin, projectId, { name: "shared with many, then unshared" });
    const targets: string[] = [];
    for (let i = 0; i < 3; i++) {
      const target = (await projects.create(admin, { name: `ended share ${i}`, environment: "dev", owner: "carol" })).id;
      targets.push(target);
      const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
      await settleHandlers.get("keyShare")!(shareApproval(asked.approval.id, k.id, target, "approved"), "settle");
      await keys.unshare(admin, projectId, k.id, target);
    }
    // A share unshared while it waited (never active, never recorded in its target).
    const waiting = (await projects.create(admin, { name: "ended share pending", environment: "dev", owner: "carol" })).id;
    targets.push(waiting);
    await keys.share(admin, projectId, k.id, { projectId: waiting, justification: "the pilot" });
    await keys.unshare(admin, projectId, k.id, waiting);
    await keys.lifecycle.housekeep((await documents.read(TENANT, projectId, k.id))!, "job-0");
    const doc = (await documents.read(TENANT, projectId, k.id))!;
    expect(doc.gateway.syncedGen).toBe(doc.gateway.desiredGen);
    // Every share ended, recorded so and confirmed: a run of the job reads no target project, whatever the key's history.
    reads = [];
    try {
      await keys.lifecycle.housekeep(doc, "job-1");
      expect(reads.filter((scope) => targets.includes(scope))).toEqual([]);
    } finally {
      reads = undefined;
    }
  });
});

describe("the tiers a project accepts from keys shared into it", () => {
  const keyDoc = (i: number, share: "active" | "revoked", target: string) =>
    ({ id: `key_${i.toString().padStart(20, "0")}`, tenantId: TENANT, scopeId: "p-from", projectId: "p-from", scopes: {}, limits: { tokensPerMinute: 1000 + i }, shares: [{ projectId: target, status: share, approvalId: `apr_${i}` }], gateway: { desiredGen: 2, syncedGen: 2 } }) as unknown as KeyDoc;
  const docsOf = (keyDocs: KeyDoc[]) => ({
    async *sharedIntoAll() {
      // The target's records all say active (some stale: their shares ended, the record's write lost).
      for (const d of keyDocs) yield { fromProject: d.projectId, keyId: d.id };
    },
    read: async (_t: string, _p: string, id: string) => keyDocs.find((d) => d.id === id) as never,
  });
  it("are the profiles the key documents share with it: a record left active by an ended share takes no room", async () => {
    const candidate = { ...keyDoc(9999, "active", "p-into"), id: "key_new" };
    const stale = Array.from({ length: MAX_PROJECT_KEY_TIERS }, (_, i) => keyDoc(i, "revoked", "p-into"));
    expect(await acceptedInUse(docsOf(stale), TENANT, "p-into", candidate)).toBeUndefined();
    const live = Array.from({ length: MAX_PROJECT_KEY_TIERS }, (_, i) => keyDoc(i, "active", "p-into"));
    expect(await acceptedInUse(docsOf(live), TENANT, "p-into", candidate)).toBe(MAX_PROJECT_KEY_TIERS);
  });
});

describe("a key revoked while a share of it waits for its approval", () => {
  it("withdraws the share's request at once, and the request is no longer awaited (the sweep's fallback)", async () => {
    const target = (await projects.create(admin, { name: "revoked while pending", environment: "dev", owner: "carol" })).id;
    const k = await keys.create(admin, projectId, { name: "revoked while its share waits" });
    const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
    const approval = shareApproval(asked.approval.id, k.id, target, "pending");
    expect(await awaitedChecks.get("keyShare")!(approval)).toBe(true);
    await keys.revoke(admin, projectId, k.id, { reason: "leaked" });
    expect(withdrawn).toContain(asked.approval.id);
    expect(await awaitedChecks.get("keyShare")!(approval)).toBe(false);
  });
});

describe("a new gateway key for the tenant", () => {
  it("moves each key's subscription: the one under the former key goes in the same call, and a revocation reaches the one that is left", async () => {
    const k = await keys.create(admin, projectId, { name: "renamed" });
    const former = names.subscription(k.id);
    expect(gateway.get(former)?.state).toBe("active");
    names = gatewayNames(TENANT, "newkey0000");
    try {
      // The key changed nothing itself: the job's sync (and a publish's syncWaiting) finds it named anew.
      expect(await keys.sync.syncWaiting(TENANT, [projectId], "after-publish")).toBeGreaterThanOrEqual(1);
      expect(gateway.has(former)).toBe(false);
      expect(gateway.get(names.subscription(k.id))?.state).toBe("active");
      expect((await keys.get(admin, projectId, k.id)).gateway.subscriptionId).toBe(names.subscription(k.id));
      expect(await keys.sync.sync(TENANT, projectId, k.id, "job")).toBe("synced");
      await keys.revoke(admin, projectId, k.id, { reason: "leaked" });
      expect([...gateway.entries()].filter(([id]) => id.endsWith(k.id)).map(([id, s]) => [id, s.state])).toEqual([[names.subscription(k.id), "cancelled"]]);
    } finally {
      names = gatewayNames(TENANT);
    }
  });
});

describe("a key that ended before its project reached the gateway", () => {
  it("is confirmed without a publish, and no later sync asks for one: the job's, nor one after a move marks the tenant's keys to be sent anew", async () => {
    neverPublished = true;
    try {
      const k = await keys.create(admin, projectId, { name: "never published" });
      expect((await keys.get(admin, projectId, k.id)).gateway).toMatchObject({ state: "pending", waitingFor: "publish" });
      const revoked = await keys.revoke(admin, projectId, k.id, { reason: "not needed" });
      expect(revoked).toMatchObject({ status: "revoked", gateway: { state: "synced" } });
      const asked = publishesAsked;
      // The lifecycle job syncs every key every run; an instance move marks every key to be sent again.
      expect(await keys.sync.sync(TENANT, projectId, k.id, "job-1")).toBe("synced");
      expect(await keys.sync.sync(TENANT, projectId, k.id, "job-2")).toBe("synced");
      await new KeyPlacement(documents, async () => [projectId], async () => []).resendAll(TENANT);
      expect((await documents.read(TENANT, projectId, k.id))!.gateway.publishedHash).toBe("unconfirmed");
      expect(await keys.sync.sync(TENANT, projectId, k.id, "after-move")).toBe("synced");
      expect(await keys.sync.sync(TENANT, projectId, k.id, "job-3")).toBe("synced");
      expect(publishesAsked).toBe(asked);
      const doc = (await documents.read(TENANT, projectId, k.id))!;
      expect([doc.status, doc.revocationPending, doc.gateway.syncedGen]).toEqual(["revoked", false, doc.gateway.desiredGen]);
      expect(gateway.has(names.subscription(k.id))).toBe(false);
      expect(await eventsOf(projectId, k.id)).toEqual(expect.arrayContaining(["aigov.key.revoked.v1"]));
    } finally {
      neverPublished = false;
    }
  });
});

describe("a key synced before subscription ids were recorded", () => {
  it("loses its subscription under every key the tenant held before, when the tenant's gateway key changed before its next sync", async () => {
    const k = await keys.create(admin, projectId, { name: "legacy" });
    const former = names.subscription(k.id);
    expect(gateway.get(former)?.state).toBe("active");
    // As stored before ids were recorded: no subscriptionId.
    const doc = (await documents.read(TENANT, projectId, k.id))!;
    const { subscriptionId: _id, ...gatewayRest } = doc.gateway;
    expect(await documents.put({ ...doc, gateway: gatewayRest } as never, doc._etag)).toBeTruthy();
    // The operator assigns a new key before the key is synced again.
    formerKeys = [names.key];
    names = gatewayNames(TENANT, "newkey0001");
    try {
      expect(await keys.sync.syncWaiting(TENANT, [projectId], "after-publish")).toBeGreaterThanOrEqual(1);
      expect(gateway.has(former)).toBe(false);
      expect((await keys.get(admin, projectId, k.id)).gateway.subscriptionId).toBe(names.subscription(k.id));
      await keys.revoke(admin, projectId, k.id, { reason: "leaked" });
      expect([...gateway.entries()].filter(([id]) => id.endsWith(k.id)).map(([id, s]) => [id, s.state])).toEqual([[names.subscription(k.id), "cancelled"]]);
    } finally {
      names = gatewayNames(TENANT);
      formerKeys = [];
    }
  });
});

describe("where a key synced before subscription ids were recorded may have a subscription", () => {
  it("under every gateway key the tenant reserved on the instance: the move's drain deletes them all there", async () => {
    const noPublisher = async () => ({}) as GatewayPublisher;
    // The tenant held its derived key, then an operator's, on the default instance; and one on "eu".
    for (const [assignment, instance] of [[{}, "default"], [{ key: "opkey00001" }, "default"], [{ key: "eukey00001", instance: "eu" }, "eu"]] as const) {
      const gateways = new TenantGateways(store, { [TENANT]: assignment }, noPublisher);
      await gateways.reserve(TENANT);
      expect(gateways.instance(TENANT)).toBe(instance);
    }
    const now = new TenantGateways(store, { [TENANT]: { key: "opkey00001" } }, noPublisher);
    expect(await now.keysOn(TENANT, "default")).toEqual([gatewayNames(TENANT).key, "opkey00001"].sort());
    expect(await now.keysOn(TENANT, "eu")).toEqual(["eukey00001"]);
    expect(await now.keysOn("another-tenant", "default")).toEqual([]);
    expect(await now.formerSubscriptions(TENANT, "key_x")).toEqual([gatewayNames(TENANT).subscription("key_x")]);

    const k = await keys.create(admin, projectId, { name: "legacy placement" });
    const doc = (await documents.read(TENANT, projectId, k.id))!;
    const { subscriptionId: _id, ...gatewayRest } = doc.gateway;
    expect(await documents.put({ ...doc, gateway: gatewayRest } as never, doc._etag)).toBeTruthy();
    const placement = new KeyPlacement(documents, async () => [projectId], (tenantId, instance) => now.keysOn(tenantId, instance));
    const ids = await placement.subscriptionIds(TENANT, "default");
    expect(ids).toEqual(expect.arrayContaining([gatewayNames(TENANT).subscription(k.id), gatewayNames(TENANT, "opkey00001").subscription(k.id)]));
    expect(ids).not.toContain(gatewayNames(TENANT, "eukey00001").subscription(k.id));
  });
});

describe("an instance a tenant writes to", () => {
  it("holds the instance baseline before anything of the tenant is written there: written when missing or changed by hand, else only read", async () => {
    const root = mkdtempSync(join(tmpdir(), "aigov-baseline-instance-"));
    const files = new FilePublisher(root);
    const calls: string[] = [];
    const watched: GatewayPublisher = {
      publish: (desired, previous, budget) => (calls.push(`publish ${desired.map(artifactRef).join(",")}`), files.publish(desired, previous, budget)),
      read: (refs) => (calls.push(`read ${refs.join(",")}`), files.read(refs)),
    };
    const baselineFile = join(root, "policies", "policy.xml");
    const gateways = new TenantGateways(store, { "t-baseline-a": { instance: "solo" }, "t-baseline-b": { instance: "solo" } }, async () => watched);
    await gateways.publisher("t-baseline-a");
    expect(calls).toEqual(["read policy:global", "publish policy:global"]);
    expect(readFileSync(baselineFile, "utf8")).toBe(instanceBaseline().xml);
    // Checked once per instance: another tenant on it reads nothing more.
    await gateways.publisher("t-baseline-b");
    expect(calls).toHaveLength(2);
    // A later process finds it in place: a read, no write. Changed by hand, it is written again.
    const again = new TenantGateways(store, { "t-baseline-a": { instance: "solo" } }, async () => watched);
    calls.length = 0;
    await again.publisher("t-baseline-a");
    expect(calls).toEqual(["read policy:global"]);
    writeFileSync(baselineFile, "<policies><inbound/><backend><forward-request/></backend><outbound/><on-error/></policies>");
    calls.length = 0;
    await new TenantGateways(store, { "t-baseline-a": { instance: "solo" } }, async () => watched).publisher("t-baseline-a");
    expect(calls).toEqual(["read policy:global", "publish policy:global"]);
    expect(readFileSync(baselineFile, "utf8")).toBe(instanceBaseline().xml);
  });
});

describe("a sync whose claim lapsed while it published", () => {
  it("does not let the other sync's confirmation stand over its late write: it publishes the key's state again", async () => {
    const k = await keys.create(admin, projectId, { name: "slow gateway" });
    await keys.suspend(admin, projectId, k.id, { reason: "investigating" });
    const sid = names.subscription(k.id);
    expect(gateway.get(sid)?.state).toBe("suspended");
    // The resume's sync (A) stalls before its write lands (ARM throttling, say) for longer than its claim.
    let release!: () => void;
    let stalled!: () => void;
    const inA = new Promise<void>((r) => (stalled = r));
    beforePublish = async (a) => {
      if (a.state !== "active") return;
      beforePublish = undefined;
      stalled();
      await new Promise<void>((r) => (release = r));
    };
    const resuming = keys.resume(admin, projectId, k.id, { reason: "false alarm" });
    await inA;
    now += 61_000;
    // Meanwhile the key is suspended again; that sync (B) takes over the lapsed claim and is confirmed.
    expect((await keys.suspend(admin, projectId, k.id, { reason: "compromised after all" })).status).toBe("suspended");
    expect(gateway.get(sid)?.state).toBe("suspended");
    // A's write lands last (the gateway holds the key active for a moment). A finds its claim taken: it
    // does not trust B's confirmation and publishes the key's state again.
    let landed: string | undefined;
    beforePublish = async () => void (landed ??= gateway.get(sid)?.state);
    release();
    await resuming;
    beforePublish = undefined;
    expect(landed).toBe("active");
    expect(gateway.get(sid)?.state).toBe("suspended");
    expect(await keys.get(admin, projectId, k.id)).toMatchObject({ status: "suspended", gateway: { state: "synced" } });
    expect(await keys.sync.sync(TENANT, projectId, k.id, "job")).toBe("synced");
    expect(gateway.get(sid)?.state).toBe("suspended");
  });
});

describe("a share request the key no longer records as pending", () => {
  it("is not awaited (the approval sweep withdraws it): unshared while it waited", async () => {
    const target = (await projects.create(admin, { name: "unshared target", environment: "dev", owner: "carol" })).id;
    const k = await keys.create(admin, projectId, { name: "briefly shared" });
    const asked = await keys.share(admin, projectId, k.id, { projectId: target, justification: "the pilot" });
    const approval = shareApproval(asked.approval.id, k.id, target, "pending");
    expect(await awaitedChecks.get("keyShare")!(approval)).toBe(true);
    await keys.unshare(admin, projectId, k.id, target);
    expect(await awaitedChecks.get("keyShare")!(approval)).toBe(false);
  });
});
