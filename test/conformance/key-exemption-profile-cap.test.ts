/**
 * Conformance: a key-scope exemption never takes its project past the cap on key tiers (ADR 007, ADR 008).
 *
 * A key exemption becomes an exemption key tier offered by the key's project, and that tier stays compiled
 * until the key's subscription has left it. A project's gateway document holds at most MAX_PROJECT_KEY_TIERS
 * tiers; past it the publish sets the whole project aside (every key of it off the gateway). So an exemption
 * holds its place from its request on: a key exemption in a full project is refused at request (409
 * key_profiles_exhausted), and a key profile that would take the place of an approved exemption's tier is
 * refused too — the project keeps publishing, its other keys keep working, the exempted key keeps its relaxation.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";
import { Governed, keyExemptionSpec, LIMITED } from "../support/governed.js";
import { reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-exm-cap");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());

async function quiet(): Promise<void> {
  await until(async () => {
    await g.t.app.host.invokeTimer("gatewayPublishSweep");
    await g.t.app.host.invokeTimer("keyLifecycle");
    return (await g.admin.policy.revisions({ maxPageSize: 50 })).items.every((r) => r.status !== "pending") ? true : undefined;
  }, "no revision pending", 180_000, 500);
}

describe("conformance: key exemptions and the cap on a project's key tiers", () => {
  it("an approved key exemption holds its tier's place: the project never leaves the gateway", async () => {
    const p = await g.project("exm-cap", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    await g.model(p.id, "gpt-4o-mini");
    await g.publish("baseline");
    const k = await g.key(dev, p.id, { name: "exempted" });
    const other = await g.key(dev, p.id, { name: "other", limits: { tokensPerMinute: 1999 } });
    // MAX - 1 distinct profiles in all (the exempted key, with no scopes or limits, has none of its own):
    // room for one more tier.
    for (let i = 0; i < MAX_PROJECT_KEY_TIERS - 2; i++) await dev.keys.create(p.id, { name: `filler ${i}`, limits: { tokensPerMinute: 2000 + i } });
    await quiet();
    await g.publish("one place left");
    expect(await g.burst(p.id, k.key)).toEqual(LIMITED);

    // The exemption takes the last place.
    await g.exemptKey(dev, p.id, k.id, 1000);
    await until(async () => {
      await g.t.app.host.invokeTimer("keyLifecycle");
      await g.settle();
      return (await g.burst(p.id, k.key)).every((s) => s === 200) ? true : undefined;
    }, "the exempted key on its exemption tier");
    const before = await g.lastRevision();

    // A new profile would be the 41st tier: refused, as is another key exemption in the full project.
    const tooMany = await reasonOf(dev.keys.create(p.id, { name: "one too many", limits: { tokensPerMinute: 3000 } }));
    const anotherExemption = await reasonOf(dev.exemptions.request(keyExemptionSpec(p.id, other.id)));
    // A key with an existing profile is still made.
    expect((await dev.keys.create(p.id, { name: "same as filler", limits: { tokensPerMinute: 2000 } })).id).toMatch(/^key_/);

    await quiet();
    await g.publish("after");
    // No publish set the project aside: it is at the gateway, its other keys work with their limits and
    // the exempted key with its relaxation.
    expect(await g.isolatedSince(before)).toEqual([]);
    expect(await g.burst(p.id, other.key)).toEqual(LIMITED);
    expect(await g.burst(p.id, k.key)).toEqual([200, 200, 200, 200]);
    expect(tooMany).toBe("409 key_profiles_exhausted");
    expect(anotherExemption).toBe("409 key_profiles_exhausted");
  }, 600_000);
});
