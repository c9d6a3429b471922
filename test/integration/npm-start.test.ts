import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { AigovClient } from "../../src/client/index.js";

const ROOT = resolve(__dirname, "..", "..");

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(COSMOS_|AUTH_|AIGOV_|EVENTGRID_|EVENTS_|OUTBOX_|KEYVAULT_|WEBSITE_)/.test(k)) delete env[k];
  return env;
}

/** Runs the README's start command as a newcomer would, on an ephemeral port and a fresh data dir. */
function npmStart(dataDir: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn("npm", ["start", "--silent"], {
    cwd: ROOT,
    env: { ...cleanEnv(), PORT: "0", AIGOV_DATA_DIR: dataDir },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not become ready within 60 s:\n${output}`)), 60_000);
    const check = setInterval(() => {
      const m = /aigov local host listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) {
        clearInterval(check);
        clearTimeout(timer);
        resolvePromise({ child, url: m[1]!, output: () => output });
      }
    }, 50);
    child.on("exit", (code) => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`npm start exited with ${code}:\n${output}`));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once("exit", r));
  process.kill(-child.pid!, "SIGTERM"); // the whole group: npm and the node process it started
  await exited;
}

describe("npm start", () => {
  it("answers /api/health on the embedded default, and keeps projects across a restart", { timeout: 180_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "aigov-start-"));
    const started = Date.now();
    const first = await npmStart(dataDir);
    const health = await new AigovClient({ endpoint: first.url }).health();
    expect(health).toMatchObject({ status: "ok", checks: { store: { status: "ok" } } });
    expect(Date.now() - started).toBeLessThan(60_000);

    const anon = new AigovClient({ endpoint: first.url });
    const token = await anon.dev.token({ tenant: "t1", user: "alice", roles: ["TenantAdmin"] });
    const admin = anon.withToken(token);
    const p = await admin.projects.create({ name: "survives restarts", environment: "prod", owner: "alice" });
    await stop(first.child);

    const second = await npmStart(dataDir);
    // The dev issuer's key is kept under the data dir, so a token minted before the restart still validates.
    const admin2 = new AigovClient({ endpoint: second.url, token });
    expect(await admin2.projects.get(p.id)).toEqual(p);
    expect((await admin2.projects.list()).items.map((x) => x.id)).toEqual([p.id]);
    await stop(second.child);
  });
});
