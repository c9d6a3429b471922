#!/usr/bin/env node
// Writes openapi.json at the repository root: the OpenAPI 3.1 document the app serves at
// GET /api/openapi.json, generated from the operation declarations through the compiled app
// (npm run openapi builds first), so clients can be generated from the repository without running
// the app. test/unit/openapi-file.test.ts fails when the checked-in file differs from this rendering.
//   node scripts/openapi.mjs          rewrite openapi.json
//   node scripts/openapi.mjs --check  exit 1 when openapi.json is out of date
//
// The rendering is deterministic: the top-level keys in OpenAPI's usual order (openapi, info, servers,
// security, paths, components), every other object's keys sorted by code unit — except the member
// names of a schema's `properties`, which keep the order the zod schema declares them in (the order
// generated models and readers see); arrays keep their order; two-space indentation, a final newline.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const FILE = join(root, "openapi.json");

const byCodeUnit = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const ROOT_ORDER = ["openapi", "info", "servers", "security", "paths", "components"];
const rootRank = (k) => (ROOT_ORDER.includes(k) ? ROOT_ORDER.indexOf(k) : ROOT_ORDER.length);

function canonical(node, keepOrder = false) {
  if (Array.isArray(node)) return node.map((v) => canonical(v));
  if (node === null || typeof node !== "object") return node;
  const keys = Object.keys(node);
  if (!keepOrder) keys.sort(byCodeUnit);
  return Object.fromEntries(keys.map((k) => [k, canonical(node[k], k === "properties" && !keepOrder)]));
}

/** The text of openapi.json for a document. */
export function renderOpenApi(doc) {
  const body = canonical(doc);
  const keys = Object.keys(body).sort((a, b) => rootRank(a) - rootRank(b) || byCodeUnit(a, b));
  return `${JSON.stringify(Object.fromEntries(keys.map((k) => [k, body[k]])), null, 2)}\n`;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const require = createRequire(import.meta.url);
  const { openApiDocument } = require(join(root, "dist/src/http/openapi-document.js"));
  const next = renderOpenApi(openApiDocument());
  let current;
  try {
    current = readFileSync(FILE, "utf8");
  } catch {
    current = undefined;
  }
  if (next === current) {
    console.log("openapi.json is up to date");
  } else if (process.argv.includes("--check")) {
    console.error("openapi.json is out of date: run npm run openapi");
    process.exit(1);
  } else {
    writeFileSync(FILE, next);
    console.log(`openapi.json written (${Object.keys(openApiDocument().paths).length} paths)`);
  }
}
