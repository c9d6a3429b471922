// A service's result in an HTTP handler and the driver it asks for: a start that fails never fails the
// answer (the change is stored; the subject's sweep starts the driver), so nothing the answer carries is lost.
import { describe, expect, it } from "vitest";
import type { DriveRequest } from "../../src/domain/kernel/drive.js";
import { driven } from "../../src/workflows/drive.js";
import { failureReason } from "../../src/workflows/failure.js";

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

describe("failureReason", () => {
  it("keeps the reason of a failed activity and drops the details durable-functions appends (its stack trace)", () => {
    // How durable-functions hands a failed task to the orchestrator: `${Reason} \n ${Details}`.
    const failed = new Error("Activity function 'agentSyncPage' failed: the cloud answered 503 \n Error: the cloud answered 503\n    at listPage (/home/site/wwwroot/dist/app/app.js:1234:5)");
    expect(failureReason(failed)).toBe("Activity function 'agentSyncPage' failed: the cloud answered 503");
    expect(failureReason("plain text")).toBe("plain text");
    expect(failureReason(new Error(`\n  ${"x".repeat(600)}`), 500)).toBe(`${"x".repeat(499)}…`);
  });
});
