import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

/**
 * The function app package `azd deploy` builds: the project tree with .funcignore applied, as
 * scripts/package-files.mjs lists it (docs/deploy.md, "Packaging"). azure.yaml asks for a remote build, so
 * the package carries sources and the build's inputs, never node_modules.
 */

const ROOT = join(__dirname, "..", "..");

interface PackageFilesModule {
  packageFiles(root?: string): string[];
  isPackaged(path: string, root?: string): boolean;
}

let files: string[];
let isPackaged: (path: string) => boolean;

beforeAll(async () => {
  const mod = (await import(pathToFileURL(join(ROOT, "scripts", "package-files.mjs")).href)) as PackageFilesModule;
  files = mod.packageFiles(ROOT);
  isPackaged = (path) => mod.isPackaged(path, ROOT);
});

const under = (prefix: string) => files.filter((f) => f.startsWith(prefix));

describe("the function app package (.funcignore, scripts/package-files.mjs)", () => {
  it("has what the Functions host loads: host.json, package.json and the compiled dist/", () => {
    expect(files).toContain("host.json");
    expect(files).toContain("package.json");
    expect(under("dist/functions/").length).toBeGreaterThan(0);
    // package.json "main": the bundled registrations the worker loads (scripts/bundle-app.mjs).
    expect(files).toContain("dist/app/main.js");
    expect(files).toContain("dist/app/app.js");
    expect(under("dist/src/").length).toBeGreaterThan(0);
  });

  it("has what the remote build needs to install and compile", () => {
    for (const f of ["package-lock.json", "tsconfig.json", "scripts/prune-dist.mjs", "scripts/bundle-app.mjs", "scripts/build-portal.mjs", "packages/portal/package.json", "packages/functions-localhost/package.json", "packages/functions-localhost/tsconfig.json"]) {
      expect(files, f).toContain(f);
    }
    expect(under("functions/").length).toBeGreaterThan(0);
    expect(under("src/").length).toBeGreaterThan(0);
    expect(under("packages/functions-localhost/src/").length).toBeGreaterThan(0);
  });

  it("has no tests, benchmarks, local data, docs, infra or dev tooling", () => {
    const forbidden = /^(test|bench|\.data|coverage|docs|infra|bin|\.git|\.ci|dist\/test|dist\/bench)\/|^packages\/[^/]+\/(test|node_modules|dist\/test)\/|^(eslint\.config\.mjs|vitest\.config\.mts|\.env|local\.settings\.json|azure\.yaml)$/;
    expect(files.filter((f) => forbidden.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith("scripts/") && !["scripts/prune-dist.mjs", "scripts/bundle-app.mjs", "scripts/build-portal.mjs"].includes(f))).toEqual([]);
  });

  it("leaves out paths that may not exist in this checkout (.data, a package's tests, test fixtures)", () => {
    for (const p of [".data/cosmos/snapshot.json", ".data/secrets/k.enc", "test/unit/x.test.ts", "bench/api.mjs", "packages/functions-localhost/test/host.test.ts", "local.settings.json", ".env.local"]) {
      expect(isPackaged(p), p).toBe(false);
    }
    expect(isPackaged("dist/functions/health.js")).toBe(true);
  });

  it("has no node_modules, so no devDependencies (the remote build installs dependencies on Azure)", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
    const dev = Object.keys(pkg.devDependencies);
    expect(dev.length).toBeGreaterThan(0);
    expect(files.filter((f) => f.includes("node_modules/"))).toEqual([]);
    for (const name of dev) expect(isPackaged(`node_modules/${name}/package.json`), name).toBe(false);
  });

  it("leaves the portal out but its package.json (the workspace list npm ci checks against the lock)", () => {
    expect(files.filter((f) => f.startsWith("packages/portal/"))).toEqual(["packages/portal/package.json"]);
    expect(files.filter((f) => f.startsWith("dist/portal-site/"))).toEqual([]);
  });

  it("goes with a remote build (azure.yaml), which needs the sources the package carries", () => {
    expect(readFileSync(join(ROOT, "azure.yaml"), "utf8")).toMatch(/^\s+remoteBuild:\s*true\s*$/m);
  });
});
