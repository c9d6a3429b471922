/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies and persisted files are read loosely */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { instanceFileName } from "../../src/durable/store.js";
import { FIXTURE_DIR, ensureBuilt } from "./support.js";

const CHILD = path.join(FIXTURE_DIR, "child-host.js");
const children: ChildProcess[] = [];

beforeAll(() => ensureBuilt(), 120_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

interface Child {
  child: ChildProcess;
  url: string;
  pid: number;
  output: () => string;
}

function startChild(dataDir: string): Promise<Child> {
  const child = spawn(process.execPath, [CHILD], {
    env: { ...process.env, DURABLE_DATA_DIR: dataDir, AIGOV_DURABLE_SELFCHECK: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child host did not start within 15 s:\n${stderr}`)), 15_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        clearTimeout(timer);
        const { url, pid } = JSON.parse(line) as { url: string; pid: number };
        resolve({ child, url, pid, output: () => stderr });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child host exited with ${code}:\n${stderr}`));
    });
  });
}

async function kill9(c: Child): Promise<void> {
  const exited = new Promise((r) => c.child.once("exit", r));
  c.child.kill("SIGKILL");
  await exited;
}

async function post(url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, probe: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function persisted(dataDir: string, instanceId: string): any {
  const file = path.join(dataDir, "durable", "aigov", instanceFileName(instanceId));
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined; // mid-rename on some platforms
  }
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

describe("crash and restart (child process, SIGKILL)", () => {
  it("resumes from <dataDir>/durable: completed activities are not re-run, timers fire, events are accepted, unfinished activities re-run", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "aigov-durable-crash-"));
    const sideFile = path.join(dataDir, "side-effect.txt");
    const slowFile = path.join(dataDir, "slow.txt");

    const first = await startChild(dataDir);
    const startedAt = Date.now();
    expect((await post(`${first.url}/api/durable/start/crashFlow/crash-1`, { key: "crash", file: sideFile })).status).toBe(202);
    expect((await post(`${first.url}/api/durable/start/sleeper/sleeper-long`, { ms: 3000 })).status).toBe(202);
    expect((await post(`${first.url}/api/durable/start/sleeper/sleeper-short`, { ms: 300 })).status).toBe(202);
    expect((await post(`${first.url}/api/durable/start/slowFlow/slow-1`, { file: slowFile, ms: 1200 })).status).toBe(202);

    // Kill only once the state we rely on is on disk.
    await until("crash-1 waiting on disk", () => persisted(dataDir, "crash-1"), (r) => r?.customStatus === '"waiting"');
    await until(
      "sleeper timers on disk",
      () => [persisted(dataDir, "sleeper-long"), persisted(dataDir, "sleeper-short")],
      (rs) => rs.every((r) => r && Object.values(r.pending).some((p: any) => p.kind === "timer")),
    );
    await until("slow activity started", () => lines(slowFile), (l) => l.length === 1);
    expect(persisted(dataDir, "slow-1").pending).toMatchObject({ 0: { kind: "activity", name: "slowSideEffect" } });
    await kill9(first);
    const killedAt = Date.now();
    expect(lines(sideFile)).toHaveLength(1);

    // Make sure the short timer is already overdue when the new host starts.
    await new Promise((r) => setTimeout(r, Math.max(0, startedAt + 400 - Date.now())));
    const second = await startChild(dataDir);
    expect(second.pid).not.toBe(first.pid);
    const raised = await post(`${second.url}/api/durable/raise/crash-1/Go`, "after restart");
    expect(raised).toEqual({ status: 202, body: { raised: "Go" } });

    const status = async (id: string): Promise<any> => (await fetch(`${second.url}/api/durable/status/${id}`)).json();
    const crash = await until("crash-1 completed", () => status("crash-1"), (s) => s.runtimeStatus !== "Running");
    expect(crash).toMatchObject({ runtimeStatus: "Completed", output: { n: 1, go: "after restart" } });
    // The activity ran exactly once, in the first process.
    expect(lines(sideFile)).toEqual([`ran crash pid=${first.pid}`]);

    const short = await until("sleeper-short", () => status("sleeper-short"), (s) => s.runtimeStatus !== "Running");
    expect(short).toMatchObject({ runtimeStatus: "Completed", output: { woke: true } });
    const long = await until("sleeper-long", () => status("sleeper-long"), (s) => s.runtimeStatus !== "Running");
    expect(long).toMatchObject({ runtimeStatus: "Completed", output: { woke: true } });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(long.output.fireAt));
    expect(killedAt).toBeLessThan(Date.parse(long.output.fireAt)); // it was pending when the process died

    // The activity interrupted by the kill ran again (at-least-once, like Azure).
    const slow = await until("slow-1", () => status("slow-1"), (s) => s.runtimeStatus !== "Running");
    expect(slow).toMatchObject({ runtimeStatus: "Completed", output: "slow done" });
    expect(lines(slowFile)).toEqual([`start pid=${first.pid}`, `start pid=${second.pid}`, `end pid=${second.pid}`]);

    // Finished instances stay queryable after another restart.
    const exited = new Promise((r) => second.child.once("exit", r));
    second.child.kill("SIGTERM");
    await exited;
    const third = await startChild(dataDir);
    const again = await (await fetch(`${third.url}/api/durable/status/crash-1`)).json();
    expect(again).toMatchObject({ runtimeStatus: "Completed", output: { n: 1, go: "after restart" } });
    expect(third.output()).not.toContain("self-check failed");
    expect(second.output()).not.toContain("self-check failed");
    await kill9(third);
  }, 40_000);
});
