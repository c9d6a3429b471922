#!/usr/bin/env node
"use strict";
const { runCli } = require("../dist/src/cli/main.js");

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  env: process.env,
}).then((code) => process.exit(code));
