#!/usr/bin/env node
// Keeps the layering honest beyond what ESLint sees:
//  - services and domain never import @azure/functions (directly or through another module);
//  - functions/ holds registrations only: no classes, no store or SDK access;
//  - the local host (packages/functions-localhost) imports nothing from the app, and the app reaches it
//    only by its package name, from its launcher (src/local-app), tests and benchmarks;
//  - the portal (packages/portal) takes from the app only the typed client and its schemas.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";

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
// Transitive check: nothing reachable from src/domain, src/ports or src/pillars may import @azure/functions.
const forbidden = /^(@azure\/functions|durable-functions)$/;
for (const start of [...walk(join(root, "src/domain")), ...walk(join(root, "src/ports")), ...walk(join(root, "src/pillars"))]) {
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

// The local host is a package of its own. Its relative imports stay inside it; anything else it imports
// is a node built-in or a dependency its package.json declares (devDependencies for its tests).
const LOCALHOST_NAME = "@aigov/functions-localhost";
const LOCALHOST = join(root, "packages", "functions-localhost");
const walkSources = (dir) =>
  !existsSync(dir)
    ? []
    : readdirSync(dir).flatMap((n) => {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) return n === "node_modules" || n === "dist" || n === "recorded" ? [] : walkSources(p);
        return /\.(ts|mts|cts|js|mjs|cjs)$/.test(n) && !n.endsWith(".d.ts") ? [p] : [];
      });
/** Import specifiers outside comments (the host's comments quote `require('@azure/functions-core')`). */
const codeImportsOf = (file) => {
  const code = readFileSync(file, "utf8")
    .split("\n")
    .map((line) => (/^\s*(\/\/|\/\*|\*)/.test(line) ? "" : line))
    .join("\n");
  return [...code.matchAll(/(?:import|export)[^"'`]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)|^\s*import\s+["']([^"']+)["']/gm)].map(
    (m) => m[1] ?? m[2] ?? m[3] ?? m[4],
  );
};
const packageOf = (spec) => (spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]);
const isBuiltin = (spec) => spec.startsWith("node:") || builtinModules.includes(packageOf(spec));
if (existsSync(join(LOCALHOST, "package.json"))) {
  const pkg = JSON.parse(readFileSync(join(LOCALHOST, "package.json"), "utf8"));
  const runtime = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
  const forTests = new Set([...runtime, ...Object.keys(pkg.devDependencies ?? {})]);
  for (const [dir, allowed] of [["src", runtime], ["test", forTests]]) {
    for (const file of walkSources(join(LOCALHOST, dir))) {
      for (const spec of codeImportsOf(file)) {
        if (spec.startsWith(".")) {
          const target = resolve(dirname(file), spec);
          if (!target.startsWith(LOCALHOST + sep)) problems.push(`${relative(root, file)} imports ${spec}: the local host imports nothing from the app`);
        } else if (!isBuiltin(spec) && !allowed.has(packageOf(spec))) {
          problems.push(`${relative(root, file)} imports ${spec}: not a dependency of ${LOCALHOST_NAME} (the local host imports nothing from the app)`);
        }
      }
    }
  }
}
// The app reaches the local host by its package name only (never by a path into packages/), and only from
// its launcher, tests and benchmarks: what runs in Azure (functions/, the rest of src/) never loads it.
for (const dir of ["functions", "src", "test", "bench", "scripts", "bin"]) {
  for (const file of walkSources(join(root, dir))) {
    const rel = relative(root, file);
    for (const spec of codeImportsOf(file)) {
      if (spec.startsWith(".") && resolve(dirname(file), spec).startsWith(LOCALHOST + sep)) {
        problems.push(`${rel} imports ${spec}: import the local host as ${LOCALHOST_NAME}, not by its path`);
      }
      const launcherOrTooling = !/^(functions|src)\//.test(rel.split(sep).join("/")) || rel.split(sep).join("/").startsWith("src/local-app/");
      if (packageOf(spec) === LOCALHOST_NAME && !launcherOrTooling) {
        problems.push(`${rel} imports ${spec}: only the launcher (src/local-app), tests and benchmarks load the local host`);
      }
    }
  }
}

// The portal (packages/portal) is a browser app: from the app it takes the typed client and the schemas the
// client is typed with (src/client, src/api, src/domain, src/policy), never what runs only on the server.
const PORTAL = join(root, "packages", "portal", "src");
const PORTAL_MAY_IMPORT = ["src/client/", "src/api/", "src/domain/", "src/policy/"];
if (existsSync(PORTAL)) {
  const tsx = (dir) =>
    readdirSync(dir).flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? tsx(p) : /\.tsx?$/.test(p) ? [p] : [];
    });
  for (const file of tsx(PORTAL)) {
    for (const spec of importsOf(file)) {
      if (!spec?.startsWith(".")) continue;
      const target = relative(root, resolve(dirname(file), spec)).split(sep).join("/");
      if (target.startsWith("packages/portal/")) continue;
      if (!PORTAL_MAY_IMPORT.some((p) => target.startsWith(p))) problems.push(`${relative(root, file)} imports ${spec}: the portal reaches the app only through ${PORTAL_MAY_IMPORT.join(", ")}`);
    }
  }
}

if (problems.length && process.argv[1] === new URL(import.meta.url).pathname) {
  console.error(`layering check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
if (process.argv[1] === new URL(import.meta.url).pathname) console.log("layering check: ok");
