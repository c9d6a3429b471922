import type { Store } from "../ports/store.js";
import { version } from "./version.js";

export async function checkHealth(store: Store) {
  const started = performance.now();
  let ok = true;
  try {
    await Promise.race([
      store.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 5000).unref()),
    ]);
  } catch {
    ok = false;
  }
  const latencyMs = Math.round(performance.now() - started);
  return {
    status: ok ? 200 : 503,
    body: { status: ok ? "ok" : "degraded", checks: { store: { status: ok ? "ok" : "unreachable", latencyMs } }, version },
  };
}
