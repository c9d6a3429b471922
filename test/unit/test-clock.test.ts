import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startApp } from "../../src/local-app/main.js";
import { TEST_CLOCK_FILE, loadTestClock } from "../../src/local-app/test-clock.js";

describe("the test clock of a child process (AIGOV_LOCAL_TEST_CLOCK=1)", () => {
  it("runs with the real time plus an offset that only moves forward, and a restarted process goes on from it", () => {
    const dir = mkdtempSync(join(tmpdir(), "aigov-test-clock-"));
    const clock = loadTestClock(dir);
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(1000);
    clock.advance(3_600_000);
    expect(clock.now() - Date.now()).toBeGreaterThan(3_599_000);
    expect(JSON.parse(readFileSync(join(dir, TEST_CLOCK_FILE), "utf8"))).toEqual({ offsetMs: 3_600_000 });
    // The next process on the same data directory (e.g. after a SIGKILL) starts where this one was.
    const again = loadTestClock(dir);
    expect(again.offsetMs()).toBe(3_600_000);
    for (const bad of [-1, 1.5, Number.NaN, 11 * 366 * 86_400_000]) expect(() => again.advance(bad), String(bad)).toThrow(RangeError);
    expect(again.offsetMs()).toBe(3_600_000);
    writeFileSync(join(dir, TEST_CLOCK_FILE), JSON.stringify({ offsetMs: -5 }));
    expect(() => loadTestClock(dir)).toThrow(/offsetMs/);
  });

  it("is refused outside local mode: the app does not start", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "aigov-test-clock-"));
    const env: NodeJS.ProcessEnv = { AIGOV_LOCAL_TEST_CLOCK: "1", COSMOS_ENDPOINT: "https://example.documents.azure.com", AUTH_MODE: "entra" };
    await expect(startApp({ port: 0, dataDir, env, quiet: true, gatewayPort: false, backendsPort: false })).rejects.toThrow(/local mode only/);
  });
});
