/**
 * Golden tests: each representative configuration compiles to exactly the reviewed documents in
 * test/policy/golden/. To re-record after a deliberate change: UPDATE_GOLDEN=1 npx vitest run test/policy,
 * then review the diff against the policy reference (docs/gateway.md) before committing it. Each case
 * also loads in the local gateway with no issue: what the validator accepts, the emulator runs.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { beforeAll, describe, expect, it } from "vitest";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { initExpressions } from "../../src/local-gateway/expressions/engine.js";
import { loadSnapshot, SnapshotCache } from "../../src/local-gateway/runtime/snapshot.js";
import { compile } from "../../src/policy/compile.js";
import { artifactRef, type GatewayArtifact } from "../../src/ports/gateway.js";
import { GOLDEN_CASES } from "./fixtures.js";
import { validateCompiled } from "./validator.js";

const DIR = join(__dirname, "golden");
const UPDATE = process.env.UPDATE_GOLDEN === "1";

function golden(file: string, actual: string) {
  const path = join(DIR, file);
  if (UPDATE || !existsSync(path)) {
    mkdirSync(DIR, { recursive: true });
    writeFileSync(path, actual.endsWith("\n") ? actual : `${actual}\n`);
  }
  expect(actual.endsWith("\n") ? actual : `${actual}\n`).toBe(readFileSync(path, "utf8"));
}

const nonPolicy = (artifacts: GatewayArtifact[]) => artifacts.filter((a) => a.kind === "backend" || a.kind === "namedValue");
/** The APIs and products the policies attach to. */
const entities = (artifacts: GatewayArtifact[]) => artifacts.filter((a) => a.kind === "api" || a.kind === "product");

beforeAll(() => initExpressions());

describe("golden policies", () => {
  for (const [name, input] of Object.entries(GOLDEN_CASES)) {
    it(name, async () => {
      const result = compile(input);
      expect(validateCompiled(result.artifacts)).toEqual([]);
      const root = mkdtempSync(join(tmpdir(), "aigov-golden-"));
      try {
        await new FilePublisher(root).publish(result.artifacts, {});
        expect((await loadSnapshot(root, { resolveSecret: async () => "k", resolveKeyVaultSecret: async () => "kv" }, new SnapshotCache())).issues).toEqual([]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
      const apis = result.artifacts.flatMap((a) => (a.kind === "policy" && a.scope.type === "api" ? [{ apiId: a.scope.apiId, xml: a.xml }] : []));
      if (!apis.length) throw new Error("no API policy");
      // The first project's API policy is <name>.xml; further projects (e.g. one accepting a shared tier) get their own file.
      for (const [i, api] of apis.entries()) golden(i === 0 ? `${name}.xml` : `${name}.api-${api.apiId}.xml`, api.xml);
      for (const p of result.artifacts) {
        if (p.kind === "policy" && p.scope.type === "product") golden(`${name}.product-${p.scope.productId}.xml`, p.xml);
      }
      golden(`${name}.backends.json`, JSON.stringify(nonPolicy(result.artifacts), null, 2));
      golden(`${name}.entities.json`, JSON.stringify(entities(result.artifacts), null, 2));
      // Every artifact and every element of every document is explained.
      const explained = new Set(result.explain.map((e) => e.ref));
      for (const a of result.artifacts) expect(explained.has(artifactRef(a)), artifactRef(a)).toBe(true);
    });
  }

  it("fragments", () => {
    const result = compile(GOLDEN_CASES["pool-failover"]!);
    for (const f of result.artifacts) if (f.kind === "fragment") golden(`fragment-${f.id}.xml`, f.xml);
  });
});
