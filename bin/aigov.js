#!/usr/bin/env node
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");

const cli = join(__dirname, "..", "dist", "src", "cli", "main.js");
if (!existsSync(cli)) {
  process.stderr.write("aigov is not built yet: run `npm run build` (or `npm start`) in the project folder first.\n");
  process.exit(2);
}
const { runCli } = require(cli);

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  env: process.env,
}).then((code) => process.exit(code));
