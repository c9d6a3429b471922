// The embedded store never loses data silently: a damaged journal line or snapshot stops start-up (file,
// line, repair command); `npm run store:repair` quarantines the damaged part and keeps the rest; compaction
// never discards what it could not read; a torn last line (kill -9 mid-append) is not damage.
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connectCosmos } from "../../src/adapters/cosmos/connect.js";
import type { CosmosStore } from "../../src/adapters/cosmos/store.js";
import { repairStore } from "../../src/adapters/local/cosmos-repair.js";
import { startEmbeddedCosmos, type EmbeddedCosmos } from "../../src/adapters/local/embedded-cosmos.js";
import type { StoredDoc } from "../../src/ports/store.js";
import { ROOT, cleanEnv, ensureBuilt, startChildApp, stopChildApp } from "../support/child-app.js";

const A = { tenantId: "ta", scopeId: "_tenant" };
const doc = (id: string, extra: Record<string, unknown> = {}): StoredDoc => ({ id, ...A, docType: "thing", ...extra });

/** Servers left running "as if killed" (never closed before the files are checked); closed after each test. */
const open: EmbeddedCosmos[] = [];
const stores: CosmosStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.dispose();
  for (const c of open.splice(0)) await c.close();
});

async function start(dataDir: string): Promise<CosmosStore> {
  const cosmos = await startEmbeddedCosmos({ dataDir });
  open.push(cosmos);
  const store = await connectCosmos({ endpoint: cosmos.endpoint, database: "db", container: "c", localKey: cosmos.key }, { createIfMissing: true });
  stores.push(store);
  return store;
}

const journalOf = (dir: string) => join(dir, "cosmos.journal.ndjson");
const snapshotOf = (dir: string) => join(dir, "cosmos.json");
const lines = (file: string) => readFileSync(file, "utf8").split("\n").filter(Boolean);

/** A store whose journal holds: k1 created active, k1 revoked (the line damaged afterwards), k2 created. */
async function storeWithDamagedJournal(): Promise<{ dir: string; damagedLine: number; damagedText: string }> {
  const dir = mkdtempSync(join(tmpdir(), "aigov-damage-"));
  const s = await start(dir);
  await s.batch(A, [{ kind: "create", doc: doc("k1", { status: "active" }) }]);
  await s.batch(A, [{ kind: "replace", doc: doc("k1", { status: "revoked" }) }]);
  await s.batch(A, [{ kind: "create", doc: doc("k2") }]);
  // No close: as if the process had been killed; the journal holds every acknowledged write.
  const all = lines(journalOf(dir));
  const index = all.findIndex((l) => l.includes('"status":"revoked"'));
  expect(index).toBeGreaterThanOrEqual(0);
  all[index] = all[index]!.replace('"status":"revoked"', '"status":revoked"'); // one damaged byte
  writeFileSync(journalOf(dir), all.map((l) => `${l}\n`).join(""));
  return { dir, damagedLine: index + 1, damagedText: all[index]! };
}

describe("a damaged journal line", () => {
  it("stops start-up with the file, the line number and the repair command, and changes nothing", async () => {
    const { dir, damagedLine } = await storeWithDamagedJournal();
    const journalBefore = readFileSync(journalOf(dir));
    const snapshotBefore = readFileSync(snapshotOf(dir));
    const err = await startEmbeddedCosmos({ dataDir: dir }).then(
      async (c) => {
        open.push(c);
        return undefined;
      },
      (e: Error) => e,
    );
    expect(err?.message).toContain(journalOf(dir));
    expect(err?.message).toContain(`line ${damagedLine}`);
    expect(err?.message).toContain(`npm run store:repair -- ${dir}`);
    expect(readFileSync(journalOf(dir))).toEqual(journalBefore);
    expect(readFileSync(snapshotOf(dir))).toEqual(snapshotBefore);
  });

  it("store:repair moves it to a quarantine file, keeps every readable line, names the document, and the store opens", async () => {
    const { dir, damagedLine, damagedText } = await storeWithDamagedJournal();
    const readable = lines(journalOf(dir)).filter((l) => l !== damagedText);
    const result = repairStore(dir);
    expect(result).toMatchObject({ changed: true, opens: true });
    const report = result.report.join("\n");
    expect(report).toContain(`line ${damagedLine}`);
    expect(report).toContain('id "k1", partition ["ta","_tenant"]');
    const quarantine = result.files.find((f) => /cosmos\.journal\.quarantine-\d{8}T\d{6}Z\.ndjson$/.test(f))!;
    expect(lines(quarantine)).toEqual([damagedText]);
    expect(lines(journalOf(dir))).toEqual(readable);
    expect(readFileSync(result.files.find((f) => f.endsWith(".txt"))!, "utf8")).toContain('id "k1"');

    const s = await start(dir);
    expect(await s.read(A, "k2")).toMatchObject({ id: "k2" });
    // k1 is as the lines before the damaged one left it — which is why the report names it.
    expect(await s.read(A, "k1")).toMatchObject({ status: "active" });
  });
});

/** 20 documents compacted into the snapshot, then (journal only) j1 created and s19 replaced; left as if killed. */
async function storeWithSnapshot(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "aigov-damage-snap-"));
  const first = await start(dir);
  for (let i = 0; i < 20; i++) await first.batch(A, [{ kind: "create", doc: doc(`s${String(i).padStart(2, "0")}`, { n: i }) }]);
  stores.pop()!.dispose();
  await open.pop()!.close(); // compacted: everything is in the snapshot
  const second = await start(dir);
  await second.batch(A, [{ kind: "create", doc: doc("j1") }]);
  await second.batch(A, [{ kind: "replace", doc: doc("s19", { n: 190 }) }]);
  return dir;
}

async function refusal(dir: string): Promise<Error | undefined> {
  return startEmbeddedCosmos({ dataDir: dir }).then(
    (c) => (open.push(c), undefined),
    (e: Error) => e,
  );
}

describe("a damaged snapshot", () => {
  it("truncated: start-up stops naming the file; store:repair quarantines it, keeps its readable part and what the journal restores", async () => {
    const dir = await storeWithSnapshot();
    const original = readFileSync(snapshotOf(dir), "utf8");
    const cut = Math.floor(original.length * 0.6);
    truncateSync(snapshotOf(dir), cut);

    const err = await refusal(dir);
    expect(err?.message).toContain(snapshotOf(dir));
    expect(err?.message).toContain(`npm run store:repair -- ${dir}`);

    const result = repairStore(dir);
    expect(result).toMatchObject({ changed: true, opens: true });
    const quarantine = result.files.find((f) => /cosmos\.quarantine-\d{8}T\d{6}Z\.json$/.test(f))!;
    expect(readFileSync(quarantine, "utf8")).toBe(original.slice(0, cut)); // moved as it was
    const report = result.report.join("\n");
    expect(report).toContain("ends early (truncated)");
    expect(report).toMatch(/id "s\d\d", partition \S+: LOST/); // the one cut in half is named
    expect(report).toMatch(/The journal still restores 2 document\(s\):[\s\S]*id "j1", partition \["ta","_tenant"\][\s\S]*id "s19"/);

    const s = await start(dir);
    expect(await s.read(A, "s00")).toMatchObject({ n: 0 }); // salvaged from the readable part
    expect(await s.read(A, "j1")).toMatchObject({ id: "j1" });
    expect(await s.read(A, "s19")).toMatchObject({ n: 190 });
  });

  it("damaged in the middle: every document named in the damaged part is reported lost, or present when the journal restores it", async () => {
    const dir = await storeWithSnapshot();
    const original = readFileSync(snapshotOf(dir), "utf8");
    writeFileSync(snapshotOf(dir), original.replace('"n":15', '"n":1?5'));
    expect(await refusal(dir)).toBeInstanceOf(Error);

    const report = repairStore(dir).report.join("\n");
    for (const id of ["s15", "s16", "s17", "s18"]) expect(report).toContain(`id "${id}", partition ["ta","_tenant"]: LOST`);
    expect(report).toContain('id "s19", partition ["ta","_tenant"]: present after the repair (restored by the journal)');
    expect(report).not.toContain('id "s14"');
    const s = await start(dir);
    expect(await s.read(A, "s14")).toMatchObject({ n: 14 });
    expect(await s.read(A, "s15")).toBeUndefined();
    expect(await s.read(A, "s19")).toMatchObject({ n: 190 });
  });
});

describe("compaction", () => {
  it("never discards journal content the server did not read: it refuses, and the next start names the line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "aigov-compact-"));
    const s = await start(dir);
    await s.batch(A, [{ kind: "create", doc: doc("c1") }]);
    // Something the server cannot read lands in its journal while it runs.
    appendFileSync(journalOf(dir), '{"d":"db","c":"c","op":"set","doc":{"id":"c2",\n');
    stores.pop()!.dispose();
    await open.pop()!.close();
    expect(readFileSync(journalOf(dir), "utf8")).toContain('"id":"c2"');
    const err = await refusal(dir);
    expect(err?.message).toMatch(/line \d+ is unusable/);
    const result = repairStore(dir);
    expect(result.report.join("\n")).toContain('id "c2"');
    const again = await start(dir);
    expect(await again.read(A, "c1")).toMatchObject({ id: "c1" });
  });
});

describe("a torn last line (kill -9 in the middle of an append)", () => {
  it("is not damage: start-up ignores it (never acknowledged) and keeps a copy; a torn batch applies none of its changes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "aigov-torn-"));
    const s = await start(dir);
    await s.batch(A, [{ kind: "create", doc: doc("t1") }]);
    await s.batch(A, [{ kind: "create", doc: doc("t2") }, { kind: "create", doc: doc("t3") }]);
    const text = readFileSync(journalOf(dir), "utf8");
    const last = text.slice(text.lastIndexOf("\n", text.length - 2) + 1);
    expect(last).toContain('"id":"t3"');
    // The last append was cut after t2's change and before t3's: the batch was never acknowledged.
    const cut = last.indexOf('"id":"t3"');
    writeFileSync(journalOf(dir), text.slice(0, text.length - last.length) + last.slice(0, cut));

    const again = await start(dir);
    expect(await again.read(A, "t1")).toMatchObject({ id: "t1" });
    expect(await again.read(A, "t2")).toBeUndefined();
    expect(await again.read(A, "t3")).toBeUndefined();
    const copies = readdirSync(dir).filter((f) => f.startsWith("cosmos.journal.ndjson.torn-"));
    expect(copies).toHaveLength(1);
    expect(readFileSync(join(dir, copies[0]!), "utf8")).toBe(last.slice(0, cut));
  });
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("the local host and npm run store:repair (child processes)", () => {
  it("the app exits 1 naming the file, the line and the command; the command exits 0 listing the document; the app then starts", { timeout: 240_000 }, async () => {
    ensureBuilt();
    const { dir, damagedLine } = await storeWithDamagedJournal();
    const env = { ...cleanEnv(), PORT: "0", GATEWAY_PORT: "0", MOCK_BACKENDS_PORT: "0", AIGOV_DATA_DIR: dir };
    const refused = await run(process.execPath, ["dist/src/local-app/main.js"], env);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(journalOf(dir));
    expect(refused.output).toContain(`line ${damagedLine}`);
    expect(refused.output).toContain(`npm run store:repair -- ${dir}`);

    const repaired = await run("npm", ["run", "--silent", "store:repair", "--", dir], env);
    expect(repaired.output).toContain('id "k1", partition ["ta","_tenant"]');
    expect(repaired.code).toBe(0);

    const app = await startChildApp(dir);
    const health = await fetch(`${app.url}/api/health`);
    expect(health.status).toBe(200);
    await stopChildApp(app.child);
  });
});
