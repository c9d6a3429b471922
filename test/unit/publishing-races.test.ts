// The publish service on the real store (embedded Cosmos, with a seam that refuses a chosen write) and
// an in-memory gateway run by the real publish algorithm: a person's publish racing a system publish,
// and store writes a revision would point at being refused. The compiler is a stand-in whose output
// follows a registry setting (the person's change) and a live value (the system's: a lock, an exemption).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPublish, type PublishIo } from "../../src/adapters/apim/plan.js";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import { ChangeWriter } from "../../src/domain/changes.js";
import type { RequestContext } from "../../src/domain/common.js";
import { AppError } from "../../src/domain/errors.js";
import type { RegistrySnapshot } from "../../src/domain/publishing/registry.js";
import { PublishService } from "../../src/domain/publishing/service.js";
import { normalizeArtifact, type GatewayArtifact, type GatewayPublisher } from "../../src/ports/gateway.js";
import type { BatchOp, BatchResult, Store, StoredDoc } from "../../src/ports/store.js";

let cosmos: EmbeddedCosmos;
let store: CosmosStore;
/** Answers the next matching batch instead of the store (a refused write). */
let refuse: ((ops: BatchOp[]) => BatchResult | undefined) | undefined;
let tenants = 0;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "aigov-publishing-races-"));
  cosmos = await startEmbeddedCosmos({ dataDir: dir });
  store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
}, 120_000);
afterAll(async () => {
  store.dispose();
  await cosmos.close();
});

const nv = (id: string, value: string): GatewayArtifact => ({ kind: "namedValue", id, displayName: id, secret: false, value });

/** A tenant of its own: the service, the gateway it publishes to, and the inputs its compiles read. */
function tenant(opts: { sliceMs?: number } = {}) {
  const tenantId = `t-race-${++tenants}`;
  const ctx: RequestContext = { principal: { tenantId, userId: "alice", roles: new Set(["TenantAdmin"]) }, correlationId: "test" };
  let at = Date.now();
  const clock = { now: () => new Date(at) };
  const refusing: Store = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "batch") return async (p: Parameters<Store["batch"]>[0], ops: BatchOp[]) => refuse?.(ops) ?? target.batch(p, ops);
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Store;
  const gateway = new Map<string, GatewayArtifact>();
  const live = { value: "L0" };
  /** `extra`: how many more named values the registry makes (a publish of several steps). */
  const registry = { setting: "S0", extra: 0 };
  /** Runs once inside the next compile, after it read the live value (a slow compile). */
  let duringCompile: (() => Promise<void>) | undefined;
  /** While true, the tenant's publisher cannot be had (its instance's management endpoint does not answer). */
  let unreachable = false;
  /** Runs after the next write reached the gateway (e.g. throws: the answer is lost, the write is made). */
  let afterWrite: ((ref: string) => void | Promise<void>) | undefined;
  /** A value the gateway refuses to take (a registry it rejects: every write of it fails). */
  let refused: string | undefined;
  const compiler = {
    registry: async (): Promise<RegistrySnapshot> => ({ tenantId, settings: { x: registry.setting, ...(registry.extra ? { extra: registry.extra } : {}) } as never, services: {} as never, projects: [] }),
    compileRegistry: async (reg: RegistrySnapshot) => {
      const { x, extra = 0 } = reg.settings as unknown as { x: string; extra?: number };
      const artifacts = [nv("aigov-k-setting", String(x)), nv("aigov-k-live", live.value), ...Array.from({ length: extra }, (_, i) => nv(`aigov-k-extra-${i}`, `E${i}`))];
      const hook = duringCompile;
      duringCompile = undefined;
      if (hook) await hook();
      return { result: { artifacts } as never, registry: reg, isolated: [] };
    },
  };
  let sends = 0;
  const publisherOver = (gateway: Map<string, GatewayArtifact>): GatewayPublisher => ({
    publish: (desired, previous, budget) =>
      runPublish(
        {
          lookup: async (loc) => ("id" in loc && gateway.has(`${loc.kind}:${loc.id}`) ? {} : undefined),
          write: async (w) => {
            if (refused !== undefined && (w.artifact as { value?: string }).value === refused) throw new Error(`ValidationError: ${w.ref} is refused`);
            gateway.set(w.ref, normalizeArtifact(w.artifact));
            sends++;
            const hook = afterWrite;
            afterWrite = undefined;
            await hook?.(w.ref);
          },
          remove: async (ref) => void gateway.delete(ref),
        } satisfies PublishIo,
        desired,
        previous,
        budget,
      ),
    read: async (refs) => Object.fromEntries(refs.map((r) => [r, gateway.get(r)])) as never,
  });
  const publisher = publisherOver(gateway);
  /** The instance an operator assigned the tenant (GATEWAY_ASSIGNMENTS), and the other one's artifacts. */
  let assigned = "default";
  const elsewhere = new Map<string, GatewayArtifact>();
  const publisherOn = async (instance: string) => (instance === "default" ? publisher : publisherOver(elsewhere));
  /** The tenant's keys' subscription ids, and how often their resend was asked for. */
  const keyIds: string[] = [];
  let resent = 0;
  /** The instances the tenant reserved a key on (tenant-gateways.ts instancesHeld). */
  let reservedOn: string[] = ["default"];
  const service = new PublishService({ store: refusing, changes: new ChangeWriter(refusing, clock), clock, compiler, gateways: { publisher: async () => (unreachable ? Promise.reject(new Error("the management endpoint did not answer")) : publisherOn(assigned)), instance: () => assigned, publisherOn, reserve: async () => undefined, instancesHeld: async () => [...reservedOn] }, keys: { subscriptionIds: async () => [...keyIds], resendAll: async () => void resent++ }, retry: { firstIntervalMs: 1, maxAttempts: 1 }, ...(opts.sliceMs !== undefined ? { sliceMs: opts.sliceMs } : {}) });
  const value = (id: string) => (gateway.get(`namedValue:${id}`) as { value?: string } | undefined)?.value;
  return { tenantId, ctx, service, live, registry, value, slowCompile: (hook: () => Promise<void>) => (duringCompile = hook), loseAnswer: () => (afterWrite = () => { throw Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }); }),
    /** The apply in progress dies after its next write (the process is gone: it never returns, never records). */
    dieAfterWrite: () => (afterWrite = () => new Promise<void>(() => undefined)),
    advance: (ms: number) => (at += ms),
    unreachable: (down: boolean) => (unreachable = down),
    refuse: (value: string) => (refused = value),
    /** Writes that reached the gateway so far. */
    sends: () => sends,
    /** Changes an artifact at the gateway behind the control plane's back (drift). */
    edit: (id: string, value: string) => gateway.set(`namedValue:${id}`, nv(id, value)),
    store: refusing,
    /** An operator assigns the tenant another instance. */
    assign: (instance: string) => (assigned = instance),
    /** Where the tenant has reserved a gateway key (wrote) so far. */
    reserved: (instances: string[]) => (reservedOn = instances),
    /** What each instance holds. */
    held: (instance: string) => (instance === "default" ? gateway : elsewhere),
    /** A key's subscription at the default instance (keys sync on their own; a publish never sends them). */
    subscribe: (id: string) => {
      keyIds.push(id);
      gateway.set(`subscription:${id}`, { kind: "subscription", id } as never);
    },
    resent: () => resent,
  };
}

/** Applies a revision step by step until it is no longer "continue"; the results of every call. */
async function stepped(t: ReturnType<typeof tenant>, revisionId: string, limit = 50): Promise<string[]> {
  const results: string[] = [];
  for (let i = 0; i < limit; i++) {
    const r = await t.service.applier.apply(t.tenantId, revisionId, "c");
    results.push(r);
    if (r !== "continue") return results;
  }
  throw new Error(`still going after ${limit} steps: ${results.join(", ")}`);
}

describe("a person's publish that compiled before a system publish", () => {
  it("compiles again instead of superseding the system's newer revision with older live state", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, first.revision!.id, "c")).toBe("published");
    // A person publishes a setting; while their compile is slow, the live state changes and the system publishes it.
    t.registry.setting = "S1";
    let system: Awaited<ReturnType<typeof t.service.requestPublish>> | undefined;
    t.slowCompile(async () => {
      t.live.value = "L1";
      system = await t.service.requestPublish(t.tenantId, { by: "system:test", reason: "a sandbox locked", correlationId: "c" });
    });
    const person = await t.service.publish(t.ctx, {});
    expect(system?.changed).toBe(true);
    expect(person.revision!.number).toBeGreaterThan(system!.revision!.number);
    expect(await t.service.applier.apply(t.tenantId, system!.revision!.id, "c")).toBe("superseded");
    expect(await t.service.applier.apply(t.tenantId, person.revision!.id, "c")).toBe("published");
    // Both changes are at the gateway: the person's setting and the system's live value.
    expect([t.value("aigov-k-setting"), t.value("aigov-k-live")]).toEqual(["S1", "L1"]);
  });

  it("a rollback too", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    await t.service.applier.apply(t.tenantId, first.revision!.id, "c");
    t.registry.setting = "S1";
    const second = await t.service.publish(t.ctx, {});
    await t.service.applier.apply(t.tenantId, second.revision!.id, "c");
    t.slowCompile(async () => {
      t.live.value = "L1";
      await t.service.requestPublish(t.tenantId, { by: "system:test", reason: "an exemption ended", correlationId: "c" });
    });
    const rollback = await t.service.rollback(t.ctx, first.revision!.id, {});
    expect(await t.service.applier.apply(t.tenantId, rollback.revision!.id, "c")).toBe("published");
    expect([t.value("aigov-k-setting"), t.value("aigov-k-live")]).toEqual(["S0", "L1"]);
  });
});

describe("a store write a revision would point at", () => {
  it("that the store refuses fails the publish (503) before the revision is recorded; the tenant publishes again afterwards", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    await t.service.applier.apply(t.tenantId, first.revision!.id, "c");
    t.registry.setting = "S1";
    for (const docType of ["registryPart", "revisionRegistry", "revisionPart", "gatewayArtifact"]) {
      // Throttled past the SDK's own retries: the store answers ok: false, not an error.
      refuse = (ops) => (ops[0]!.kind !== "delete" && (ops[0]!.doc as StoredDoc).docType === docType ? { ok: false, failedIndex: 0, status: 429 } : undefined);
      const err = await t.service.publish(t.ctx, {}).then(
        () => undefined,
        (e: unknown) => e,
      );
      refuse = undefined;
      expect(err, docType).toBeInstanceOf(AppError);
      expect((err as AppError).error.kind, docType).toBe("unavailable");
      expect((await t.service.list(t.ctx, { maxPageSize: 10 })).items.map((r) => r.number), docType).toEqual([1]);
    }
    const again = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, again.revision!.id, "c")).toBe("published");
    t.registry.setting = "S2";
    expect((await t.service.publish(t.ctx, {})).changed).toBe(true);
    expect((await t.service.requestPublish(t.tenantId, { by: "system:test", reason: "a key", correlationId: "c" })).changed).toBe(false);
  });
});

describe("a gateway call whose outcome is unknown", () => {
  it("is sent again by the next publish: a write that took effect though its answer was lost is not taken for the old content", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    await t.service.applier.apply(t.tenantId, first.revision!.id, "c");
    t.registry.setting = "S1";
    const second = await t.service.publish(t.ctx, {});
    t.loseAnswer();
    await expect(t.service.applier.apply(t.tenantId, second.revision!.id, "c")).rejects.toThrow(/socket hang up/);
    expect(t.value("aigov-k-setting")).toBe("S1"); // it landed
    // The admin goes back to S0: what the gateway was last known to hold completely.
    t.registry.setting = "S0";
    const back = await t.service.publish(t.ctx, {});
    expect(back.changed).toBe(true);
    expect(await t.service.applier.apply(t.tenantId, back.revision!.id, "c")).toBe("published");
    expect(t.value("aigov-k-setting")).toBe("S0");
    // Once published completely, nothing is unsure any more: the same publish again sends nothing.
    expect((await t.service.publish(t.ctx, {})).changed).toBe(false);
  });
});

describe("an apply that died part-way", () => {
  it("leaves nothing a newer revision takes for granted: what it may have written is sent again", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    await t.service.applier.apply(t.tenantId, first.revision!.id, "c");
    t.registry.setting = "S1";
    const second = await t.service.publish(t.ctx, {});
    t.dieAfterWrite();
    void t.service.applier.apply(t.tenantId, second.revision!.id, "c"); // never returns
    await new Promise((r) => setTimeout(r, 200));
    expect(t.value("aigov-k-setting")).toBe("S1"); // it wrote, then died holding its lease
    // The admin goes back to S0 (what the gateway was last completely brought to) once the lease lapsed.
    t.advance(11 * 60_000);
    t.registry.setting = "S0";
    const back = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, back.revision!.id, "c")).toBe("published");
    expect(t.value("aigov-k-setting")).toBe("S0");
    expect(await t.service.applier.apply(t.tenantId, second.revision!.id, "c")).toBe("superseded");
  });
});

describe("an apply that fails before it sends anything", () => {
  it("releases its lease at once: the next revision is applied, not kept busy for ten minutes", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    await t.service.applier.apply(t.tenantId, first.revision!.id, "c");
    t.registry.setting = "S1";
    const second = await t.service.publish(t.ctx, {});
    t.unreachable(true);
    await expect(t.service.applier.apply(t.tenantId, second.revision!.id, "c")).rejects.toThrow(/did not answer/);
    t.unreachable(false);
    t.registry.setting = "S2";
    const third = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, third.revision!.id, "c")).toBe("published");
    expect(t.value("aigov-k-setting")).toBe("S2");
  });
});

/** A tenant whose first publish is at the gateway, and a system publish of a live change (L1) made: its revision. */
async function systemPublishOf(t: ReturnType<typeof tenant>, reason: string) {
  await firstPublished(t);
  return systemAsks(t, "L1", reason);
}

/** The tenant's first publish, applied: the gateway holds S0 and L0. */
async function firstPublished(t: ReturnType<typeof tenant>) {
  const first = (await t.service.publish(t.ctx, {})).revision!;
  await t.service.applier.apply(t.tenantId, first.id, "c");
  return first;
}

/** The gateway is away for a revision's whole run: its apply fails and it is marked failed (the gateway stays away). */
async function failWhileAway(t: ReturnType<typeof tenant>, revisionId: string) {
  t.unreachable(true);
  await expect(t.service.applier.apply(t.tenantId, revisionId, "c")).rejects.toThrow(/did not answer/);
  await t.service.applier.markFailed(t.tenantId, revisionId, "the management endpoint did not answer", "c");
}

describe("a system publish that failed after its retries", () => {
  it("is asked for again by the sweep with back-off, naming the failure it retries, until the gateway holds the live state", async () => {
    const t = tenant();
    // A sandbox locks: the system publishes the live change, and the gateway is away for the publish's whole run.
    const system = await systemPublishOf(t, "a sandbox locked");
    const fail = (revisionId: string) => failWhileAway(t, revisionId);
    await fail(system.id);
    const revisions = async () => (await t.service.list(t.ctx, { maxPageSize: 20 })).items.sort((a, b) => a.number - b.number);
    const sweep = async (minutes: number) => {
      t.advance(minutes * 60_000);
      await t.service.retryFailedSystemPublishes("c");
      return revisions();
    };
    expect((await sweep(14)).map((r) => r.status)).toEqual(["published", "failed"]); // not before 15 minutes
    let all = await sweep(1);
    expect(all.map((r) => [r.number, r.status, r.origin, r.retry])).toEqual([
      [1, "published", "person", undefined],
      [2, "failed", "system", undefined],
      [3, "pending", "system", { of: system.id, attempt: 1 }],
    ]);
    expect(all[2]!.reason).toBe("retry 1 of revision 2 (a sandbox locked), which failed");
    expect((await sweep(60)).length).toBe(3); // a pending retry is the driver's to apply, not asked for again
    await fail(all[2]!.id);
    expect((await sweep(29)).length).toBe(3); // the second retry waits 30 minutes
    all = await sweep(1);
    expect(all.map((r) => r.retry)).toEqual([undefined, undefined, { of: system.id, attempt: 1 }, { of: system.id, attempt: 2 }]);
    // The gateway is back: the retry publishes the locked sandbox's change.
    t.unreachable(false);
    expect(await t.service.applier.apply(t.tenantId, all[3]!.id, "c")).toBe("published");
    expect(t.value("aigov-k-live")).toBe("L1");
    expect((await sweep(24 * 60)).length).toBe(4); // nothing failed is newest any more
  });

  it("stops after five retries: the failure stays for a person to see", async () => {
    const t = tenant();
    let revision = await systemPublishOf(t, "an exemption ended");
    for (let attempt = 1; attempt <= 6; attempt++) {
      await failWhileAway(t, revision.id);
      t.advance(4 * 60 * 60_000);
      await t.service.retryFailedSystemPublishes("c");
      const newest = (await t.service.list(t.ctx, { maxPageSize: 20 })).items.sort((a, b) => b.number - a.number)[0]!;
      if (attempt <= 5) expect(newest.retry?.attempt).toBe(attempt);
      else expect(newest).toMatchObject({ id: revision.id, status: "failed", retry: { attempt: 5 } });
      revision = newest;
    }
  });
});

/** The tenant's first publish at the gateway; a person's publish of `setting`; a system publish (L1) made on top before it was applied. */
async function supersededBySystem(t: ReturnType<typeof tenant>, setting: string) {
  const first = await firstPublished(t);
  t.registry.setting = setting;
  const person = (await t.service.publish(t.ctx, {})).revision!;
  const system = await systemAsks(t, "L1", "a sandbox locked");
  return { first, person, system };
}

/** The live state moves to `live` and the system asks for a publish: its revision. */
async function systemAsks(t: ReturnType<typeof tenant>, live: string, reason: string) {
  t.live.value = live;
  return (await t.service.requestPublish(t.tenantId, { by: "system:test", reason, correlationId: "c" })).revision!;
}

/** Applies a revision to its end; what the gateway then holds: [setting, live]. */
async function published(t: ReturnType<typeof tenant>, revisionId: string) {
  expect(await t.service.applier.apply(t.tenantId, revisionId, "c")).toBe("published");
  return [t.value("aigov-k-setting"), t.value("aigov-k-live")];
}

describe("a person's publish superseded by a system publish that then failed", () => {
  it("is carried by the next system publish: the person's change is not dropped", async () => {
    const t = tenant();
    const { person, system } = await supersededBySystem(t, "S1");
    expect(system.registryFrom).toBe(person.id);
    expect(await t.service.applier.apply(t.tenantId, person.id, "c")).toBe("superseded");
    // The system's revision fails (the gateway away for its whole run), and another system publish is
    // asked for before any retry (a key needs its product).
    await failWhileAway(t, system.id);
    t.unreachable(false);
    const next = await systemAsks(t, "L2", "a key needs its product");
    expect(next.registryFrom).toBe(system.id);
    expect(next.registryLeftOut).toBeUndefined();
    expect(await published(t, next.id)).toEqual(["S1", "L2"]);
  });

  it("not when the person's revision failed after the system's was built on it: the next system publish builds on what is live", async () => {
    const t = tenant();
    const { first, person, system } = await supersededBySystem(t, "S1");
    // The person's last attempt was running when the system's revision was made: it ends failed, not superseded.
    await t.service.applier.markFailed(t.tenantId, person.id, "the gateway refused it", "c");
    await failWhileAway(t, system.id);
    t.unreachable(false);
    const next = await systemAsks(t, "L1", "an exemption ended");
    expect(next.registryFrom).toBe(first.id);
    expect(next.registryLeftOut).toBe(person.id);
    expect(await published(t, next.id)).toEqual(["S0", "L1"]);
  });

  it("a registry the gateway refuses is carried once, then left out: it never holds back the system's publishes (an exemption's end)", async () => {
    const t = tenant();
    t.refuse("BAD");
    const { first, person, system } = await supersededBySystem(t, "BAD");
    expect(await t.service.applier.apply(t.tenantId, person.id, "c")).toBe("superseded");
    const failOnRefusal = async (revisionId: string) => {
      await expect(t.service.applier.apply(t.tenantId, revisionId, "c")).rejects.toThrow(/refused/);
      await t.service.applier.markFailed(t.tenantId, revisionId, "the gateway refused it", "c");
    };
    await failOnRefusal(system.id);
    // Carried once (the failure might have been the gateway's, not the registry's)…
    const carried = await systemAsks(t, "L2", "a key needs its product");
    expect(carried.registryFrom).toBe(system.id);
    await failOnRefusal(carried.id);
    // …then left out: the exemption's end reaches the gateway, and the revision says what it leaves staged.
    const next = await systemAsks(t, "L3", "an exemption ended");
    expect(next.registryFrom).toBe(first.id);
    // Whose registry it leaves out: the person's revision (it reads superseded), named on the revision.
    expect(next.registryLeftOut).toBe(person.id);
    expect((await t.service.get(t.ctx, next.id, false)).registryLeftOut).toBe(person.id);
    expect(next.staged).toEqual({ tenant: true, projects: [] });
    expect(await published(t, next.id)).toEqual(["S0", "L3"]);
  });

  it("a person's own publish that failed is not carried: they see it failed, and the system publishes on what is live", async () => {
    const t = tenant();
    const first = await firstPublished(t);
    t.registry.setting = "S1";
    const person = (await t.service.publish(t.ctx, {})).revision!;
    await failWhileAway(t, person.id);
    t.unreachable(false);
    const next = await systemAsks(t, "L1", "an exemption ended");
    expect(next.registryFrom).toBe(first.id);
    expect(await published(t, next.id)).toEqual(["S0", "L1"]);
  });
});

describe("a failed system publish whose change the gateway holds by the time it is retried", () => {
  it("is asked for once: no revision is made, and later sweeps leave it", async () => {
    const t = tenant();
    await failWhileAway(t, (await systemPublishOf(t, "an exemption activated")).id);
    t.unreachable(false);
    // The exemption ended meanwhile: the live state is what the gateway holds.
    t.live.value = "L0";
    let compiles = 0;
    const counting = () => t.slowCompile(async () => void compiles++);
    for (const minutes of [15, 30, 60]) {
      counting();
      t.advance(minutes * 60_000);
      await t.service.retryFailedSystemPublishes("c");
    }
    expect(compiles).toBe(1);
    expect((await t.service.list(t.ctx, { maxPageSize: 20 })).items.map((r) => r.status).sort()).toEqual(["failed", "published"]);
  });
});

describe("failed system publishes of several tenants", () => {
  it("one tenant's retry that throws does not keep another's from being asked; it is reported", async () => {
    const failedSystemPublish = async (t: ReturnType<typeof tenant>) => {
      const revision = await systemPublishOf(t, "a share");
      await failWhileAway(t, revision.id);
      t.unreachable(false);
      return revision;
    };
    const broken = tenant();
    const healthy = tenant();
    const brokenRevision = await failedSystemPublish(broken);
    await failedSystemPublish(healthy);
    // The broken tenant's store partition refuses new revisions (throttled past the SDK's retries).
    refuse = (ops) => (ops.some((op) => op.kind !== "delete" && (op.doc as StoredDoc).tenantId === broken.tenantId && (op.doc as StoredDoc).docType === "revision") ? { ok: false, failedIndex: 0, status: 429 } : undefined);
    healthy.advance(15 * 60_000); // the sweep's clock (one sweep serves every tenant)
    try {
      const swept = await healthy.service.retryFailedSystemPublishes("c");
      expect(swept.failed).toEqual([expect.objectContaining({ tenantId: broken.tenantId, revisionId: brokenRevision.id })]);
    } finally {
      refuse = undefined;
    }
    const newest = (await healthy.service.list(healthy.ctx, { maxPageSize: 20 })).items.sort((a, b) => b.number - a.number)[0]!;
    expect(newest.retry?.attempt).toBe(1);
  });
});

describe("a publish in steps (one write a step)", () => {
  it("a newer revision made between two steps supersedes the older at its next step, which lets the gateway go at once", async () => {
    const t = tenant({ sliceMs: 0 });
    const first = await t.service.publish(t.ctx, {});
    expect(await stepped(t, first.revision!.id)).toEqual(["continue", "published"]);
    t.registry.extra = 4;
    const older = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, older.revision!.id, "c")).toBe("continue");
    t.registry.setting = "S2";
    const newer = await t.service.publish(t.ctx, {});
    // The older holds the gateway between its steps…
    expect(await t.service.applier.apply(t.tenantId, newer.revision!.id, "c")).toBe("busy");
    // …until its next step finds it superseded: the newer goes on at once, from what the older sent.
    expect(await t.service.applier.apply(t.tenantId, older.revision!.id, "c")).toBe("superseded");
    const sendsBefore = t.sends();
    const steps = await stepped(t, newer.revision!.id);
    expect(steps).toEqual(["continue", "continue", "continue", "published"]);
    expect(t.sends() - sendsBefore).toBe(4); // three extras and the setting: the older's extra is not sent again
    expect([t.value("aigov-k-setting"), ...[0, 1, 2, 3].map((i) => t.value(`aigov-k-extra-${i}`))]).toEqual(["S2", "E0", "E1", "E2", "E3"]);
    expect((await t.service.get(t.ctx, newer.revision!.id, false)).outcome).toEqual({ sent: 4, unchanged: 2, deleted: 0 });
  });

  it("what a step sends again (unsure after a lost answer, drifted) the next step does not: each is sent once, and the publish finishes", async () => {
    const t = tenant({ sliceMs: 0 });
    t.registry.extra = 3;
    const first = await t.service.publish(t.ctx, {});
    await stepped(t, first.revision!.id);
    t.edit("aigov-k-extra-0", "X0");
    t.edit("aigov-k-extra-1", "X1");
    expect((await t.service.drift.check(t.tenantId, "c")).status).toBe("drifted");
    t.registry.setting = "S1";
    const second = await t.service.publish(t.ctx, {});
    t.loseAnswer();
    await expect(t.service.applier.apply(t.tenantId, second.revision!.id, "c")).rejects.toThrow(/socket hang up/);
    const sendsBefore = t.sends();
    const steps = await stepped(t, second.revision!.id);
    expect(steps.at(-1)).toBe("published");
    // The unsure write and the two drifted artifacts, once each.
    expect(t.sends() - sendsBefore).toBe(3);
    expect(steps).toHaveLength(3);
    expect([t.value("aigov-k-setting"), t.value("aigov-k-extra-0"), t.value("aigov-k-extra-1")]).toEqual(["S1", "E0", "E1"]);
    expect((await t.service.drift.check(t.tenantId, "c")).status).toBe("inSync");
  });

  it("a publish given up between steps lets the gateway go: the next revision is not kept waiting for the lease", async () => {
    const t = tenant({ sliceMs: 0 });
    const first = await t.service.publish(t.ctx, {});
    await stepped(t, first.revision!.id);
    t.registry.extra = 3;
    const given = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, given.revision!.id, "c")).toBe("continue");
    await t.service.applier.markFailed(t.tenantId, given.revision!.id, "the publish did not finish in 500 steps", "c");
    t.registry.setting = "S3";
    const next = await t.service.publish(t.ctx, {});
    const steps = await stepped(t, next.revision!.id);
    expect(steps).not.toContain("busy");
    expect(steps.at(-1)).toBe("published");
    expect([t.value("aigov-k-setting"), t.value("aigov-k-extra-2")]).toEqual(["S3", "E2"]);
  });
});

/** Takes the recorded instance out of the tenant's gateway state, as states were written before it was recorded; answers what it was. */
async function forgetInstance(t: { tenantId: string; store: Store }): Promise<string | undefined> {
  const partition = { tenantId: t.tenantId, scopeId: "_tenant" };
  const { _etag, instance, ...legacy } = (await t.store.read<StoredDoc & { instance?: string }>(partition, "gateway.state"))!;
  expect((await t.store.batch(partition, [{ kind: "replace", doc: legacy as StoredDoc, ifMatch: _etag! }])).ok).toBe(true);
  return instance;
}

describe("a tenant an operator assigned another instance", () => {
  it("moves at its next publish: everything it held on the old instance — its keys' subscriptions too — goes, the new one gets everything, and the keys are sent again", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, first.revision!.id, "c")).toBe("published");
    t.subscribe("aigov-k-key_1");
    expect([...t.held("default").keys()].sort()).toEqual(["namedValue:aigov-k-live", "namedValue:aigov-k-setting", "subscription:aigov-k-key_1"]);

    t.assign("iso");
    // Nothing changed in the registry: a publish is still needed, since the new instance holds nothing.
    const moved = await t.service.publish(t.ctx, {});
    expect(moved.revision).toBeDefined();
    expect(await t.service.applier.apply(t.tenantId, moved.revision!.id, "c")).toBe("published");
    expect([...t.held("default").keys()]).toEqual([]);
    expect([...t.held("iso").keys()].sort()).toEqual(["namedValue:aigov-k-live", "namedValue:aigov-k-setting"]);
    expect(t.resent()).toBe(1);

    // Settled there: the next publish changes only what changed, on the new instance alone.
    t.registry.setting = "S2";
    const next = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, next.revision!.id, "c")).toBe("published");
    expect((t.held("iso").get("namedValue:aigov-k-setting") as { value?: string }).value).toBe("S2");
    expect([...t.held("default").keys()]).toEqual([]);
    expect(t.resent()).toBe(1);
  });

  it("a drain longer than one call goes on in the next (the apply's slices), then the publish: nothing is sent to the new instance before the old one is empty", async () => {
    const t = tenant({ sliceMs: 0 }); // one write or delete per call
    t.registry.extra = 2;
    const first = await t.service.publish(t.ctx, {});
    await stepped(t, first.revision!.id);
    t.subscribe("aigov-k-key_9");
    expect(t.held("default").size).toBe(5);
    t.assign("iso");
    const moved = await t.service.publish(t.ctx, {});
    const seen: [number, number][] = [];
    for (let i = 0; i < 50; i++) {
      const r = await t.service.applier.apply(t.tenantId, moved.revision!.id, "c");
      seen.push([t.held("default").size, t.held("iso").size]);
      if (r !== "continue") {
        expect(r).toBe("published");
        break;
      }
    }
    expect(seen.at(-1)).toEqual([0, 4]);
    // The old instance was emptied one delete at a time before the first write reached the new one.
    const firstWrite = seen.findIndex(([, iso]) => iso > 0);
    expect(seen.slice(0, firstWrite).map(([old]) => old)).toEqual([4, 3, 2, 1, 0].slice(0, firstWrite));
    expect(seen[firstWrite]![0]).toBe(0);
    expect(t.resent()).toBe(1);
  });

  it("a state from before instances were recorded describes the one other instance the tenant wrote to: the next publish moves it", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, first.revision!.id, "c")).toBe("published");
    t.subscribe("aigov-k-key_1");
    // As written before the instance was recorded.
    expect(await forgetInstance(t)).toBe("default");
    // Reassigned before any publish since the upgrade; a key sync has already reserved the key on the new instance.
    t.assign("iso");
    t.reserved(["default", "iso"]);
    const moved = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, moved.revision!.id, "c")).toBe("published");
    expect([...t.held("default").keys()]).toEqual([]);
    expect([...t.held("iso").keys()].sort()).toEqual(["namedValue:aigov-k-live", "namedValue:aigov-k-setting"]);
    expect(t.resent()).toBe(1);
    expect((await t.store.read<StoredDoc & { instance?: string }>({ tenantId: t.tenantId, scopeId: "_tenant" }, "gateway.state"))!.instance).toBe("iso");
  });

  it("a state from before instances were recorded, of a tenant that wrote only where it is assigned: no move", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, first.revision!.id, "c")).toBe("published");
    await forgetInstance(t);
    t.registry.setting = "S3";
    const next = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, next.revision!.id, "c")).toBe("published");
    expect((t.held("default").get("namedValue:aigov-k-setting") as { value?: string }).value).toBe("S3");
    expect(t.resent()).toBe(0);
  });

  it("a move whose new instance did not answer after the drain is finished by the retry: the drain is recorded, so the retry sends everything there", async () => {
    const t = tenant();
    const first = await t.service.publish(t.ctx, {});
    expect(await t.service.applier.apply(t.tenantId, first.revision!.id, "c")).toBe("published");
    t.assign("iso");
    t.registry.setting = "S1";
    const moved = await t.service.publish(t.ctx, {});
    t.unreachable(true);
    await expect(t.service.applier.apply(t.tenantId, moved.revision!.id, "c")).rejects.toThrow(/did not answer/);
    expect([t.held("default").size, t.held("iso").size]).toEqual([0, 0]);
    t.unreachable(false);
    expect(await t.service.applier.apply(t.tenantId, moved.revision!.id, "c")).toBe("published");
    expect([t.held("default").size, t.held("iso").size]).toEqual([0, 2]);
  });
});
