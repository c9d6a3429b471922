// A service's result in an HTTP handler and the driver it asks for: a start that fails never fails the
// answer (the change is stored; the subject's sweep starts the driver), so nothing the answer carries is lost.
import { describe, expect, it } from "vitest";
import type { DriveRequest } from "../../src/domain/kernel/drive.js";
import { driven } from "../../src/workflows/drive.js";

const drive: DriveRequest = { orchestrator: "keyRotationOrchestrator", instanceId: "rot_1", input: { keyId: "key_1" } };

describe("driven", () => {
  it("starts the driver the result asks for and answers with the rest", async () => {
    const started: DriveRequest[] = [];
    const warnings: unknown[] = [];
    const body = await driven({ warn: (...a: unknown[]) => void warnings.push(a) }, { key: "aigw_secret", drive }, async (d) => void started.push(d));
    expect(body).toEqual({ key: "aigw_secret" });
    expect(started).toEqual([drive]);
    expect(warnings).toEqual([]);
  });

  it("answers with the result when the start fails (a rotated key's new secret is in it), and says which driver its sweep must start", async () => {
    const warnings: string[] = [];
    const body = await driven({ warn: (m: unknown) => void warnings.push(String(m)) }, { key: "aigw_secret", drive }, async () => {
      throw new Error("the durable task hub did not answer");
    });
    expect(body).toEqual({ key: "aigw_secret" });
    expect(warnings).toEqual(["keyRotationOrchestrator rot_1 was not started (the durable task hub did not answer); its sweep starts it"]);
  });

  it("starts nothing when the result asks for nothing", async () => {
    let calls = 0;
    expect(await driven({ warn: () => undefined }, { ok: true }, async () => void calls++)).toEqual({ ok: true });
    expect(calls).toBe(0);
  });
});
