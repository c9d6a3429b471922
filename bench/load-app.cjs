// Loads the whole function app the way the Functions worker does: package.json "main" (dist/app/main.js, every
// registration), then reports milliseconds since this process started. Used by bench/coldstart.mjs in fresh processes.
const { join } = require("node:path");
const { installCoreShim, getRegisteredFunctions } = require("@aigov/functions-localhost/core-shim");

const root = join(__dirname, "..");
const before = performance.now();
installCoreShim();
require(join(root, require(join(root, "package.json")).main));
const after = performance.now();
process.stdout.write(JSON.stringify({ sinceProcessStartMs: after, loadMs: after - before, functions: getRegisteredFunctions().length }));
