// How long one new event takes for an instance with a long history (replay is O(history) per
// episode by nature; the engine must not add more). Prints the numbers for the report.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DurableTestHost, startDurableTestHost } from "./support.js";

let mem: DurableTestHost;

beforeAll(async () => {
  mem = await startDurableTestHost({ selfCheck: false, log: () => undefined });
});

afterAll(async () => {
  await mem?.close();
});

async function until(probe: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setImmediate(r));
  }
}

interface Measure {
  /** History length when the measured events arrived. */
  historyLength: number;
  /** raiseEvent() call until the episode is committed (and persisted, with a dataDir). */
  endToEndMs: number;
  /** The engine's own measure of the episode (invoke + bookkeeping + persist). */
  episodeMs: number;
}

/** Grows a "ticker" instance to `target` history events, then times `samples` single events. */
async function measure(t: DurableTestHost, id: string, target: number, samples: number): Promise<Measure> {
  const e = t.engine;
  const len = (): number => e.getStatus(id)?.historyLength ?? 0;
  const missing = Math.max(0, Math.ceil((target - len()) / 3));
  for (let i = 0; i < missing; i++) await e.raiseEvent(id, "tick", i);
  await until(() => len() >= target);
  const historyLength = len();
  const endToEnd: number[] = [];
  const episode: number[] = [];
  for (let i = 0; i < samples; i++) {
    const before = e.stats().episodes;
    const t0 = performance.now();
    await e.raiseEvent(id, "tick", i);
    await until(() => e.stats().episodes > before); // counted once the episode is committed (and persisted)
    endToEnd.push(performance.now() - t0);
    episode.push(e.stats().lastEpisodeMs);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return { historyLength, endToEndMs: median(endToEnd), episodeMs: median(episode) };
}

describe("cost of one new event", () => {
  it("on a 1,000-event history (memory only and persisted)", async () => {
    const results: Record<string, Measure> = {};
    const id = "perf-memory";
    await mem.engine.startNew("ticker", { instanceId: id });
    await mem.engine.waitForStatus(id, ["Running"], 5000);
    results["memory, ~100 events"] = await measure(mem, id, 100, 15);
    results["memory, ~1,000 events"] = await measure(mem, id, 1000, 15);

    const dataDir = mkdtempSync(path.join(tmpdir(), "aigov-durable-perf-"));
    // A second engine+host in the same process, persisting to disk.
    const disk = await startDurableTestHost({ selfCheck: false, dataDir, log: () => undefined });
    try {
      const pid = "perf-disk";
      await disk.engine.startNew("ticker", { instanceId: pid });
      await disk.engine.waitForStatus(pid, ["Running"], 5000);
      results["persisted, ~1,000 events"] = await measure(disk, pid, 1000, 15);
      await disk.engine.raiseEvent(pid, "tick", "stop");
      const done = await disk.engine.waitForStatus(pid, ["Completed"], 5000);
      expect(done.output).toBeGreaterThan(300);
    } finally {
      await disk.close();
    }

    console.log(
      "durable engine: time to process one new event (median of 15)\n" +
        Object.entries(results)
          .map(([k, m]) => `  ${k.padEnd(26)} history=${m.historyLength}  end-to-end=${m.endToEndMs.toFixed(2)} ms  episode=${m.episodeMs.toFixed(2)} ms`)
          .join("\n"),
    );
    const big = results["memory, ~1,000 events"] as Measure;
    expect(big.historyLength).toBeGreaterThanOrEqual(1000);
    // Generous bound: a regression to quadratic bookkeeping would be far above this.
    expect(big.episodeMs).toBeLessThan(100);
  }, 60_000);
});
