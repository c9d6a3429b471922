import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBuilt } from "./child-app.js";

/**
 * Vitest's global setup (vitest.config.mts): dist/ is fresh before the first test file starts, so no test
 * builds while others load it. Under `npm test` (which has just built, TEST_DIST_FRESH=1) it does nothing.
 *
 * Every temporary directory the run makes (data dirs, gateway folders, CLI configs, browser profiles, child
 * processes' stores) lands in one directory of its own, removed when the run ends: the tests make a few
 * thousand, and leaving them behind filled a developer's /tmp by gigabytes. The test processes and their
 * children inherit TMPDIR (os.tmpdir() reads it on every call). AIGOV_KEEP_TEST_DATA=1 keeps them, to look
 * at a failing test's store or gateway folder.
 */
export default function setup(): () => void {
  ensureBuilt();
  // Vitest runs the global setup once per project: the first makes the directory, the others share it.
  if (process.env.AIGOV_KEEP_TEST_DATA === "1" || process.env.AIGOV_TEST_TMPDIR) return () => undefined;
  // Node's compile cache (the app bundle turns it on: ADR 020) stays where it was, outside: it is written as
  // processes exit, after this directory is gone, and it is worth keeping from one run to the next.
  process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), "node-compile-cache");
  const root = mkdtempSync(join(tmpdir(), "aigov-tests-"));
  process.env.AIGOV_TEST_TMPDIR = root;
  process.env.TMPDIR = root;
  return () => {
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      // A worker still exiting can write into it (Node's compile cache) while it goes: what is left is small.
      console.warn(`could not remove all of ${root}: ${(err as Error).message}`);
    }
  };
}
