import { ensureBuilt } from "./child-app.js";

/**
 * Vitest's global setup (vitest.config.mts): dist/ is fresh before the first test file starts, so no test
 * builds while others load it. Under `npm test` (which has just built, TEST_DIST_FRESH=1) it does nothing.
 */
export default function setup(): void {
  ensureBuilt();
}
