import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AigovClient } from "../../src/client/index.js";
import { ROOT, startChildApp, stopChildApp } from "../support/child-app.js";

describe("npm start", () => {
  it("builds first (prestart), so a fresh clone starts with `npm install && npm start`", () => {
    // The starts below skip prestart: dist/ is built once before the tests, never while they load it.
    const scripts = (JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(scripts.prestart).toBe("npm run build");
    expect(scripts.start).toBe("node dist/src/local-app/main.js");
  });

  it("answers /api/health on the embedded default, and keeps projects across a restart", { timeout: 180_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "aigov-start-"));
    const started = Date.now();
    const first = await startChildApp(dataDir, "npm start");
    // From a shell whose `node` is the system one: npm's script PATH puts the project's Node 22 first.
    expect(first.output()).toMatch(/aigov local host listening on \S+ \(data in .+, Node v22\./);
    const health = await new AigovClient({ endpoint: first.url }).health();
    expect(health).toMatchObject({ status: "ok", checks: { store: { status: "ok" } } });
    expect(Date.now() - started).toBeLessThan(60_000);

    const anon = new AigovClient({ endpoint: first.url });
    const token = await anon.dev.token({ tenant: "t1", user: "alice", roles: ["TenantAdmin"] });
    const admin = anon.withToken(token);
    const p = await admin.projects.create({ name: "survives restarts", environment: "dev", owner: "alice" });
    await stopChildApp(first.child);

    const second = await startChildApp(dataDir, "npm start");
    // The dev issuer's key is kept under the data dir, so a token minted before the restart still validates.
    const admin2 = new AigovClient({ endpoint: second.url, token });
    expect(await admin2.projects.get(p.id)).toEqual(p);
    expect((await admin2.projects.list()).items.map((x) => x.id)).toEqual([p.id]);
    await stopChildApp(second.child);
  });
});
