import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(__dirname, "..", "..");

function newestMtime(dir: string, ext: string): number {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = statSync(full);
    if (st.isDirectory()) newest = Math.max(newest, newestMtime(full, ext));
    else if (name.endsWith(ext)) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

/**
 * Child processes run the compiled app (dist/src/local-app/main.js) on the compiled local host
 * (packages/functions-localhost/dist). Builds both (`tsc -b`, the project's own build) when either is
 * missing or older than its sources.
 */
export function ensureBuilt(): void {
  const pairs: [src: string, out: string][] = [
    [join(ROOT, "src", "local-app"), join(ROOT, "dist", "src", "local-app")],
    [join(ROOT, "packages", "functions-localhost", "src"), join(ROOT, "packages", "functions-localhost", "dist", "src")],
  ];
  const stale = (): boolean =>
    !existsSync(join(ROOT, "dist", "src", "local-app", "main.js")) || pairs.some(([src, out]) => newestMtime(src, ".ts") > newestMtime(out, ".js"));
  if (!stale()) return;
  try {
    execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-b"], { cwd: ROOT, stdio: "pipe" });
  } catch (err) {
    // tsc emits even with type errors elsewhere in the project; only a missing output is fatal.
    if (stale()) throw new Error(`build failed: ${(err as { stdout?: Buffer }).stdout?.toString() ?? String(err)}`);
  }
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
 * `env`: extra settings for the child (e.g. short timer schedules), on top of the clean environment.
 */
export function startChildApp(dataDir: string, how: "npm start" | "node" = "node", env: NodeJS.ProcessEnv = {}): Promise<ChildApp> {
  const [cmd, args] = how === "npm start" ? ["npm", ["start", "--silent"]] : [process.execPath, ["dist/src/local-app/main.js"]];
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
