// Shared by the bench scripts: start the app as `npm start` runs it, and a cheap keep-alive HTTP client.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Starts dist/src/local-app/main.js on an ephemeral port and a fresh data dir, with none of the app's settings.
 * `durableKey`: the header the durable HTTP API requires (the host's system key, kept under the data dir).
 */
export function startApp(extraEnv = {}) {
  const env = { ...process.env, PORT: "0", GATEWAY_PORT: "0", MOCK_BACKENDS_PORT: "0", AIGOV_DATA_DIR: mkdtempSync(join(tmpdir(), "aigov-bench-")), ...extraEnv };
  for (const k of Object.keys(env)) if (/^(COSMOS_|AUTH_|EVENTGRID_|KEYVAULT_|WEBSITE_|AIGOV_PUBLIC)/.test(k)) delete env[k];
  const child = spawn(process.execPath, [join(root, "dist/src/local-app/main.js")], { env, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d;
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      const cosmos = /cosmos \(embedded\): (http:\/\/\S+)/.exec(out)?.[1];
      if (url && cosmos) {
        child.stdout.off("data", onData);
        child.stdout.resume();
        const durableKey = { "x-functions-key": readFileSync(join(env.AIGOV_DATA_DIR, "durabletask.key"), "utf8").trim() };
        resolve({ child, url, cosmos, durableKey, output: () => out });
      }
    };
    child.stdout.on("data", onData);
    child.on("exit", (c) => reject(new Error(`app exited ${c}: ${out}`)));
  });
}

/** node:http with a keep-alive agent: a load generator should cost as little CPU as possible. */
export function httpClient(maxSockets) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const request = (url, { method = "GET", headers = {}, body } = {}) =>
    new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers, agent }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      });
      req.on("error", reject);
      req.end(body);
    });
  return { request, close: () => agent.destroy() };
}
