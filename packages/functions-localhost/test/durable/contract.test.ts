// Contract tests: replays every recorded episode (test/durable/recorded/, produced by the engine
// with record-contracts.test.ts) through the registered orchestrator handler and checks that
// durable-functions still returns the same OrchestratorState (actions, output, custom status,
// error). A library upgrade that changes the out-of-process protocol fails here.
// The recordings replay the fixture's orchestrator code: after changing an orchestrator in
// test/fixtures/durable-app/app.js, regenerate them:
//   DURABLE_RECORD=1 npx vitest run test/durable/record-contracts.test.ts   (in packages/functions-localhost)
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installCoreShim } from "../../src/core-shim.js";
import { type LocalHost, startLocalHost } from "../../src/host.js";
import { type RecordedOrchestration, rebuildTrigger } from "./contract-format.js";
import { FIXTURE_APP } from "./support.js";

const DIR = path.join(__dirname, "recorded");
const files = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();
const recordings = files.map((f) => ({ file: f, r: JSON.parse(readFileSync(path.join(DIR, f), "utf8")) as RecordedOrchestration }));

let host: LocalHost;

beforeAll(async () => {
  installCoreShim();
  host = await startLocalHost({ port: 0, functionFiles: [FIXTURE_APP], timers: false, log: () => undefined });
});

afterAll(async () => {
  await host?.close();
});

const OUT_OF_PROC = "\n\n$OutOfProcData$:";

describe("recorded histories replay identically", () => {
  it("covers the protocol surface", () => {
    expect(files).toEqual(
      expect.arrayContaining(["approval-approved.json", "fan-out.json", "retries.json", "sub-orchestrations.json", "continue-as-new.json", "child-failing.json", "sub-retries.json"]),
    );
    const version = (createRequire(__filename)("durable-functions/package.json") as { version: string }).version;
    console.log(`replaying ${recordings.reduce((n, x) => n + x.r.episodes.length, 0)} recorded episodes against durable-functions ${version}`);
  });

  for (const { file, r } of recordings) {
    it(`${file}: ${r.description}`, async () => {
      expect(r.episodes.length).toBeGreaterThan(0);
      for (const [i, ep] of r.episodes.entries()) {
        const trigger = JSON.stringify(rebuildTrigger(r, ep));
        const where = `${file} episode ${i}`;
        if (ep.error !== undefined) {
          const err = await host.invokeDetailed(r.orchestrator, trigger).then(
            () => undefined,
            (e: unknown) => e as Error,
          );
          expect(err, `${where} should throw`).toBeInstanceOf(Error);
          const message = (err as Error).message;
          expect(message, where).toContain(OUT_OF_PROC);
          const state = JSON.parse(message.slice(message.indexOf(OUT_OF_PROC) + OUT_OF_PROC.length)) as { error?: string };
          expect(state, where).toEqual(ep.errorState);
          expect(state.error, where).toBe(ep.error);
        } else {
          const outcome = await host.invokeDetailed(r.orchestrator, trigger);
          expect(JSON.parse(JSON.stringify(outcome.result)), where).toEqual(ep.state);
        }
      }
    });
  }
});
