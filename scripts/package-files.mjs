#!/usr/bin/env node
// The files `azd deploy` would put in the function app package: the project tree with .funcignore applied
// (gitignore syntax, which azd documents for .funcignore), using the `ignore` package (gitignore rules,
// the matcher eslint uses) instead of a hand-written matcher.
//
//   node scripts/package-files.mjs          one path per line
//   node scripts/package-files.mjs --json   a JSON array
//
// test/unit/packaging.test.ts imports packageFiles() and isPackaged().
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
/** @type {() => { add(rules: string): unknown; ignores(path: string): boolean }} */
const ignore = require("ignore");

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The .funcignore matcher of a project root. */
export function funcignore(root = ROOT) {
  return ignore().add(readFileSync(join(root, ".funcignore"), "utf8"));
}

/** Whether a path (relative, with "/", a trailing "/" for a folder) would be in the package. */
export function isPackaged(path, root = ROOT) {
  const ig = funcignore(root);
  // A file is out when it or any folder above it is ignored (git does not look inside an ignored folder).
  const parts = path.split("/").filter(Boolean);
  for (let i = 1; i < parts.length; i++) if (ig.ignores(`${parts.slice(0, i).join("/")}/`)) return false;
  return !ig.ignores(path);
}

/** Every file of the package, sorted, as paths relative to the root with "/". Symlinks are listed, not followed. */
export function packageFiles(root = ROOT) {
  const ig = funcignore(root);
  const out = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const abs = join(dir, entry.name);
      const rel = relative(root, abs).split(sep).join("/");
      const isDir = entry.isDirectory() && !lstatSync(abs).isSymbolicLink();
      if (ig.ignores(isDir ? `${rel}/` : rel)) continue;
      if (isDir) walk(abs);
      else out.push(rel);
    }
  };
  walk(root);
  return out.sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = packageFiles();
  process.stdout.write(process.argv.includes("--json") ? `${JSON.stringify(files, null, 2)}\n` : `${files.join("\n")}\n`);
}
