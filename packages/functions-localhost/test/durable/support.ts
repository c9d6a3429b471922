/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the fixture app are read loosely */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { installCoreShim } from "../../src/core-shim.js";
import { type DurableEngine, type DurableEngineOptions, createDurableEngine } from "../../src/durable/index.js";
import { type LocalHost, startLocalHost } from "../../src/host.js";

/** The package's folder (packages/functions-localhost). */
export const ROOT = path.resolve(__dirname, "..", "..");
export const FIXTURE_DIR = path.resolve(__dirname, "..", "fixtures", "durable-app");
export const FIXTURE_APP = path.join(FIXTURE_DIR, "app.js");

export interface DurableTestHost {
  host: LocalHost;
  engine: DurableEngine;
  url: string;
  logs: { level: string; message: string }[];
  /** body is sent as JSON (JSON.stringify). */
  post(p: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  get(p: string): Promise<{ status: number; body: any; headers: Headers }>;
  del(p: string): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

async function call(url: string, init: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // plain text
  }
  return { status: res.status, body, headers: res.headers };
}

/** Host + engine in this process, fixture app loaded, port 0. */
export async function startDurableTestHost(opts: DurableEngineOptions = {}): Promise<DurableTestHost> {
  installCoreShim(); // before the fixture requires @azure/functions
  const logs: { level: string; message: string }[] = [];
  const log = (level: string, message: string): void => {
    logs.push({ level, message });
    if (process.env.DUMP_HOST_LOGS) console.log(`${level} ${message}`);
  };
  const engine = createDurableEngine({ selfCheck: true, log, ...opts });
  const host = await startLocalHost({
    port: 0,
    functionFiles: [FIXTURE_APP],
    builtinRoutes: engine.builtinRoutes,
    inputBindingProviders: engine.inputBindingProviders,
    timers: false,
    log,
  });
  // getClient() rewrites the binding's URLs to localhost:7071 unless WEBSITE_HOSTNAME is set.
  process.env.WEBSITE_HOSTNAME = `127.0.0.1:${host.port}`;
  await engine.attach(host);
  const url = host.url;
  return {
    host,
    engine,
    url,
    logs,
    post: (p, body, headers = {}) =>
      call(url + p, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    get: (p) => call(url + p, { method: "GET" }),
    del: (p) => call(url + p, { method: "DELETE" }),
    close: async () => {
      await host.close();
      await engine.close();
    },
  };
}

/** Side-effect counters kept by the fixture app (same process only). */
export function fixtureCounter(key: string): number {
  const g = globalThis as unknown as { __durableFixture?: { counters: Map<string, number> } };
  return g.__durableFixture?.counters.get(key) ?? 0;
}

function newestMtime(dir: string, ext: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    const st = statSync(full);
    if (st.isDirectory()) newest = Math.max(newest, newestMtime(full, ext));
    else if (name.endsWith(ext)) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

/**
 * Child-process tests run the compiled host (this package's dist/). Builds it (the package's own
 * build, `tsc -b`) when dist/src is missing or older than src/ — unless the runner has just built it
 * (TEST_DIST_FRESH=1: the root `npm test` and the root vitest global setup), so that nothing rebuilds
 * dist/ while other test files load it.
 */
export function ensureBuilt(): void {
  if (process.env.TEST_DIST_FRESH === "1") return;
  const distDir = path.join(ROOT, "dist", "src");
  const stale = (): boolean =>
    !existsSync(path.join(distDir, "durable", "index.js")) ||
    newestMtime(path.join(ROOT, "src"), ".ts") > newestMtime(distDir, ".js");
  if (!stale()) return;
  try {
    execFileSync(process.execPath, [createRequire(__filename).resolve("typescript/bin/tsc"), "-b", ROOT], {
      cwd: ROOT,
      stdio: "pipe",
    });
  } catch (err) {
    // tsc emits even with type errors; only a missing output is fatal.
    if (stale()) throw new Error(`build failed: ${(err as { stdout?: Buffer }).stdout?.toString() ?? String(err)}`);
  }
}
