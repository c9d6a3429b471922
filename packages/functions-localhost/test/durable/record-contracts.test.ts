// Regenerates test/durable/recorded/*.json (the histories the engine produced and what
// durable-functions answered in every episode). Skipped unless DURABLE_RECORD=1:
//   DURABLE_RECORD=1 npx vitest run test/durable/record-contracts.test.ts   (in packages/functions-localhost)
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { EpisodeRecord } from "../../src/durable/index.js";
import { compact } from "./contract-format.js";
import { startDurableTestHost } from "./support.js";

const OUT = path.join(__dirname, "recorded");

describe.skipIf(!process.env.DURABLE_RECORD)("record contract histories", () => {
  it("runs the scenarios and writes the recordings", async () => {
    const episodes: EpisodeRecord[] = [];
    const t = await startDurableTestHost({ onEpisode: (e) => episodes.push(e) });
    const req = createRequire(__filename);
    const recordedWith = {
      "durable-functions": (req("durable-functions/package.json") as { version: string }).version,
      "@azure/functions": (req("@azure/functions/package.json") as { version: string }).version,
    };
    const done = (id: string) => t.engine.waitForStatus(id, ["Completed", "Failed", "Terminated"], 10_000);
    try {
      const scenarios: { file: string; description: string; orchestrator: string; id: string; run: () => Promise<void> }[] = [
        {
          file: "approval-approved",
          description: "activity, durable timer, external event raced against a timeout timer (Task.any) and the timer cancelled",
          orchestrator: "approval",
          id: "contract-approval",
          run: async () => {
            await t.engine.startNew("approval", { instanceId: "contract-approval", input: { order: "C-1", items: 2, delayMs: 50, timeoutMs: 60_000 } });
            await waitCustom("contract-approval", "waiting-for-approval");
            await t.engine.raiseEvent("contract-approval", "Approve", { by: "carol" });
          },
        },
        {
          file: "approval-timeout",
          description: "the timeout timer wins the Task.any",
          orchestrator: "approval",
          id: "contract-timeout",
          run: async () => {
            await t.engine.startNew("approval", { instanceId: "contract-timeout", input: { order: "C-2", delayMs: 10, timeoutMs: 100 } });
          },
        },
        {
          file: "fan-out",
          description: "Task.all fan-out/fan-in, a task yielded again inside Task.all, string/number/null/object activity inputs",
          orchestrator: "fanOut",
          id: "contract-fanout",
          run: async () => {
            await t.engine.startNew("fanOut", { instanceId: "contract-fanout", input: [1, 2, 3] });
          },
        },
        {
          file: "retries",
          description: "callActivityWithRetry succeeding on attempt 3 (backoff 2) and one exhausting 2 attempts",
          orchestrator: "retries",
          id: "contract-retries",
          run: async () => {
            await t.engine.startNew("retries", { instanceId: "contract-retries" });
          },
        },
        {
          file: "sub-orchestrations",
          description: "sub-orchestrations with generated and explicit ids, in parallel, and a failing one",
          orchestrator: "parent",
          id: "contract-parent",
          run: async () => {
            await t.engine.startNew("parent", { instanceId: "contract-parent" });
          },
        },
        {
          file: "sub-retries",
          description: "callSubOrchestratorWithRetry: generated child id per attempt, and an explicit id reused until exhausted",
          orchestrator: "subRetries",
          id: "contract-subretries",
          run: async () => {
            await t.engine.startNew("subRetries", { instanceId: "contract-subretries" });
          },
        },
        {
          file: "child-failing",
          description: "an orchestrator that throws (OrchestrationFailureError carrying the state)",
          orchestrator: "child",
          id: "contract-parent:3",
          run: async () => {
            await done("contract-parent");
          },
        },
        {
          file: "continue-as-new",
          description: "continueAsNew for three rounds with object input",
          orchestrator: "counter",
          id: "contract-counter",
          run: async () => {
            await t.engine.startNew("counter", { instanceId: "contract-counter" });
          },
        },
        {
          file: "continue-as-new-string",
          description: "continueAsNew with a (double-encoded) string input",
          orchestrator: "counterStr",
          id: "contract-counter-str",
          run: async () => {
            await t.engine.startNew("counterStr", { instanceId: "contract-counter-str", input: "" });
          },
        },
      ];

      async function waitCustom(id: string, stage: string): Promise<void> {
        const deadline = Date.now() + 5000;
        while ((t.engine.getStatus(id)?.customStatus as { stage?: string } | null)?.stage !== stage) {
          if (Date.now() > deadline) throw new Error(`${id} never reached ${stage}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }

      mkdirSync(OUT, { recursive: true });
      for (const s of scenarios) {
        await s.run();
        await done(s.id);
        const mine = episodes.filter((e) => e.instanceId === s.id);
        expect(mine.length).toBeGreaterThan(0);
        const recorded = compact(s.description, s.orchestrator, s.id, mine, recordedWith);
        writeFileSync(path.join(OUT, `${s.file}.json`), `${JSON.stringify(recorded, null, 1)}\n`);
      }
      expect(t.engine.stats().selfCheckFail).toBe(0);
    } finally {
      await t.close();
    }
  }, 30_000);
});
