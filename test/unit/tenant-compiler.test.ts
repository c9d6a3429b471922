// What a publish compiles from a registry snapshot (a rollback's target, a system publish's base): the
// snapshot's configuration, under the gateway key the tenant holds now.
import { describe, expect, it } from "vitest";
import { TenantCompiler } from "../../src/domain/policy/preview.js";
import type { RegistrySnapshot } from "../../src/domain/publishing/registry.js";
import { snapshotFrom, snapshotParts } from "../../src/domain/publishing/registry.js";
import { compile } from "../../src/policy/compile.js";
import { gatewayNames, tenantGatewayKey } from "../../src/policy/names.js";
import { model, project } from "../policy/fixtures.js";

describe("TenantCompiler.inputFrom", () => {
  it("names every artifact with the key assigned to the tenant now, never the one a stored snapshot was compiled under", async () => {
    let assigned: string | undefined;
    // Only the snapshot is compiled: the registry's live sources (projects, settings) are not read.
    const compiler = new TenantCompiler(undefined as never, [], undefined as never, undefined, undefined, () => (assigned ? { gatewayKey: assigned } : {}));
    // A tenant part stored before keys left snapshots still carries the key it was compiled under.
    const stored = snapshotParts({ tenantId: "t1", settings: {}, services: {}, projects: [project("prj_a", [model("gpt4o", "gpt-4o")])] } as RegistrySnapshot);
    const tenantHash = stored.entries.find(([k]) => k === "tenant")![1];
    stored.parts.set(tenantHash, { ...stored.parts.get(tenantHash)!, gatewayKey: "oldkey0000" } as never);
    const snapshot = snapshotFrom("t1", stored.entries, stored.parts);

    // (compileRegistry compiles inputFrom's input; the compiler is loaded lazily there, so it is called here.)
    const idsUnder = async () => compile(await compiler.inputFrom(snapshot)).artifacts.map((a) => JSON.stringify(a));
    const derived = await idsUnder();
    expect(derived.length).toBeGreaterThan(0);
    expect(derived.join()).toContain(gatewayNames("t1").prefix);
    expect(derived.join()).not.toContain("oldkey0000");

    assigned = "newkey0000";
    const moved = await idsUnder();
    expect(moved.join()).toContain(gatewayNames("t1", "newkey0000").prefix);
    expect(moved.join()).not.toContain(tenantGatewayKey("t1"));
    expect(moved.join()).not.toContain("oldkey0000");
  });
});

