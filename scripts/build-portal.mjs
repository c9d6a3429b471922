#!/usr/bin/env node
// Builds the portal (packages/portal: type-check, vite, then scripts/swa-config.mjs) into dist/portal-site/,
// the site a Static Web App serves (ADR 019). The function app's package leaves
// the portal's sources out (.funcignore), so its remote build skips this step.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
if (!existsSync(join(root, "packages", "portal", "src"))) {
  console.log("build-portal: no portal sources here (the function app's package): skipped");
  process.exit(0);
}
execFileSync("npm", ["run", "build", "--workspace", "@aigov/portal"], { cwd: root, stdio: "inherit" });
