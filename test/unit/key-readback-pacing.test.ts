/**
 * The lifecycle job's read-back of key subscriptions is bounded: at most `readBacksPerRun` keys a run, going
 * on from where the last run stopped, so every key is read within ceil(keys / readBacksPerRun) runs.
 */
import { describe, expect, it } from "vitest";
import type { KeyGatewaySync } from "../../src/domain/keys/gateway-sync.js";
import { KeyLifecycle } from "../../src/domain/keys/lifecycle.js";

const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe("key subscription read-back pacing", () => {
  it("reads at most the cap a run and every key within ceil(keys / cap) runs, once each", async () => {
    const read: string[] = [];
    // k3 was edited at the gateway; a read-back that finds it drifted sends it anew, so a later read finds it in sync.
    const edited = new Set(["k3"]);
    const sync = { verify: async (_t: string, _p: string, id: string) => (read.push(id), edited.delete(id) ? "drifted" : "inSync") } as unknown as KeyGatewaySync;
    const lifecycle = new KeyLifecycle(undefined as never, undefined as never, sync, undefined as never, undefined as never, undefined as never, 1, 4);
    const keys = Array.from({ length: 10 }, (_, i) => ({ tenantId: i % 2 ? "t-a" : "t-b", projectId: "p", id: `k${i}` }));
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await lifecycle.readBack(keys, "c", quiet));
    expect(runs.map((r) => r.readBacks)).toEqual([4, 4, 4]);
    expect(runs.reduce((n, r) => n + r.drifted, 0)).toBe(1);
    expect(read).toContain("k3");
    expect(new Set(read.slice(0, 10)).size).toBe(10);
    expect(new Set(read).size).toBe(10);
  });
});
