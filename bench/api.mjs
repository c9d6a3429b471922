// API throughput and latency against the local host, next to raw Cosmos SDK calls on the same
// embedded server, in the same run. The app runs in its own process exactly as `npm start` runs it
// (embedded Cosmos server in a worker thread of that process).
//
// Concurrency 16. Phases alternate raw/API for ROUNDS rounds of DURATION_MS each and the medians are
// reported, so a noisy neighbour on a shared 2-core machine hits both sides alike. WARMUP_ROUNDS (1)
// rounds run first and are not counted: every side (the app, the bare server, the raw client and the
// embedded server) reaches its steady state only after several seconds of load (JIT tiers), so a first
// round measured cold understated the API by half and the raw side by a third.
// Load generators: raw phases use the Cosmos SDK (that is what "raw" means). API phases use `wrk`
// when it is installed (apt-get install wrk) — a Node load generator takes most of a core away from
// the app on a 2-core machine — and fall back to node:http (keep-alive) otherwise; the output says which.
//
// A third side, the ceiling: a bare node:http server in its own process doing exactly what the endpoint
// does at the store (one SDK point read) and nothing else — no Functions programming model, no local
// host, no app. API GET over it says how much of the gap to raw reads is the request path's own work.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { httpClient, root, startApp } from "./lib.mjs";

const require = createRequire(import.meta.url);
const { CosmosClient } = require("@azure/cosmos");
/** A whole-number setting from the environment, at least `min` (a typo fails here, not as NaN rounds later). */
function setting(name, fallback, min) {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number ≥ ${min}, got ${process.env[name]}`);
  return value;
}
const CONCURRENCY = setting("CONCURRENCY", 16, 1);
const DURATION_MS = setting("DURATION_MS", 4000, 1000);
const ROUNDS = setting("ROUNDS", 3, 1);
const WARMUP_ROUNDS = setting("WARMUP_ROUNDS", 1, 0);
const hasWrk = spawnSync("wrk", ["--version"]).error === undefined;

const { request, close: closeHttp } = httpClient(CONCURRENCY * 2);

/** A closed-loop phase in this process: CONCURRENCY callers, each calling fn back to back. */
async function nodePhase(name, fn) {
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
        if (++errors < 3) console.error(name, e.message);
      }
    }
  }));
  latencies.sort((a, b) => a - b);
  const q = (p) => +latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(2);
  return { name, errors, perSecond: Math.round(latencies.length / (DURATION_MS / 1000)), p50ms: q(0.5), p99ms: q(0.99) };
}

/** The same with wrk (one thread, CONCURRENCY connections). */
function wrkPhase(name, target, headers, lua) {
  const args = ["-t1", `-c${CONCURRENCY}`, `-d${Math.max(1, Math.round(DURATION_MS / 1000))}s`, "--latency"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  if (lua) {
    const script = join(mkdtempSync(join(tmpdir(), "aigov-wrk-")), "script.lua");
    writeFileSync(script, lua);
    args.push("-s", script);
  }
  const out = execFileSync("wrk", [...args, target], { encoding: "utf8" });
  const ms = (label) => {
    const m = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? +(Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]]).toFixed(2) : NaN;
  };
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/timeout (\d+)/.exec(out)?.[1] ?? 0);
  return { name, errors, perSecond: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1])), p50ms: ms("50"), p99ms: ms("99") };
}

/** The ceiling server: node:http and one SDK point read per request, in its own process (as the app's main thread is). */
function startBareServer(endpoint, id) {
  const source = `
    const http = require("node:http");
    const { CosmosClient } = require("@azure/cosmos");
    const container = new CosmosClient({ endpoint: process.argv[1], key: "any", connectionPolicy: { enableEndpointDiscovery: false } }).database("aigov").container("resources");
    http.createServer(async (req, res) => {
      const { resource } = await container.item(process.argv[2], ["bench", "_tenant"]).read();
      const body = JSON.stringify(resource);
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(body);
    }).listen(0, "127.0.0.1", function () { console.log("listening on http://127.0.0.1:" + this.address().port); });`;
  const child = spawn(process.execPath, ["-e", source, endpoint, id], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      const url = /listening on (http:\/\/\S+)/.exec(String(d))?.[1];
      if (url) resolve({ child, url });
    });
    child.on("exit", (c) => reject(new Error(`bare server exited ${c}`)));
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function summarise(runs) {
  return {
    name: runs[0].name,
    perSecond: median(runs.map((r) => r.perSecond)),
    p50ms: median(runs.map((r) => r.p50ms)),
    p99ms: median(runs.map((r) => r.p99ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    rounds: runs.map((r) => r.perSecond),
  };
}

const { child, url, cosmos } = await startApp();
try {
  const tokenRes = await request(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user: "bench", roles: ["TenantAdmin"] }) });
  const token = JSON.parse(tokenRes.body).access_token;
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const created = JSON.parse((await request(`${url}/api/projects`, { method: "POST", headers, body: JSON.stringify({ name: "bench target", environment: "dev", owner: "bench" }) })).body);

  // Raw SDK calls on the same embedded server; raw creates go to their own container so they do not
  // slow the app's queries (the embedded server scans a container to answer a cross-partition query).
  const client = new CosmosClient({ endpoint: cosmos, key: "any", connectionPolicy: { enableEndpointDiscovery: false } });
  const container = client.database("aigov").container("resources");
  const { container: rawContainer } = await client.database("aigov").containers.createIfNotExists({ id: "bench-raw", partitionKey: { paths: ["/tenantId"] } });
  const rawDoc = (i) => ({ id: `raw-${i}-${Math.random().toString(36).slice(2)}`, tenantId: "bench-raw", name: `raw ${i}`, environment: "dev", owner: "bench", tags: {}, pillars: { models: true, tools: true, agents: true }, roleAssignments: [] });
  await container.item(created.id, ["bench", "_tenant"]).read();

  const get = async () => {
    const r = await request(`${url}/api/projects/${created.id}`, { headers });
    if (r.status !== 200) throw new Error(`GET ${r.status}`);
  };
  let n = 0;
  const post = async () => {
    const r = await request(`${url}/api/projects`, { method: "POST", headers, body: JSON.stringify({ name: `bench node ${n++} ${Math.random()}`, environment: "dev", owner: "bench" }) });
    if (r.status !== 201) throw new Error(`POST ${r.status} ${r.body}`);
  };
  const postLua = (round) => `counter = 0
request = function()
  counter = counter + 1
  local body = '{"name":"bench ${round} ' .. counter .. '","environment":"dev","owner":"bench"}'
  return wrk.format("POST", "/api/projects", nil, body)
end`;
  const client_ = hasWrk ? "wrk" : "node:http";
  const bare = await startBareServer(cosmos, created.id);
  for (let i = 0; i < 300; i++) await get(); // warm-up

  const rawRead = [], bareGet = [], apiGet = [], rawCreate = [], apiPost = [];
  const bareGetOnce = async () => {
    const r = await request(`${bare.url}/`);
    if (r.status !== 200) throw new Error(`bare GET ${r.status}`);
  };
  for (let round = -WARMUP_ROUNDS; round < ROUNDS; round++) {
    // A warm-up round (round < 0) runs the same phases and keeps nothing.
    const keep = (list, result) => void (round >= 0 && list.push(result));
    keep(rawRead, await nodePhase("raw SDK point read", () => container.item(created.id, ["bench", "_tenant"]).read()));
    keep(bareGet, hasWrk ? wrkPhase(`bare node:http + SDK read (${client_})`, `${bare.url}/`, {}) : await nodePhase(`bare node:http + SDK read (${client_})`, bareGetOnce));
    keep(apiGet, hasWrk ? wrkPhase(`GET /api/projects/{id} (${client_})`, `${url}/api/projects/${created.id}`, { authorization: headers.authorization }) : await nodePhase(`GET /api/projects/{id} (${client_})`, get));
    keep(rawCreate, await nodePhase("raw SDK create", (i) => rawContainer.items.create(rawDoc(i))));
    keep(apiPost, hasWrk ? wrkPhase(`POST /api/projects (${client_})`, `${url}/api/projects`, headers, postLua(round)) : await nodePhase(`POST /api/projects (${client_})`, post));
  }
  const results = [rawRead, apiGet, rawCreate, apiPost, bareGet].map(summarise);
  console.table(results.map(({ rounds, ...r }) => ({ ...r, rounds: rounds.join(" / ") })));
  console.log(JSON.stringify({
    concurrency: CONCURRENCY,
    phaseMs: DURATION_MS,
    rounds: ROUNDS,
    warmupRounds: WARMUP_ROUNDS,
    apiLoadGenerator: client_,
    readRatio: +(results[1].perSecond / results[0].perSecond).toFixed(2),
    readTarget: "API GET ≥ 60% of raw point-read throughput",
    createRatio: +(results[3].perSecond / results[2].perSecond).toFixed(2),
    // The ceiling for any request path on this machine, and how much of it the API reaches.
    bareReadRatio: +(results[4].perSecond / results[0].perSecond).toFixed(2),
    apiOfBare: +(results[1].perSecond / results[4].perSecond).toFixed(2),
  }, null, 2));
  bare.child.kill("SIGTERM");
  client.dispose();
  closeHttp();
} finally {
  child.kill("SIGTERM");
}
