// API throughput and latency against the local host, next to raw Cosmos SDK calls on the same
// embedded server, in the same run. The app runs in its own process (as with `npm start`);
// this process only generates load. Concurrency 16; each phase runs for DURATION_MS.
import { spawn } from "node:child_process";
import http from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { CosmosClient } = require("@azure/cosmos");
const root = fileURLToPath(new URL("..", import.meta.url));
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.DURATION_MS ?? 5000);

function startApp() {
  const env = { ...process.env, PORT: "0", AIGOV_DATA_DIR: mkdtempSync(join(tmpdir(), "aigov-bench-")) };
  for (const k of Object.keys(env)) if (/^(COSMOS_|AUTH_)/.test(k)) delete env[k];
  const child = spawn(process.execPath, [join(root, "dist/src/localhost/main.js")], { env, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += d;
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      const cosmos = /cosmos \(embedded\): (http:\/\/\S+)/.exec(out)?.[1];
      if (url && cosmos) resolve({ child, url, cosmos });
    });
    child.on("exit", (c) => reject(new Error(`app exited ${c}: ${out}`)));
  });
}

// node:http with a keep-alive agent: the load generator should cost as little CPU as the SDK's own client.
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
function request(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function phase(name, fn) {
  const latencies = [];
  let errors = 0;
  const end = performance.now() + DURATION_MS;
  let i = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await fn(i++);
        latencies.push(performance.now() - t0);
      } catch (e) {
        errors++;
        if (errors < 3) console.error(name, e.message);
      }
    }
  }));
  latencies.sort((a, b) => a - b);
  const q = (p) => +latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(2);
  return { name, ops: latencies.length, errors, perSecond: Math.round(latencies.length / (DURATION_MS / 1000)), p50ms: q(0.5), p99ms: q(0.99) };
}

const { child, url, cosmos } = await startApp();
try {
  const tokenRes = await fetch(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user: "bench", roles: ["TenantAdmin"] }) });
  const { access_token: token } = await tokenRes.json();
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const created = await (await fetch(`${url}/api/projects`, { method: "POST", headers, body: JSON.stringify({ name: "bench target", environment: "dev", owner: "bench" }) })).json();

  const client = new CosmosClient({ endpoint: cosmos, key: "any", connectionPolicy: { enableEndpointDiscovery: false } });
  const container = client.database("aigov").container("resources");
  const rawDoc = (i) => ({ id: `raw-${i}-${Math.random().toString(36).slice(2)}`, tenantId: "bench-raw", scopeId: "_tenant", docType: "raw", name: `raw ${i}`, environment: "dev", owner: "bench", tags: {}, pillars: { models: true, tools: true, agents: true }, roleAssignments: [] });
  await container.item(created.id, ["bench", "_tenant"]).read(); // warm up the SDK caches

  const get = async () => {
    const r = await request(`${url}/api/projects/${created.id}`, { headers });
    if (r.status !== 200) throw new Error(`GET ${r.status}`);
  };
  const post = async (i) => {
    const r = await request(`${url}/api/projects`, { method: "POST", headers, body: JSON.stringify({ name: `bench ${i} ${Math.random()}`, environment: "dev", owner: "bench" }) });
    if (r.status !== 201) throw new Error(`POST ${r.status} ${r.body}`);
  };
  for (let i = 0; i < 200; i++) await get(); // warm-up

  const results = [];
  results.push(await phase("raw SDK point read", () => container.item(created.id, ["bench", "_tenant"]).read()));
  results.push(await phase("GET /api/projects/{id}", get));
  results.push(await phase("raw SDK create", (i) => container.items.create(rawDoc(i))));
  results.push(await phase("POST /api/projects", post));
  console.table(results);
  const cpu = process.cpuUsage();
  console.log(`load generator CPU: ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms`);
  const ratio = results[1].perSecond / results[0].perSecond;
  console.log(JSON.stringify({
    concurrency: CONCURRENCY,
    durationMs: DURATION_MS,
    readRatio: +ratio.toFixed(2),
    readTarget: "API ≥ 60% of raw point-read throughput",
    createRatio: +(results[3].perSecond / results[2].perSecond).toFixed(2),
    results,
  }, null, 2));
  client.dispose();
  agent.destroy();
} finally {
  child.kill("SIGTERM");
}
