import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const localhost = (file: string) => fileURLToPath(new URL(`./packages/functions-localhost/src/${file}`, import.meta.url));

/** Every test: the app's (test/) and the local host's (packages/functions-localhost/test, which also runs alone with its own config). */
const ALL = ["test/**/*.test.ts", "packages/functions-localhost/test/**/*.test.ts"];
/** The slow project: tests that start child processes (crashes, `npm start`, store damage, the host's Host checks) or a browser, or sync thousands of agents. */
const SLOW = [
  "test/integration/*-crash.test.ts",
  "test/integration/npm-start.test.ts",
  "test/integration/store-damage.test.ts",
  "test/integration/tools-discovery.test.ts",
  "test/integration/agent-sync.test.ts",
  "test/integration/gateway-move.test.ts",
  "test/local-app/host-safety.test.ts",
  "test/e2e/**/*.test.ts",
  "packages/functions-localhost/test/durable/crash.test.ts",
];

/**
 * The unit project: pure tests (the compiler, the local gateway's engine, domain rules) that start no app
 * and no host, run without isolation — files share a worker and its loaded modules, which saves each file
 * loading the compiler and the SDKs again (about a third of their wall time). Anything that starts the
 * app, a host or a child process stays isolated (fast, slow).
 */
const UNIT = ["test/unit/**/*.test.ts", "test/policy/**/*.test.ts", "test/local-gateway/**/*.test.ts"];

/**
 * Test files run side by side: the fast project's each in its own worker thread (a thread starts and loads
 * modules faster than a process: the fast project took about 18% less wall time than with one process per
 * file), the slow project's each in its own process (they send signals, start process groups and wait on
 * child processes). Vitest's default (one fewer worker than cores) is a
 * single worker on a 2-core machine: every file after the other. One more worker than cores keeps the cores
 * busy while a file waits (HTTP round trips, file writes, child processes starting). VITEST_MAX_WORKERS overrides.
 */
const WORKERS = availableParallelism() + 1;

/**
 * The order files start in: vitest's own (files that failed last time, then the longest known, else the
 * largest), with the slow project's files moved to the front, each followed by as many fast files as there
 * are other workers. A child-process test starts early, next to the longest in-process files (it mostly
 * waits, and last it would be the tail of the run), and the next one usually starts once it is done, so
 * child processes seldom compete with each other for the CPU. The browser tests go first of all: they are
 * the longest files, and vitest's timings do not know it when they last ran without Chromium (skipped).
 */
class SlowSpread extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const slowest = (f: TestSpecification) => f.project.name === "slow" && /[\\/]test[\\/]e2e[\\/]portal/.test(f.moduleId);
    const slow = [...sorted.filter(slowest), ...sorted.filter((f) => f.project.name === "slow" && !slowest(f))];
    const fast = sorted.filter((f) => f.project.name !== "slow");
    const between = Math.max(1, (this.ctx.config.maxWorkers ?? WORKERS) - 1);
    const out: TestSpecification[] = [];
    for (const s of slow) out.push(s, ...fast.splice(0, between));
    return [...out, ...fast];
  }
}

export default defineConfig({
  // The app's tests run the local host's sources, as they run the app's (child processes run the compiled package).
  resolve: {
    alias: [
      { find: /^@aigov\/functions-localhost$/, replacement: localhost("index.ts") },
      { find: /^@aigov\/functions-localhost\/core-shim$/, replacement: localhost("core-shim.ts") },
      { find: /^@aigov\/functions-localhost\/durable$/, replacement: localhost("durable/index.ts") },
    ],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    maxWorkers: WORKERS,
    sequence: { sequencer: SlowSpread },
    reporters: ["default"],
    // dist/ is built once, before any test file runs (in-process tests load dist/functions, child processes dist/src).
    globalSetup: ["test/support/global-setup.ts"],
    // `npx vitest` runs the unit and fast projects; `npm test` runs all three (its --project options replace this).
    // (`project` is vitest's --project option, honoured in the config file too, though typed for the CLI only.)
    ...({ project: ["unit", "fast"] } as object),
    projects: [
      // Pure tests, sharing workers (UNIT).
      { extends: true, test: { name: "unit", include: UNIT, pool: "threads", isolate: false } },
      // In-process tests: with the unit project, the default while developing (`npx vitest`, `npm run test:fast`).
      { extends: true, test: { name: "fast", include: ALL, exclude: [...SLOW, ...UNIT], pool: "threads" } },
      // Child processes and the browser (`npm run test:slow`, or `npx vitest run --project slow <file>`).
      // Browsers and child processes answer slower under CI load: a poll waits up to 10 s unless it says otherwise.
      { extends: true, test: { name: "slow", include: SLOW, expect: { poll: { timeout: 10_000 } } } },
    ],
  },
});
