// Cold start: fresh `node` processes load the whole function app (package.json "main": every registration).
// Target: ≤ 250 ms from process start. Two series of N runs each (docs/adr/020-one-file-function-app.md):
//   - "cacheOff": Node's compile cache disabled (NODE_DISABLE_COMPILE_CACHE=1): the first start of a new instance;
//   - "cacheWarm": the entry point's compile cache in a fresh folder, filled by one run before the series:
//     every later start of the same instance (a worker restart, a scale-in/scale-out on a kept instance).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./load-app.cjs", import.meta.url));
const runs = Number(process.env.RUNS ?? 15);
const run = (env) => JSON.parse(execFileSync(process.execPath, [script], { encoding: "utf8", env: { ...process.env, ...env } }));
const median = (xs) => xs[Math.floor(xs.length / 2)];
const summary = (results) => {
  const total = results.map((r) => r.sinceProcessStartMs).sort((a, b) => a - b);
  const load = results.map((r) => r.loadMs).sort((a, b) => a - b);
  return {
    sinceProcessStartMs: { median: +median(total).toFixed(1), max: +total.at(-1).toFixed(1) },
    requireFunctionsMs: { median: +median(load).toFixed(1), max: +load.at(-1).toFixed(1) },
  };
};

const cacheDir = mkdtempSync(join(tmpdir(), "aigov-compile-cache-"));
const off = [];
const warm = [];
try {
  run({ NODE_COMPILE_CACHE: cacheDir }); // fills the cache
  // Interleaved, so both series see the same machine load.
  for (let i = 0; i < runs; i++) {
    off.push(run({ NODE_DISABLE_COMPILE_CACHE: "1" }));
    warm.push(run({ NODE_COMPILE_CACHE: cacheDir }));
  }
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
console.log(JSON.stringify({
  runs,
  functions: off[0].functions,
  cacheOff: summary(off),
  cacheWarm: summary(warm),
  target: "≤ 250 ms from process start",
}, null, 2));
