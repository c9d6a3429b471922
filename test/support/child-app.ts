import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(__dirname, "..", "..");

/** The newest modification time of a file or folder (a folder changes when an entry is added, removed or renamed). */
function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0;
  let newest = statSync(dir).mtimeMs;
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = statSync(full);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(full) : st.mtimeMs);
  }
  return newest;
}

/** Each project's sources, and the build record `tsc -b` writes when it builds it (also after type errors). */
const BUILDS: [sources: string[], buildInfo: string][] = [
  [["functions", "src"].map((d) => join(ROOT, d)), join(ROOT, "dist", ".tsbuildinfo")],
  [[join(ROOT, "packages", "functions-localhost", "src")], join(ROOT, "packages", "functions-localhost", "dist", ".tsbuildinfo")],
];

/** True when dist/ is missing or a source changed since the last build of its project. */
export function distIsStale(): boolean {
  if (!existsSync(join(ROOT, "dist", "src", "local-app", "main.js"))) return true;
  // The bundle is older than the compiled app when `tsc -b` ran alone.
  const bundle = join(ROOT, "dist", "app", "app.js");
  const appInfo = BUILDS[0]![1];
  if (!existsSync(bundle) || (existsSync(appInfo) && statSync(bundle).mtimeMs < statSync(appInfo).mtimeMs)) return true;
  return BUILDS.some(([sources, info]) => !existsSync(info) || sources.some((d) => newestMtime(d) > statSync(info).mtimeMs));
}

/**
 * In-process tests load the function app's entry point (package.json "main": dist/app/main.js, the bundled
 * registrations) and child processes run the compiled app (dist/src/local-app/main.js) on the compiled local
 * host (packages/functions-localhost/dist): dist/ is built once, before any test file runs, and never while
 * tests load it. `npm test` builds first and sets TEST_DIST_FRESH=1; otherwise the global setup
 * (test/support/global-setup.ts) calls this, which runs the project's build (`tsc -b`, scripts/prune-dist.mjs,
 * scripts/bundle-app.mjs) when dist/ is stale, and sets TEST_DIST_FRESH=1 for the test processes it starts next.
 */
export function ensureBuilt(): void {
  if (process.env.TEST_DIST_FRESH === "1") return;
  if (distIsStale()) {
    try {
      execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-b"], { cwd: ROOT, stdio: "pipe" });
    } catch (err) {
      // tsc emits even with type errors elsewhere in the project; only a missing output is fatal.
      if (!existsSync(join(ROOT, "dist", "src", "local-app", "main.js"))) throw new Error(`build failed: ${(err as { stdout?: Buffer }).stdout?.toString() ?? String(err)}`);
    }
    execFileSync(process.execPath, [join(ROOT, "scripts", "prune-dist.mjs")], { cwd: ROOT, stdio: "pipe" });
    execFileSync(process.execPath, [join(ROOT, "scripts", "bundle-app.mjs")], { cwd: ROOT, stdio: "pipe" });
  }
  process.env.TEST_DIST_FRESH = "1";
}

/** The header the durable HTTP API of an app on this data dir requires (its system key, made at first start). */
export function durableKeyHeader(dataDir: string): Record<string, string> {
  return { "x-functions-key": readFileSync(join(dataDir, "durabletask.key"), "utf8").trim() };
}

/** The environment of a newcomer's shell: none of the app's settings, and none of the PATH entries npm
 * adds for its scripts (so `npm start` finds the project's own Node 22 the way a fresh shell would). */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(COSMOS_|AUTH_|AIGOV_|EVENTGRID_|EVENTS_|OUTBOX_|KEYVAULT_|WEBSITE_|npm_)/.test(k)) delete env[k];
  env.PATH = (env.PATH ?? "").split(":").filter((d) => !/node_modules[\\/]\.bin$/.test(d) && !d.includes("node-gyp-bin")).join(":");
  return env;
}

export interface ChildApp {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/**
 * Starts the app in its own process (`npm start`, or the compiled entry point directly) on an ephemeral port.
 * `npm start` runs without its prestart (`npm run build`): dist/ was built before the tests (ensureBuilt), and a
 * build here would rewrite it under the test files loading it.
 * `env`: extra settings for the child (e.g. short timer schedules), on top of the clean environment.
 */
export function startChildApp(dataDir: string, how: "npm start" | "node" = "node", env: NodeJS.ProcessEnv = {}): Promise<ChildApp> {
  const [cmd, args] = how === "npm start" ? ["npm", ["start", "--silent", "--ignore-scripts"]] : [process.execPath, ["dist/src/local-app/main.js"]];
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...cleanEnv(), ...env, PORT: "0", GATEWAY_PORT: "0", MOCK_BACKENDS_PORT: "0", AIGOV_DATA_DIR: dataDir },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`the app did not become ready within 60 s:\n${output}`)), 60_000);
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
      reject(new Error(`the app exited with ${code}:\n${output}`));
    });
  });
}

/** Stops the whole process group (npm and the node process it started) with the given signal. */
export async function stopChildApp(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  process.kill(-child.pid!, signal);
  await exited;
}
