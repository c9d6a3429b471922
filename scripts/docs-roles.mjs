#!/usr/bin/env node
// Rewrites the table of who may do what in docs/api.md (between the access-table markers) from the
// operation declarations, through the compiled app (npm run docs:roles builds first). The same
// renderer is what test/unit/access-table.test.ts compares the checked-in table with.
//   node scripts/docs-roles.mjs          rewrite docs/api.md
//   node scripts/docs-roles.mjs --check  exit 1 when docs/api.md is out of date
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const require = createRequire(import.meta.url);
const { renderAccessTable, withAccessTable } = require(join(root, "dist/src/api/access.js"));
const { operations } = require(join(root, "dist/src/api/all-operations.js"));

const file = join(root, "docs/api.md");
const current = readFileSync(file, "utf8");
const next = withAccessTable(current, renderAccessTable(operations));
if (process.argv.includes("--check")) {
  if (next !== current) {
    console.error("docs/api.md: the access table is out of date; run npm run docs:roles");
    process.exit(1);
  }
  console.log("docs/api.md: the access table is up to date");
} else if (next === current) {
  console.log("docs/api.md: the access table is up to date");
} else {
  writeFileSync(file, next);
  console.log(`docs/api.md: access table rewritten (${operations.length} operations)`);
}
