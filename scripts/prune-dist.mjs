#!/usr/bin/env node
// tsc never deletes what it emitted for a source that is gone (a moved or deleted file): such
// leftovers in dist/ could still be loaded (by the launcher, the CLI or a test). After
// each build, remove the outputs of root sources that no longer exist.
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const dist = join(root, "dist");
const OUTPUT = /\.(js|d\.ts|js\.map|d\.ts\.map)$/;
let removed = 0;
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      walk(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
      continue;
    }
    if (!OUTPUT.test(name)) continue;
    const source = join(root, relative(dist, path)).replace(OUTPUT, "");
    if (![".ts", ".mts", ".tsx"].some((ext) => existsSync(source + ext))) {
      rmSync(path);
      removed += 1;
    }
  }
};
for (const top of ["functions", "src", "test", "bench"]) if (existsSync(join(dist, top))) walk(join(dist, top));
if (removed) console.log(`prune-dist: removed ${removed} stale output file(s)`);
