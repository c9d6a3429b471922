// Loads the whole function app (every registration) the way the worker does, then reports
// milliseconds since this process started. Used by bench/coldstart.mjs in fresh processes.
const { readdirSync, statSync } = require("node:fs");
const { join } = require("node:path");
const { installCoreShim, getRegisteredFunctions } = require("@aigov/functions-localhost/core-shim");

const list = (dir) =>
  readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? list(p) : n.endsWith(".js") ? [p] : [];
  });

const before = performance.now();
installCoreShim();
for (const file of list(join(__dirname, "..", "dist", "functions"))) require(file);
const after = performance.now();
process.stdout.write(JSON.stringify({ sinceProcessStartMs: after, loadMs: after - before, functions: getRegisteredFunctions().length }));
