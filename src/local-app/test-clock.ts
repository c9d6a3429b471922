/**
 * The test clock of a local app in a child process (AIGOV_LOCAL_TEST_CLOCK=1; docs/local-host.md,
 * "The test clock"): the app's time — the services' clock and the durable engine's (history, timers) — is
 * the real time plus an offset that only moves forward, by `POST /.dev/clock {"advanceMs": n}`. The offset
 * is kept in <dataDir>/test-clock.json, so a restarted process (even after a SIGKILL) goes on from the
 * time it had reached. Only the local launcher (src/local-app/main.ts) reads this, and only in local mode.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const TEST_CLOCK_FILE = "test-clock.json";

/** The most one request may move the clock (ten years). */
const MAX_ADVANCE_MS = 10 * 366 * 86_400_000;

export interface TestClock {
  /** ms epoch: the real time plus the offset. */
  now(): number;
  offsetMs(): number;
  /** Moves the clock forward and records the new offset before returning. */
  advance(ms: number): void;
}

export function loadTestClock(dataDir: string): TestClock {
  const file = join(dataDir, TEST_CLOCK_FILE);
  let offset = 0;
  if (existsSync(file)) {
    const saved = (JSON.parse(readFileSync(file, "utf8")) as { offsetMs?: unknown }).offsetMs;
    if (typeof saved !== "number" || !Number.isSafeInteger(saved) || saved < 0) throw new Error(`${file}: offsetMs is not a non-negative integer`);
    offset = saved;
  }
  return {
    now: () => Date.now() + offset,
    offsetMs: () => offset,
    advance: (ms) => {
      if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_ADVANCE_MS) throw new RangeError(`advanceMs must be an integer from 0 to ${MAX_ADVANCE_MS}`);
      offset += ms;
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ offsetMs: offset }));
      renameSync(tmp, file);
    },
  };
}
