/**
 * The instance baseline (src/policy/compile/instance.ts, ADR 023): valid, allow-listed, loaded by the
 * local gateway, and the file infra/ deploys. To re-record infra/apim/global-policy.xml after a deliberate
 * change: UPDATE_GOLDEN=1 npx vitest run --project unit test/policy/instance-baseline.test.ts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { initExpressions } from "../../src/local-gateway/expressions/engine.js";
import { loadSnapshot, SnapshotCache } from "../../src/local-gateway/runtime/snapshot.js";
import { compile } from "../../src/policy/compile.js";
import { instanceBaseline } from "../../src/policy/compile/instance.js";
import { GOLDEN_CASES } from "./fixtures.js";
import { validateCompiled } from "./validator.js";

const INFRA_FILE = join(__dirname, "..", "..", "infra", "apim", "global-policy.xml");

beforeAll(() => initExpressions());

describe("the instance baseline", () => {
  it("is the file infra/ deploys", () => {
    const xml = instanceBaseline().xml;
    if (process.env.UPDATE_GOLDEN === "1") {
      mkdirSync(dirname(INFRA_FILE), { recursive: true });
      writeFileSync(INFRA_FILE, xml);
    }
    expect(readFileSync(INFRA_FILE, "utf8")).toBe(xml);
  });

  it("is a valid global policy of allow-listed statements and expressions, which the local gateway loads", async () => {
    const baseline = instanceBaseline();
    expect(baseline.scope).toEqual({ type: "global" });
    expect(validateCompiled([baseline])).toEqual([]);
    const root = mkdtempSync(join(tmpdir(), "aigov-baseline-"));
    try {
      await new FilePublisher(root).publish([baseline], {});
      const snap = await loadSnapshot(root, { resolveSecret: async () => "k", resolveKeyVaultSecret: async () => "kv" }, new SnapshotCache());
      expect(snap.issues).toEqual([]);
      expect([...snap.broken.keys()]).toEqual([]);
      expect(snap.global?.sections.get("on-error")?.length).toBe(1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("answers first in every on-error section aigov compiles: each starts with <base/>", () => {
    // validateCompiled holds every document below the global scope to it; here a document without is refused.
    const broken = compile(GOLDEN_CASES["pool-failover"]!).artifacts.map((a) => (a.kind === "policy" && a.scope.type === "api" ? { ...a, xml: a.xml.replace(/<on-error>\s*<base\/>/, "<on-error>") } : a));
    expect(validateCompiled(broken).some((p) => p.endsWith("/policies/on-error: must start with <base/>"))).toBe(true);
    for (const input of Object.values(GOLDEN_CASES)) expect(validateCompiled(compile(input).artifacts)).toEqual([]);
  });
});
