import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";

/** The project brings its own Node 22 (the `node` package the npm scripts put first on PATH), so the
 * suite runs on it even on a machine whose system Node is older. */
describe("runtime", () => {
  it("is Node 22, as package.json, .nvmrc and the Bicep runtime say", () => {
    expect(process.versions.node.split(".")[0]).toBe("22");
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { engines: { node: string }; optionalDependencies: Record<string, string> };
    expect(pkg.engines.node).toBe(">=22 <23");
    expect(pkg.optionalDependencies.node?.startsWith("22.")).toBe(true);
    expect(readFileSync(".nvmrc", "utf8").trim()).toBe("22");
    expect(readFileSync("infra/main.bicep", "utf8")).toContain("runtime: { name: 'node', version: '22' }");
  });
});
