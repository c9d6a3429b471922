/**
 * Conformance: key-scope exemptions are judged and counted as strictly as the others (ADR 007, ADR 008).
 *
 * - A key exemption that relaxes nothing for its key — a limit at or below what binds it (its own limit, the
 *   project's per-key one, the tighter of the two: what the compiler's exemption tier replaces), or a limit
 *   the project counts per project (a shared counter no key tier relaxes) — is refused when requested (400
 *   `relaxation_not_looser` on `body.relaxation`), as project and model ones are.
 * - Key exemptions requested at the same moment never both take the last place among a project's key tiers:
 *   of several, one is written and the others are refused (409 `key_profiles_exhausted`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";
import { Governed, keyExemptionSpec, LIMITED } from "../support/governed.js";
import { reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-kx-judge");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());

const fieldsOf = (p: Promise<unknown>) => p.then(() => [], (e: unknown) => (e instanceof ApiError ? (e.problem?.errors ?? []).map((x) => x.field) : [String(e)]));

describe("conformance: a key exemption must relax what binds its key", () => {
  it("a limit at or below the key's binding limit (its own, or the project's per-key one) is refused; above it, it is requested", async () => {
    const p = await g.project("kx-judge", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    const plain = await dev.keys.create(p.id, { name: "plain" });
    const own = await dev.keys.create(p.id, { name: "own limit", limits: { tokensPerMinute: 10 } });

    // The project's 20 per key binds the plain key: 20 and below relax nothing.
    expect(await reasonOf(dev.exemptions.request(keyExemptionSpec(p.id, plain.id, 20)))).toBe("400 relaxation_not_looser");
    expect(await reasonOf(dev.exemptions.request(keyExemptionSpec(p.id, plain.id, 15)))).toBe("400 relaxation_not_looser");
    expect(await fieldsOf(dev.exemptions.request(keyExemptionSpec(p.id, plain.id, 5)))).toEqual(["body.relaxation"]);
    // The key's own 10 binds it (tighter than the project's 20): 10 relaxes nothing, 15 does.
    expect(await reasonOf(dev.exemptions.request(keyExemptionSpec(p.id, own.id, 10)))).toBe("400 relaxation_not_looser");
    const fifteen = await dev.exemptions.request(keyExemptionSpec(p.id, own.id, 15));
    expect(fifteen.status).toBe("requested");
    expect(fifteen.latent).toBeUndefined();
    const thousand = await dev.exemptions.request(keyExemptionSpec(p.id, plain.id, 1000));
    expect(thousand.status).toBe("requested");

    // Nothing was written for the refused requests.
    const open = (await g.admin.exemptions.list({ projectId: p.id, maxPageSize: 50 })).items.map((e) => e.id).sort();
    expect(open).toEqual([fifteen.id, thousand.id].sort());
  }, 120_000);

  it("a limit the project counts per project is a shared counter no key tier relaxes: refused", async () => {
    const p = await g.project("kx-shared", { settings: { tokens: { perMinute: { limit: 20, per: "project" } } } });
    const k = await dev.keys.create(p.id, { name: "k" });
    expect(await reasonOf(dev.exemptions.request(keyExemptionSpec(p.id, k.id, 1000)))).toBe("400 relaxation_not_looser");
  }, 60_000);
});

describe("conformance: key exemptions requested at the same moment", () => {
  it("never both take the last place among the project's key tiers", async () => {
    const r = await Governed.start("t-kx-race", g.t);
    const rdev = await r.as("dora", ["Developer"]);
    const p = await r.project("kx-race", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    // Four keys without a profile of their own, and MAX - 1 distinct profiles: room for one tier more.
    const keys = [];
    for (let i = 0; i < 4; i++) keys.push(await rdev.keys.create(p.id, { name: `plain ${i}` }));
    for (let i = 0; i < MAX_PROJECT_KEY_TIERS - 1; i++) await rdev.keys.create(p.id, { name: `filler ${i}`, limits: { tokensPerMinute: 2000 + i } });

    const outcomes = await Promise.all(keys.map((k) => reasonOf(rdev.exemptions.request(keyExemptionSpec(p.id, k.id, 1000)))));
    expect(outcomes.filter((o) => o === "200")).toHaveLength(1);
    expect(outcomes.filter((o) => o !== "200")).toEqual(["409 key_profiles_exhausted", "409 key_profiles_exhausted", "409 key_profiles_exhausted"]);
    // One exemption was written; the refused requests' approvals ask nobody to decide.
    const written = (await r.admin.exemptions.list({ projectId: p.id, maxPageSize: 50 })).items;
    expect(written.map((e) => e.status)).toEqual(["requested"]);
    const pending = (await r.admin.approvals.list({ status: "pending", maxPageSize: 50 })).items.filter((a) => a.subject.resourceType === "exemption");
    expect(pending.map((a) => a.subject.resourceId)).toEqual([written[0]!.id]);
  }, 300_000);
});

describe("conformance: the tenant's open key exemptions, requested at the same moment", () => {
  it("never go past the most the tenant may have open (10)", async () => {
    const r = await Governed.start("t-kx-many", g.t);
    const rdev = await r.as("dora", ["Developer"]);
    const p = await r.project("kx-many", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    const keys = [];
    for (let i = 0; i < 12; i++) keys.push(await rdev.keys.create(p.id, { name: `k ${i}` }));
    const outcomes = await Promise.all(keys.map((k) => reasonOf(rdev.exemptions.request(keyExemptionSpec(p.id, k.id, 1000)))));
    expect(outcomes.filter((o) => o === "200")).toHaveLength(10);
    expect(outcomes.filter((o) => o !== "200")).toEqual(["400 too_many_key_exemptions", "400 too_many_key_exemptions"]);
    expect((await r.admin.exemptions.list({ projectId: p.id, maxPageSize: 50 })).items).toHaveLength(10);
  }, 120_000);
});

describe("conformance: a key exemption the compiler cannot apply says so", () => {
  it("in a project whose key tiers were full before exemptions held places: in force, not applied, and why", async () => {
    const r = await Governed.start("t-kx-full", g.t);
    const rdev = await r.as("dora", ["Developer"]);
    const settings = { tokens: { perMinute: { limit: 20, per: "key" } } };
    const room = await r.project("kx-room", { settings });
    const full = await r.project("kx-full", { settings });
    await r.model(room.id, "gpt-4o-mini");
    await r.model(full.id, "gpt-4o-mini");
    await r.publish("baseline");
    const a = await r.key(rdev, room.id, { name: "a" });
    const b = await r.key(rdev, room.id, { name: "b" });
    const k = await r.key(rdev, full.id, { name: "k" });
    // The full project: as many distinct profiles as its gateway document holds.
    for (let i = 0; i < MAX_PROJECT_KEY_TIERS; i++) await rdev.keys.create(full.id, { name: `filler ${i}`, limits: { tokensPerMinute: 2000 + i } });
    const quiet = () =>
      until(async () => {
        await r.t.app.host.invokeTimer("gatewayPublishSweep");
        await r.t.app.host.invokeTimer("keyLifecycle");
        return (await r.admin.policy.revisions({ maxPageSize: 50 })).items.every((x) => x.status !== "pending") ? true : undefined;
      }, "no revision pending", 180_000, 500);
    await quiet();
    await r.publish("full");
    expect(await reasonOf(rdev.exemptions.request(keyExemptionSpec(full.id, k.id, 1000)))).toBe("409 key_profiles_exhausted");

    // Two key exemptions in force in the project with room; one of them is turned into an exemption of the
    // full project's key, as one requested before exemptions held their places would be.
    const approved = async (keyId: string) => {
      const requested = await rdev.exemptions.request(keyExemptionSpec(room.id, keyId, 1000));
      const approval = await r.admin.approvals.get(requested.approvalId);
      await r.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
      await until(async () => ((await r.admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
      return requested.id;
    };
    const applied = await approved(a.id);
    const legacy = await approved(b.id);
    const container = r.t.container();
    const { resources } = await container.items.query<Record<string, unknown>>({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: legacy }] }).fetchAll();
    const { _rid: _r, _self: _s, _etag: _e, _attachments: _a, _ts: _t, ...doc } = resources[0]!;
    await container.items.upsert({ ...doc, projectId: full.id, scope: { level: "key", projectId: full.id, keyId: k.id } });
    await quiet();
    await r.publish("after");
    await quiet();
    await r.settle();

    // The gateway: the applied one relaxes its key; the other's key keeps its own limits (fail closed).
    await until(async () => {
      await r.t.app.host.invokeTimer("keyLifecycle");
      await r.settle();
      return (await r.burst(room.id, a.key)).every((x) => x === 200) ? true : undefined;
    }, "the applied exemption's key on its exemption tier");
    expect(await r.burst(full.id, k.key)).toEqual(LIMITED);
    // The API says which is which, and why.
    const read = await r.admin.exemptions.get(legacy);
    expect(read.status).toBe("active");
    expect(read.gateway?.applied).toBe(false);
    expect(read.gateway?.why).toContain(`already offers ${MAX_PROJECT_KEY_TIERS} key tiers`);
    expect((await r.admin.exemptions.get(applied)).gateway).toEqual({ applied: true });
    const listed = (await r.admin.exemptions.list({ projectId: full.id, maxPageSize: 50 })).items;
    expect(listed.map((e) => [e.id, e.gateway?.applied])).toEqual([[legacy, false]]);

    // The sweep records it once: a timeline entry, an audit record and an event (run twice: nothing more).
    await r.t.app.host.invokeTimer("exemptionSweep");
    await r.t.app.host.invokeTimer("exemptionSweep");
    const recorded = await r.admin.exemptions.get(legacy);
    expect(recorded.timeline.filter((x) => x.type === "notApplied").map((x) => x.detail)).toEqual([read.gateway?.why]);
    expect((await r.admin.exemptions.get(applied)).timeline.some((x) => x.type === "notApplied")).toBe(false);
    const actions = (await r.admin.audit.list({ resource: `/exemptions/${legacy}` })).items.map((x) => x.action);
    expect(actions.filter((a) => a === "exemption.gateway.notApplied")).toHaveLength(1);
    await r.t.relay();
    const events = r.t.events().filter((e) => e.subject.endsWith(`/exemptions/${legacy}`) && e.type === "aigov.exemption.notapplied.v1");
    expect(events).toHaveLength(1);
    expect((events[0]!.data as { why?: string }).why).toBe(read.gateway?.why);
  }, 600_000);
});
