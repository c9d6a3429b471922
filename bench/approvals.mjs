// Approval orchestrations end to end on the local host (as `npm start` runs it): N requests created
// and decided through the API by CONCURRENCY workers. Reports instances per second and the time from
// the decision (API call returns) to the orchestration's completion, p50/p95.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const N = Number(process.env.N ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);

function startApp() {
  const env = { ...process.env, PORT: "0", AIGOV_DATA_DIR: mkdtempSync(join(tmpdir(), "aigov-bench-appr-")) };
  for (const k of Object.keys(env)) if (/^(COSMOS_|AUTH_|EVENTGRID_|KEYVAULT_|WEBSITE_|AIGOV_PUBLIC)/.test(k)) delete env[k];
  const child = spawn(process.execPath, [join(root, "dist/src/localhost/main.js")], { env, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d;
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url) {
        child.stdout.off("data", onData);
        child.stdout.resume();
        resolve({ child, url });
      }
    };
    child.stdout.on("data", onData);
    child.on("exit", (c) => reject(new Error(`app exited ${c}: ${out}`)));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });
function request(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const { child, url } = await startApp();
try {
  const token = async (user, roles) =>
    JSON.parse((await request(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user, roles }) })).body).access_token;
  const alice = { authorization: `Bearer ${await token("alice", ["Developer"])}`, "content-type": "application/json" };
  const bob = { authorization: `Bearer ${await token("bob", ["Reader"])}`, "content-type": "application/json" };
  const spec = (i) => JSON.stringify({
    subject: { resourceType: "tool", resourceId: `tool-${i}`, change: { enable: true } },
    justification: "bench",
    stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }],
  });
  const latencies = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) {
      const i = next++;
      const created = await request(`${url}/api/approvals`, { method: "POST", headers: alice, body: spec(i) });
      if (created.status !== 201) { failures++; continue; }
      const a = JSON.parse(created.body);
      const decided = await request(`${url}/api/approvals/${a.id}/decisions`, { method: "POST", headers: { ...bob, "if-match": `"${a.etag}"` }, body: JSON.stringify({ decision: "approve", justification: "ok" }) });
      if (decided.status !== 200) { failures++; continue; }
      const t0 = performance.now();
      for (;;) {
        const s = await request(`${url}/runtime/webhooks/durabletask/instances/${a.id}`);
        const status = s.status < 300 ? JSON.parse(s.body).runtimeStatus : undefined;
        if (status === "Completed") break;
        if (status === "Failed" || status === "Terminated") { failures++; break; }
        await new Promise((r) => setTimeout(r, 5));
      }
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => +latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(1);
  console.log(JSON.stringify({
    instances: N,
    concurrency: CONCURRENCY,
    failures,
    seconds: +seconds.toFixed(2),
    instancesPerSecond: +(latencies.length / seconds).toFixed(1),
    decisionToCompletionMs: { p50: q(0.5), p95: q(0.95), max: q(1) },
  }, null, 2));
} finally {
  child.kill("SIGTERM");
  agent.destroy();
}
