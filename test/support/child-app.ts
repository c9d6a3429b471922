import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(__dirname, "..", "..");

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
  const [cmd, args] = how === "npm start" ? ["npm", ["start", "--silent"]] : [process.execPath, ["dist/src/localhost/main.js"]];
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
