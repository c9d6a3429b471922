// Cold start: fresh `node` processes load the whole function app (all registrations).
// Target: ≤ 250 ms. Reports the median and worst of N runs.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./load-app.cjs", import.meta.url));
const runs = Number(process.env.RUNS ?? 15);
const results = [];
for (let i = 0; i < runs; i++) results.push(JSON.parse(execFileSync(process.execPath, [script], { encoding: "utf8" })));
const pick = (k) => results.map((r) => r[k]).sort((a, b) => a - b);
const median = (xs) => xs[Math.floor(xs.length / 2)];
const total = pick("sinceProcessStartMs");
const load = pick("loadMs");
console.log(JSON.stringify({
  runs,
  functions: results[0].functions,
  sinceProcessStartMs: { median: +median(total).toFixed(1), max: +total.at(-1).toFixed(1) },
  requireFunctionsMs: { median: +median(load).toFixed(1), max: +load.at(-1).toFixed(1) },
  target: "≤ 250 ms from process start",
}, null, 2));
