import { describe, expect, it } from "vitest";
import type { Exemption } from "../../src/domain/exemptions/schema.js";
import { evaluateGates, type GateDeps } from "../../src/domain/projects/gates.js";
import type { Project } from "../../src/domain/projects/schema.js";

const PROJECT = "prj_00000000000000000001";
const project = {
  id: PROJECT,
  tenantId: "t",
  name: "p",
  environment: "dev",
  owner: "olga",
  settings: { contentSafety: { enabled: true }, tokens: { perMinute: { limit: 1000 }, quota: { limit: 1_000_000 } } },
} as unknown as Project;
const exemption = (n: number, control: string, scope: Exemption["scope"], relaxation: Exemption["relaxation"] = { kind: "off" }) =>
  ({ id: `exm_${String(n).padStart(20, "0")}`, control, scope, relaxation, status: "active", expiresAt: "2027-01-01T00:00:00.000Z" }) as Exemption;
const deps = (inForce: Exemption[], tenant: GateDeps["tenantSettings"] = async () => ({})): GateDeps => ({ tenantSettings: tenant, exemptionsInForce: async () => inForce, liveKeys: async () => [], lastReviewCompletedAt: async () => undefined, models: async () => [] });
const gatesOf = async (inForce: Exemption[]) => Object.fromEntries((await evaluateGates(deps(inForce), project, "test", new Date())).gates.map((g) => [g.gate, [g.passed, g.detail]]));

describe("promotion gates judge the controls as the gateway applies them, exemptions in force included", () => {
  it("content safety switched off for the project, or the tenant, by an exemption fails its gate; a model's or a raised threshold does not", async () => {
    expect((await gatesOf([]))["contentSafety"]).toEqual([true, "content safety on (set at project)"]);
    expect((await gatesOf([exemption(1, "contentSafety", { level: "project", projectId: PROJECT })]))["contentSafety"]).toEqual([
      false,
      "content safety is switched off for the project by exemption exm_00000000000000000001 (until 2027-01-01T00:00:00.000Z)",
    ]);
    expect((await gatesOf([exemption(2, "contentSafety", { level: "tenant" })]))["contentSafety"]?.[0]).toBe(false);
    expect((await gatesOf([exemption(3, "contentSafety", { level: "model", projectId: PROJECT, modelId: "mdl_00000000000000000001" })]))["contentSafety"]?.[0]).toBe(true);
    expect((await gatesOf([exemption(4, "contentSafety", { level: "project", projectId: PROJECT }, { kind: "thresholds", categories: { Hate: 6 } })]))["contentSafety"]?.[0]).toBe(true);
  });

  it("limits: the gate fails only when every limit the project has is switched off", async () => {
    const perMinuteOff = exemption(5, "tokens.perMinute", { level: "project", projectId: PROJECT });
    expect((await gatesOf([perMinuteOff]))["limits"]).toEqual([true, "limits on: tokens.quota"]);
    const quotaOff = exemption(6, "tokens.quota", { level: "tenant" });
    expect((await gatesOf([perMinuteOff, quotaOff]))["limits"]).toEqual([
      false,
      "every limit the project has is switched off by an exemption: exm_00000000000000000005 (until 2027-01-01T00:00:00.000Z), exm_00000000000000000006 (until 2027-01-01T00:00:00.000Z)",
    ]);
    // A raised limit is still a limit.
    expect((await gatesOf([perMinuteOff, exemption(7, "tokens.quota", { level: "project", projectId: PROJECT }, { kind: "limit", value: 5_000_000 })]))["limits"]?.[0]).toBe(true);
  });

  it("settings stored before the tenant tightened count as the gateway holds them: at the tenant's floor", async () => {
    const loose = { ...project, settings: { contentSafety: { enabled: false }, tokens: { perMinute: { limit: 1000 } } } } as unknown as Project;
    const checklist = await evaluateGates(deps([], async () => ({ contentSafety: { enabled: true } })), loose, "test", new Date());
    expect(checklist.gates.find((g) => g.gate === "contentSafety")).toMatchObject({ passed: true });
  });
});
