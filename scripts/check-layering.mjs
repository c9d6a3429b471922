#!/usr/bin/env node
// Keeps the layering honest beyond what ESLint sees:
//  - services and domain never import @azure/functions (directly or through another module);
//  - functions/ holds registrations only: no classes, no store or SDK access.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const walk = (dir) =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
  });
const importsOf = (file) =>
  [...readFileSync(file, "utf8").matchAll(/(?:import|export)[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g)].map(
    (m) => m[1] ?? m[2] ?? m[3],
  );
const resolveLocal = (from, spec) => {
  if (!spec.startsWith(".")) return undefined;
  return resolve(dirname(from), spec).replace(/\.js$/, ".ts");
};

const problems = [];
// Transitive check: nothing reachable from src/domain or src/ports may import @azure/functions.
const forbidden = /^(@azure\/functions|durable-functions)$/;
for (const start of [...walk(join(root, "src/domain")), ...walk(join(root, "src/ports"))]) {
  const seen = new Set();
  const stack = [[start, [relative(root, start)]]];
  while (stack.length) {
    const [file, path] = stack.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    let specs;
    try {
      specs = importsOf(file);
    } catch {
      continue;
    }
    for (const spec of specs) {
      if (forbidden.test(spec)) problems.push(`${path.join(" → ")} imports ${spec}`);
      const next = resolveLocal(file, spec);
      if (next) stack.push([next, [...path, relative(root, next)]]);
    }
  }
}
for (const file of walk(join(root, "functions"))) {
  const text = readFileSync(file, "utf8");
  if (/\bclass\s+\w+/.test(text)) problems.push(`${relative(root, file)}: functions/ holds registrations only (found a class)`);
  for (const spec of importsOf(file)) {
    if (/adapters\/|@azure\/cosmos|@azure\/identity|@azure\/keyvault|@azure\/eventgrid|@azure\/arm-/.test(spec)) {
      problems.push(`${relative(root, file)} imports ${spec}: functions call services, not adapters or SDKs`);
    }
  }
}
// Orchestrators replay: their bodies must be deterministic. Any generator function in functions/workflows
// is checked for clocks, randomness, timers and I/O; those belong in activities.
const NON_DETERMINISTIC = [
  [/\bDate\.now\s*\(/, "Date.now() (use context.df.currentUtcDateTime)"],
  [/\bnew\s+Date\s*\(\s*\)/, "new Date() without arguments (use context.df.currentUtcDateTime)"],
  [/\bMath\.random\s*\(/, "Math.random() (use context.df.newGuid)"],
  [/\b(setTimeout|setInterval|setImmediate)\s*\(/, "timers (use context.df.createTimer)"],
  [/\b(fetch|require|import)\s*\(/, "I/O or module loading (use an activity)"],
  [/\bgetServices\s*\(/, "services (I/O: use an activity)"],
  [/\bprocess\.env\b/, "process.env (pass it in the input)"],
  [/\bawait\b/, "await (orchestrators yield tasks)"],
];
export function orchestratorProblems(text, name) {
  const found = [];
  for (const match of text.matchAll(/function\s*\*\s*\w*\s*\([^)]*\)[^{]*\{/g)) {
    let depth = 0;
    let end = match.index + match[0].length - 1;
    for (let i = end; i < text.length; i++) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}" && --depth === 0) {
        end = i;
        break;
      }
    }
    const body = text.slice(match.index + match[0].length, end).replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const [re, what] of NON_DETERMINISTIC) if (re.test(body)) found.push(`${name}: orchestrator uses ${what}`);
  }
  return found;
}
for (const file of walk(join(root, "functions"))) {
  if (!relative(join(root, "functions"), file).startsWith("workflows")) continue;
  problems.push(...orchestratorProblems(readFileSync(file, "utf8"), relative(root, file)));
}

if (problems.length && process.argv[1] === new URL(import.meta.url).pathname) {
  console.error(`layering check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
if (process.argv[1] === new URL(import.meta.url).pathname) console.log("layering check: ok");
