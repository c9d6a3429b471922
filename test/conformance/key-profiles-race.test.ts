/**
 * Conformance (ADR 008): a project's key tiers — distinct key profiles, and a place for each key with an open
 * key exemption — never go past the most its gateway document holds (MAX_PROJECT_KEY_TIERS), whatever is
 * asked at the same instant. Of several requests racing for the last place (key creates with new profiles,
 * a key create and a key exemption request), one takes it and the others are refused (409
 * `key_profiles_exhausted`); the stored keys and exemptions hold no more places than the cap.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { overrideServices } from "../../src/app/services.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";
import type { BatchOp } from "../../src/ports/store.js";
import { reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";
import { Governed, keyExemptionSpec } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-kp-race");
  dev = await g.as("dora", ["Developer"]);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

/** Runs `then` once, just before the first batch that creates a document `matching` (the store seam): forces an interleaving, not by timing. */
async function whileHeld<T>(matching: (doc: Record<string, unknown>) => boolean, then: () => Promise<T>, run: () => Promise<string>): Promise<{ outcome: string; inBetween: T }> {
  let inBetween: { value: T } | undefined;
  overrideServices({
    beforeBatch: async (_p, ops: readonly BatchOp[]) => {
      if (inBetween || !ops.some((o) => o.kind === "create" && matching(o.doc))) return;
      inBetween = { value: undefined as T };
      inBetween.value = await then();
    },
  });
  try {
    const outcome = await run();
    expect(inBetween).toBeDefined();
    return { outcome, inBetween: inBetween!.value };
  } finally {
    overrideServices({});
  }
}

const settings = { tokens: { perMinute: { limit: 20, per: "key" } } };

/** The places the project's stored keys and open key exemptions take: distinct profiles, and one per key with an open key exemption. */
async function placesTaken(projectId: string): Promise<number> {
  const keys = (await g.admin.keys.list(projectId, { maxPageSize: 100 })).items;
  const profiles = new Set(keys.map((k) => k.gateway.profile).filter((p) => p !== "project"));
  const exempted = new Set(
    (await g.admin.exemptions.list({ projectId, maxPageSize: 100 })).items.filter((e) => e.scope.level === "key" && ["requested", "approved", "active"].includes(e.status)).map((e) => (e.scope as { keyId: string }).keyId),
  );
  return profiles.size + exempted.size;
}

/** A project with room for exactly one more key tier (MAX - 1 distinct profiles), and `plain` keys without a profile. */
async function almostFull(name: string, plain = 0): Promise<{ projectId: string; plainKeys: string[] }> {
  const p = await g.project(name, { settings });
  const plainKeys = [];
  for (let i = 0; i < plain; i++) plainKeys.push((await dev.keys.create(p.id, { name: `plain ${i}` })).id);
  for (let i = 0; i < MAX_PROJECT_KEY_TIERS - 1; i++) await dev.keys.create(p.id, { name: `filler ${i}`, limits: { tokensPerMinute: 2000 + i } });
  expect(await placesTaken(p.id)).toBe(MAX_PROJECT_KEY_TIERS - 1);
  return { projectId: p.id, plainKeys };
}

describe("conformance: the last key tier of a project, asked for at the same instant", () => {
  it("by key creates with new profiles: one is made, the others are refused, and the project holds no more than its cap", async () => {
    const { projectId } = await almostFull("kp-race-keys");
    const outcomes = await Promise.all([0, 1, 2, 3].map((i) => reasonOf(dev.keys.create(projectId, { name: `racer ${i}`, limits: { tokensPerMinute: 5000 + i } }))));
    expect(outcomes.filter((o) => o === "200")).toHaveLength(1);
    expect(outcomes.filter((o) => o !== "200")).toEqual(["409 key_profiles_exhausted", "409 key_profiles_exhausted", "409 key_profiles_exhausted"]);
    expect(await placesTaken(projectId)).toBe(MAX_PROJECT_KEY_TIERS);
    // A key with an existing profile still fits.
    expect(await reasonOf(dev.keys.create(projectId, { name: "reuse", limits: { tokensPerMinute: 2000 } }))).toBe("200");
  }, 300_000);

  it("by a key create and a key exemption request: one takes it, the other is refused", async () => {
    const { projectId, plainKeys } = await almostFull("kp-race-mixed", 1);
    const [created, requested] = await Promise.all([reasonOf(dev.keys.create(projectId, { name: "racer", limits: { tokensPerMinute: 7000 } })), reasonOf(dev.exemptions.request(keyExemptionSpec(projectId, plainKeys[0]!)))]);
    expect([created, requested].filter((o) => o === "200")).toHaveLength(1);
    expect([created, requested].filter((o) => o !== "200")).toEqual(["409 key_profiles_exhausted"]);
    expect(await placesTaken(projectId)).toBe(MAX_PROJECT_KEY_TIERS);
  }, 300_000);

  it("a key exemption requested while a key create with a new profile is being written: the key is counted again and refused", async () => {
    const { projectId, plainKeys } = await almostFull("kp-race-x-first", 1);
    const { outcome, inBetween } = await whileHeld(
      (doc) => doc.docType === "virtualKey" && doc.name === "racer",
      () => reasonOf(dev.exemptions.request(keyExemptionSpec(projectId, plainKeys[0]!))),
      () => reasonOf(dev.keys.create(projectId, { name: "racer", limits: { tokensPerMinute: 7000 } })),
    );
    expect(inBetween).toBe("200");
    expect(outcome).toBe("409 key_profiles_exhausted");
    expect((await g.admin.keys.list(projectId, { maxPageSize: 100 })).items.map((k) => k.name)).not.toContain("racer");
    expect(await placesTaken(projectId)).toBe(MAX_PROJECT_KEY_TIERS);
  }, 300_000);

  it("a key created with a new profile while a key exemption request is being written: the exemption's place is held, the key is refused", async () => {
    const { projectId, plainKeys } = await almostFull("kp-race-k-first", 1);
    const { outcome, inBetween } = await whileHeld(
      (doc) => doc.docType === "exemption",
      () => reasonOf(dev.keys.create(projectId, { name: "racer", limits: { tokensPerMinute: 7000 } })),
      () => reasonOf(dev.exemptions.request(keyExemptionSpec(projectId, plainKeys[0]!))),
    );
    expect(inBetween).toBe("409 key_profiles_exhausted");
    expect(outcome).toBe("200");
    expect(await placesTaken(projectId)).toBe(MAX_PROJECT_KEY_TIERS);
  }, 300_000);

  it("a key exemption requested while an approved share is being made: the share is counted again and not made", async () => {
    const { projectId, plainKeys } = await almostFull("kp-race-share", 2);
    const there = await g.project("kp-race-share-there", { settings });
    const [keyId, exempted] = plainKeys as [string, string];
    // Shared, the plain key gets a profile of its own: the project's last place.
    const { approval } = await dev.keys.share(projectId, keyId, { projectId: there.id, justification: "evaluation" }, (await dev.keys.get(projectId, keyId)).etag);
    let racer: string | undefined;
    overrideServices({
      beforeBatch: async (_p, ops: readonly BatchOp[]) => {
        const settling = ops.some((o) => o.kind === "replace" && o.doc.id === keyId && (o.doc.shares as { status: string }[] | undefined)?.some((x) => x.status === "active"));
        if (racer !== undefined || !settling) return;
        racer = "";
        racer = await reasonOf(dev.exemptions.request(keyExemptionSpec(projectId, exempted)));
      },
    });
    try {
      await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
      const settled = await until(async () => {
        const status = (await g.admin.keys.get(projectId, keyId)).shares.find((x) => x.projectId === there.id)?.status;
        return status === "active" || status === "rejected" ? status : undefined;
      }, "the share settled");
      expect(racer).toBe("200");
      expect(settled).toBe("rejected");
    } finally {
      overrideServices({});
    }
    expect(await placesTaken(projectId)).toBe(MAX_PROJECT_KEY_TIERS);
  }, 300_000);
});
