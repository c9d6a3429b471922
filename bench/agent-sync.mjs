// The agents pillar's cross-cloud sync at scale (npm run build first; `npm run bench:agents` does both).
// The app runs IN THIS PROCESS (as test/support/app.ts starts it: fresh data dir, timers parked), because
// Foundry's SDK refuses a bearer token over plain HTTP and its fake is an in-process HttpClient. The three
// clouds' SDKs, unmodified, talk to the fakes of dist/src/local-backends/agent-clouds/ with their default
// retries and time-outs (nothing shortened). Default estate: 10,000 agents — Bedrock 4,000, Vertex AI Agent
// Engine 3,000, Foundry 3,000, each over 2 regions (BEDROCK_AGENTS, VERTEX_AGENTS, FOUNDRY_AGENTS change the
// counts, split evenly over the regions).
//
// Measured:
//  1. the first sync of the three connections, started together: wall time per connection and in total (the
//     run report's durationMs and this script's clock: POST :sync → the run report no longer "running", polled
//     every POLL_MS), agents per second, the run's counts (checked against the seeded numbers: MISMATCH when
//     they differ), requests per cloud from each fake's stats() (total, by kind, by status) and requests per
//     second = total / (lastAt − firstAt); also the peak one-second rate per call and region (counted here
//     by wrapping each fake's AgentCloudState.arrive);
//  2. a second sync with nothing changed: wall time, request rate, counts (discovered 0, changed 0);
//  3. a third sync after 1% of each source's agents changed and 0.5% removed: wall time and counts;
//  4. memory of this process (fakes, app, embedded Cosmos worker and durable engine all live here): RSS at
//     start, after seeding the fakes (their rough footprint), after the app starts, peak (VmHWM, reset before
//     each sync when /proc/self/clear_refs allows) and at the end;
//  5. each cloud's documented request quota for the calls the sync makes (QUOTAS below, with sources) next to
//     the measured rates, and whether the sync would need pacing at that rate in the real cloud;
//  and where a page's time goes: the agent-source factory is wrapped, so each page's cloud listing
//  (listPage) is timed apart from the rest of the page activity (applying to the registry, durable overhead).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpClient, root } from "./lib.mjs";

const require = createRequire(import.meta.url);

const COUNTS = {
  bedrock: Number(process.env.BEDROCK_AGENTS ?? 4000),
  vertex: Number(process.env.VERTEX_AGENTS ?? 3000),
  foundry: Number(process.env.FOUNDRY_AGENTS ?? 3000),
};
const REGIONS = {
  bedrock: ["us-east-1", "eu-west-1"],
  vertex: ["us-central1", "europe-west4"],
  foundry: ["eastus", "westeurope"],
};
const POLL_MS = Number(process.env.POLL_MS ?? 250);
/** Give up on a sync after this long (the run is reported as it stands). */
const SYNC_TIMEOUT_MS = Number(process.env.SYNC_TIMEOUT_MS ?? 30 * 60_000);
const ACCESS_KEY = "AKIAFAKEFAKEFAKE0001";
const CLOUDS = ["bedrock", "vertex", "foundry"];

/**
 * Documented default request quotas for the calls the sync makes, per second (Vertex's is per minute in the
 * documentation, shown here /60). null: no number documented. Looked up 2026 with the sources below.
 *
 * Bedrock — AWS General Reference, "Amazon Bedrock endpoints and quotas",
 *   https://docs.aws.amazon.com/general/latest/gr/bedrock.html (linked from "Quotas for Amazon Bedrock",
 *   https://docs.aws.amazon.com/bedrock/latest/userguide/quotas.html): "ListAgents requests per second" 10,
 *   "GetAgent requests per second" 15, "ListAgentAliases requests per second" 10, "ListAgentActionGroups
 *   requests per second" 10 — each "Each supported Region", adjustable: No (per account and Region). The same
 *   table: "Agents per account" 200 per Region (adjustable).
 * Vertex AI — "Vertex AI quotas and limits", https://cloud.google.com/vertex-ai/docs/quotas, Request quotas:
 *   "Resource management (CRUD) requests" 600 per minute (per project and supported region; "any request that
 *   isn't a job, an LRO, an online prediction request, …"), which ListReasoningEngines is. The Agent Engine
 *   section of "Generative AI on Vertex AI quotas" (https://cloud.google.com/vertex-ai/generative-ai/docs/quotas,
 *   "Vertex AI Agent Engine quotas") has no list/read quota: create/delete/update 10 per minute, Query or
 *   StreamQuery 90 per minute, and at most 100 Agent Engine resources per region (reasoning_engine_service_entities).
 * Foundry — "Foundry Agent Service quotas and limits", https://learn.microsoft.com/en-us/azure/ai-foundry/agents/quotas-limits:
 *   "Agent Service doesn't impose separate rate limits on API calls. Rate limiting is applied at the model
 *   deployment level." No number for listing agents (also searched: "Foundry Agent Service limits, quotas, and
 *   regional support", https://learn.microsoft.com/azure/ai-foundry/agents/concepts/limits-quotas-regions —
 *   artifact limits only: files, messages, tools per agent).
 */
const QUOTAS = {
  bedrock: {
    scope: "per account per region",
    // ListTagsForResource: paced like the other list calls; not re-read from the table (docs/agent-quotas.md).
    perSecond: { ListAgents: 10, GetAgent: 15, ListAgentAliases: 10, ListAgentActionGroups: 10, ListTagsForResource: 10 },
    source: "AWS General Reference, Amazon Bedrock endpoints and quotas — https://docs.aws.amazon.com/general/latest/gr/bedrock.html",
  },
  vertex: {
    scope: "per project per region (600 per minute)",
    perSecond: { ListReasoningEngines: 600 / 60 },
    source: "Vertex AI quotas and limits, Resource management (CRUD) requests — https://cloud.google.com/vertex-ai/docs/quotas",
  },
  foundry: {
    scope: "none documented",
    perSecond: { ListAgents: null },
    source: "Foundry Agent Service quotas and limits — https://learn.microsoft.com/en-us/azure/ai-foundry/agents/quotas-limits (\"doesn't impose separate rate limits on API calls\")",
  },
};

// ---- memory ----
const status = () => readFileSync("/proc/self/status", "utf8");
const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status())?.[1] ?? 0);
const rssMb = () => kb("VmRSS") / 1024;
const peakMb = () => kb("VmHWM") / 1024;
/** Resets VmHWM to the current RSS (Linux ≥ 4.0: "5" to clear_refs); false when not permitted. */
const resetPeak = () => {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
};
const mb = (x) => `${x.toFixed(0)} MB`;
/** This thread's V8 heap and off-heap buffers (the embedded Cosmos runs in a worker thread: not in these). */
const heap = () => {
  const m = process.memoryUsage();
  return `main-thread heap ${mb(m.heapUsed / 2 ** 20)} of ${mb(m.heapTotal / 2 ** 20)}, external ${mb(m.external / 2 ** 20)}`;
};
const memory = { start: rssMb() };

// ---- the fakes (seeded before the app starts: their footprint is the RSS difference) ----
const { startBedrockFake, startVertexFake, startFoundryFake } = require(`${root}dist/src/local-backends/agent-clouds/index.js`);
const split = (cloud) => {
  const regions = REGIONS[cloud];
  const each = Math.floor(COUNTS[cloud] / regions.length);
  return Object.fromEntries(regions.map((r, i) => [r, i === 0 ? COUNTS[cloud] - each * (regions.length - 1) : each]));
};
const seeded = { bedrock: split("bedrock"), vertex: split("vertex"), foundry: split("foundry") };
const t0seed = performance.now();
const [bedrock, vertex, foundry] = await Promise.all([
  startBedrockFake({ seed: "bench-b", regions: seeded.bedrock, accessKeyId: ACCESS_KEY }),
  startVertexFake({ seed: "bench-v", regions: seeded.vertex }),
  startFoundryFake({ seed: "bench-f", regions: seeded.foundry }),
]);
const fakes = { bedrock, vertex, foundry };
const seedMs = performance.now() - t0seed;
globalThis.gc?.();
memory.fakes = rssMb();

/** Per-second request counts by "<kind> <region>", for peak rates (the fakes only keep totals and first/last). */
const perSecond = { bedrock: new Map(), vertex: new Map(), foundry: new Map() };
for (const cloud of CLOUDS) {
  const state = fakes[cloud].state;
  const arrive = state.arrive.bind(state);
  state.arrive = (request) => {
    const key = `${request.kind} ${request.region}`;
    const sec = Math.floor(Date.now() / 1000);
    let m = perSecond[cloud].get(key);
    if (!m) perSecond[cloud].set(key, (m = new Map()));
    m.set(sec, (m.get(sec) ?? 0) + 1);
    return arrive(request);
  };
}

// ---- the app, in process, its sources pointed at the fakes ----
const { overrideServices } = require(`${root}dist/src/app/services.js`);
const { createAgentSource } = require(`${root}dist/src/pillars/agents/sources/index.js`);
const { startApp } = require(`${root}dist/src/local-app/main.js`);

/** Page timings: per "<cloud> <region>", each listPage's start and end (performance.now()). */
const pageTimes = new Map();
let sourcesBuilt = 0;
let sourceBuildMs = 0;
overrideServices({
  pillarSeams: {
    agentSources: async (target) => {
      const t = performance.now();
      // Only Foundry's transport changes (its fake is in process); retries and time-outs are the defaults.
      const source = await createAgentSource({ ...target, ...(target.cloud === "foundry" ? { httpClient: foundry.httpClient } : {}) });
      sourceBuildMs += performance.now() - t;
      sourcesBuilt += 1;
      return {
        cloud: source.cloud,
        close: source.close?.bind(source),
        async listPage(region, cursor, options) {
          const start = performance.now();
          try {
            return await source.listPage(region, cursor, options);
          } finally {
            const key = `${target.cloud} ${region}`;
            if (!pageTimes.has(key)) pageTimes.set(key, []);
            pageTimes.get(key).push({ start, end: performance.now() });
          }
        },
      };
    },
  },
});

process.env.OUTBOX_RELAY_SCHEDULE = "0 0 0 1 1 *";
process.env.APPROVAL_SWEEP_SCHEDULE = "0 0 0 1 1 *";
process.env.GATEWAY_PUBLISH_SWEEP_SCHEDULE = "0 0 0 1 1 *";
process.env.DRIFT_CHECK_SCHEDULE = "0 0 0 1 1 *";
process.env.KEY_LIFECYCLE_SCHEDULE = "0 0 0 1 1 *";
process.env.TOOL_DISCOVERY_SCHEDULE = "0 0 0 1 1 *";
process.env.AGENT_SYNC_SCHEDULE = "0 0 0 1 1 *";
process.env.PUBLISH_RETRY_FIRST_INTERVAL_MS = "100";
process.env.PUBLISH_RETRY_MAX_ATTEMPTS = "4";
for (const k of ["COSMOS_ENDPOINT", "AUTH_MODE", "AUTH_JWKS_URI", "EVENTGRID_TOPIC_ENDPOINT", "KEYVAULT_URI", "AIGOV_PUBLIC_URL", "WEBSITE_HOSTNAME"]) delete process.env[k];
const dataDir = mkdtempSync(join(tmpdir(), "aigov-bench-agents-"));
const app = await startApp({ port: 0, dataDir, quiet: true, gatewayPort: 0, backendsPort: 0 });
memory.app = rssMb();

const { request, close: closeHttp } = httpClient(16);
const json = async (method, path, body, token) => {
  const r = await request(`${app.host.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body ? JSON.parse(r.body) : undefined;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const token = (await json("POST", "/.dev/token", { tenant: "t-bench-agents", user: "alice", roles: ["TenantAdmin"] })).access_token;
const project = await json("POST", "/api/projects", { name: "bench agents", environment: "dev", owner: "alice" }, token);
const con = {
  bedrock: await json(
    "POST",
    "/api/agent-connections",
    {
      name: "aws",
      projectId: project.id,
      scope: { cloud: "bedrock", accountId: "123456789012", endpoint: bedrock.endpoint },
      regions: REGIONS.bedrock,
      credentials: { kind: "awsAccessKey", accessKeyId: ACCESS_KEY, secretAccessKey: "fake-secret-access-key-value" },
      owner: "platform-team",
    },
    token,
  ),
  vertex: await json(
    "POST",
    "/api/agent-connections",
    {
      name: "gcp",
      projectId: project.id,
      scope: { cloud: "vertex", projectId: vertex.projectId, endpoint: `http://${vertex.host}:${vertex.port}` },
      regions: REGIONS.vertex,
      credentials: { kind: "accessToken", token: "fake-google-token" },
    },
    token,
  ),
  foundry: await json(
    "POST",
    "/api/agent-connections",
    {
      name: "foundry",
      projectId: project.id,
      scope: { cloud: "foundry", projectEndpoints: foundry.projectEndpoints() },
      regions: REGIONS.foundry,
      credentials: { kind: "accessToken", token: "fake-entra-token" },
    },
    token,
  ),
};

/** A run's sync orchestration (one instance per run: src/pillars/agents/sync/drive.ts) through the durable HTTP API. */
const driverStatus = async (runId) => {
  const r = await request(`${app.host.url}/runtime/webhooks/durabletask/instances/agent-sync-${runId}`, { headers: { "x-functions-key": app.durableKey } });
  return r.status === 404 ? undefined : JSON.parse(r.body).runtimeStatus;
};

// ---- one round: the three syncs started together ----
async function syncOne(cloud) {
  const t = performance.now();
  const run = await json("POST", `/api/agent-connections/${con[cloud].id}:sync`, undefined, token);
  let done;
  for (;;) {
    const now = await json("GET", `/api/agent-connections/${con[cloud].id}/runs/${run.id}`, undefined, token);
    if (now.status !== "running") {
      done = { cloud, run: now, wallMs: performance.now() - t };
      break;
    }
    if (performance.now() - t > SYNC_TIMEOUT_MS) return { cloud, run: now, wallMs: performance.now() - t, timedOut: true };
    await sleep(POLL_MS);
  }
  // The run's report is final once agentSyncFinish ran; its orchestration completes a little later (the lag is reported).
  const t1 = performance.now();
  for (;;) {
    const s = await driverStatus(run.id);
    if (!["Running", "Pending", "ContinuedAsNew"].includes(s)) break;
    await sleep(25);
  }
  return { ...done, driverLagMs: performance.now() - t1 };
}

const fmtS = (ms) => `${(ms / 1000).toFixed(2)} s`;
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const round = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(d));

/** Peak one-second count and average rate over the seconds with traffic, per "<kind> <region>". */
function rates(cloud) {
  const out = [];
  for (const [key, m] of perSecond[cloud]) {
    const secs = [...m.keys()];
    const first = Math.min(...secs);
    const last = Math.max(...secs);
    const total = [...m.values()].reduce((a, b) => a + b, 0);
    let peakMinute = 0;
    for (const s of secs) {
      let n = 0;
      for (let x = s; x < s + 60; x++) n += m.get(x) ?? 0;
      peakMinute = Math.max(peakMinute, n);
    }
    const [kind, region] = key.split(" ");
    out.push({ kind, region, total, peak: Math.max(...m.values()), avg: total / (last - first + 1), peakMinute });
  }
  return out.sort((a, b) => (a.kind + a.region < b.kind + b.region ? -1 : 1));
}

async function syncRound(label, expect) {
  for (const cloud of CLOUDS) {
    fakes[cloud].state.resetStats();
    perSecond[cloud].clear();
  }
  pageTimes.clear();
  sourcesBuilt = 0;
  sourceBuildMs = 0;
  globalThis.gc?.();
  const rssBefore = rssMb();
  const peakReset = resetPeak();
  const t = performance.now();
  const results = await Promise.all(CLOUDS.map(syncOne));
  const settledMs = performance.now() - t;
  // From the three POSTs to the last final report (the drivers' completion after it is reported apart).
  const totalMs = Math.max(...results.map((r) => r.wallMs));
  const peak = peakMb();
  const rssAfter = rssMb();

  console.log(`\n== ${label} ==`);
  console.log(`all three: ${fmtS(totalMs)} wall to the last final report (this clock, poll ${POLL_MS} ms), ${fmtS(settledMs)} until their orchestrations completed; RSS ${mb(rssBefore)} → ${mb(rssAfter)}, peak ${mb(peak)}${peakReset ? " (since this round began)" : " (since process start: clear_refs refused)"}; ${heap()}`);
  let agents = 0;
  const lags = [];
  for (const { cloud, run, wallMs, timedOut, driverLagMs } of results) {
    const c = run.counts;
    agents += c.listed;
    const exp = expect(cloud);
    const bad = Object.entries(exp).filter(([k, v]) => c[k] !== v);
    console.log(
      `${pad(cloud, 8)} ${pad(run.status, 10)} report ${lpad(fmtS(run.durationMs ?? NaN), 9)}, wall ${lpad(fmtS(wallMs), 9)}, ${lpad(round(c.listed / ((run.durationMs ?? wallMs) / 1000)), 7)} agents/s | ` +
        `listed ${c.listed} discovered ${c.discovered} changed ${c.changed} unchanged ${c.unchanged} removedAtSource ${c.removedAtSource} returned ${c.returned} malformed ${c.malformed} conflicts ${c.conflicts} | ` +
        `pages ${run.regions.map((r) => `${r.region}:${r.pages}${r.status === "completed" ? "" : `(${r.status}${r.error ? `: ${r.error.message}` : ""})`}`).join(" ")}`,
    );
    if (driverLagMs !== undefined) lags.push(`${cloud} ${fmtS(driverLagMs)}`);
    if (timedOut) console.log(`!!!!! ${cloud}: TIMED OUT after ${fmtS(SYNC_TIMEOUT_MS)}: the run was still running`);
    if (bad.length) console.log(`!!!!! MISMATCH ${cloud}: ${bad.map(([k, v]) => `${k} ${c[k]} ≠ expected ${v}`).join(", ")} !!!!!`);
  }
  console.log(`agents listed per second, all three: ${round(agents / (totalMs / 1000))}; orchestration completed after the final report by (≤ 25 ms poll): ${lags.join(", ")}`);

  console.log("requests per cloud (fake stats: total / (lastAt − firstAt)):");
  const measured = {};
  for (const cloud of CLOUDS) {
    const s = fakes[cloud].stats();
    const window = s.firstAt !== undefined ? (s.lastAt - s.firstAt) / 1000 : 0;
    const faults = Object.entries(s.faults).filter(([, n]) => n > 0);
    console.log(
      `  ${pad(cloud, 8)} ${lpad(s.total, 6)} requests over ${lpad(window.toFixed(2), 7)} s = ${lpad(round(s.total / window), 7)} req/s | by kind ${Object.entries(s.byKind).map(([k, n]) => `${k} ${n}`).join(", ")} | by status ${Object.entries(s.byStatus).map(([k, n]) => `${k} ${n}`).join(", ")}${faults.length ? ` | faults ${faults.map(([k, n]) => `${k} ${n}`).join(", ")}` : ""}`,
    );
    measured[cloud] = rates(cloud);
  }

  // Where a page's time goes: the cloud listing (listPage, SDK + fake) against the rest of the page
  // activity (registry writes, seen record, durable scheduling), i.e. the gap until the next page's listing.
  console.log("page time (per region: pages, listPage mean/max, gap to next page mean/max; sources built / mean build time):");
  for (const [key, times] of [...pageTimes].sort()) {
    const list = times.map((p) => p.end - p.start);
    const gaps = times.slice(1).map((p, i) => p.start - times[i].end);
    const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    console.log(`  ${pad(key, 22)} ${lpad(times.length, 4)} pages, listPage ${lpad(round(mean(list), 0), 5)} / ${lpad(round(Math.max(...list), 0), 5)} ms, gap ${lpad(round(mean(gaps), 0), 5)} / ${lpad(round(gaps.length ? Math.max(...gaps) : NaN, 0), 5)} ms`);
  }
  console.log(`  ${sourcesBuilt} sources built (kept across page activities), ${round(sourceBuildMs / Math.max(1, sourcesBuilt), 2)} ms each`);
  return { results, totalMs, measured, peak };
}

const seededTotal = (cloud) => Object.values(seeded[cloud]).reduce((a, b) => a + b, 0);
console.log(
  `agent sync bench: ${CLOUDS.map((c) => `${c} ${seededTotal(c)} (${Object.entries(seeded[c]).map(([r, n]) => `${r} ${n}`).join(", ")})`).join("; ")}; ` +
    `fakes seeded in ${fmtS(seedMs)}`,
);
console.log(`memory: RSS at start ${mb(memory.start)}, after seeding the fakes ${mb(memory.fakes)} (fakes ≈ ${mb(memory.fakes - memory.start)}), after the app started ${mb(memory.app)} (app ≈ ${mb(memory.app - memory.fakes)})`);

// 1. First sync: everything is new.
const first = await syncRound("1. first sync (all new)", (cloud) => ({ listed: seededTotal(cloud), discovered: seededTotal(cloud), changed: 0, removedAtSource: 0, malformed: 0 }));

// 2. Nothing changed.
const second = await syncRound("2. second sync (nothing changed)", (cloud) => ({ listed: seededTotal(cloud), discovered: 0, changed: 0, unchanged: seededTotal(cloud), removedAtSource: 0, malformed: 0 }));

// 3. 1% changed and 0.5% removed at each source (every 100th agent by id changed, every 200th from the 50th removed).
const changedAt = {};
const removedAt = {};
for (const cloud of CLOUDS) {
  const state = fakes[cloud].state;
  changedAt[cloud] = 0;
  removedAt[cloud] = 0;
  for (const region of REGIONS[cloud]) {
    const list = state.list(region);
    const nChange = Math.round(list.length * 0.01);
    const nRemove = Math.round(list.length * 0.005);
    for (let i = 0; i < nChange && i * 100 < list.length; i++) {
      state.update(region, list[i * 100].id, { description: `changed for the bench (${i})` });
      changedAt[cloud] += 1;
    }
    for (let i = 0; i < nRemove && 50 + i * 200 < list.length; i++) {
      state.remove(region, list[50 + i * 200].id);
      removedAt[cloud] += 1;
    }
  }
}
const third = await syncRound("3. third sync (1% changed, 0.5% removed at each source)", (cloud) => ({
  listed: seededTotal(cloud) - removedAt[cloud],
  discovered: 0,
  changed: changedAt[cloud],
  unchanged: seededTotal(cloud) - removedAt[cloud] - changedAt[cloud],
  removedAtSource: removedAt[cloud],
  malformed: 0,
}));

// 4. Memory.
globalThis.gc?.();
memory.end = rssMb();
console.log(`\n== memory ==`);
console.log(
  `RSS: start ${mb(memory.start)}, fakes seeded ${mb(memory.fakes)} (≈ ${mb(memory.fakes - memory.start)} for the fakes' ${CLOUDS.map(seededTotal).reduce((a, b) => a + b, 0)} agents), app started ${mb(memory.app)}, ` +
    `peak during sync 1 / 2 / 3: ${mb(first.peak)} / ${mb(second.peak)} / ${mb(third.peak)}, end ${mb(memory.end)}; process peak VmHWM ${mb(peakMb())} (after any reset); ${heap()}${globalThis.gc ? " (after gc)" : " (run with --expose-gc to collect first)"}`,
);

// HEAP_SNAPSHOT=<file>: a heap snapshot of this thread now (after the three syncs, before the app stops).
if (process.env.HEAP_SNAPSHOT) {
  const { writeHeapSnapshot } = await import("node:v8");
  console.log(`heap snapshot: ${writeHeapSnapshot(process.env.HEAP_SNAPSHOT)}`);
}

// 5. Measured rates against the documented quotas (first sync: the busiest).
console.log(`\n== measured request rates (first sync) vs documented quotas ==`);
console.log(`${pad("cloud", 8)} ${pad("call", 22)} ${pad("region", 13)} ${lpad("requests", 8)} ${lpad("avg/s", 7)} ${lpad("peak 1 s", 8)} ${lpad("peak 60 s", 9)} ${lpad("quota/s", 8)}  verdict`);
for (const cloud of CLOUDS) {
  for (const r of first.measured[cloud]) {
    const quota = QUOTAS[cloud].perSecond[r.kind];
    const verdict =
      quota === undefined
        ? "no quota looked up for this call"
        : quota === null
          ? "no documented rate limit"
          : r.peak > quota || r.avg > quota
            ? `OVER QUOTA ×${round(Math.max(r.peak, r.avg) / quota)}: real endpoints are paced (sources/pacing.ts), fakes are not`
            : "within quota";
    console.log(`${pad(cloud, 8)} ${pad(r.kind, 22)} ${pad(r.region, 13)} ${lpad(r.total, 8)} ${lpad(round(r.avg), 7)} ${lpad(r.peak, 8)} ${lpad(r.peakMinute, 9)} ${lpad(quota === null || quota === undefined ? "—" : round(quota), 8)}  ${verdict}`);
  }
}
console.log("quota sources:");
for (const cloud of CLOUDS) console.log(`  ${pad(cloud, 8)} ${QUOTAS[cloud].scope}: ${QUOTAS[cloud].source}`);
// The least time the first sync's requests need per region when each call is held to its documented quota
// (the quotas are independent per call, so the slowest call decides).
console.log("at the documented quotas, the first sync's requests need at least (per region, slowest call decides):");
for (const cloud of CLOUDS) {
  const byRegion = new Map();
  for (const r of first.measured[cloud]) {
    const quota = QUOTAS[cloud].perSecond[r.kind];
    if (!quota) continue;
    const need = r.total / quota;
    if (need > (byRegion.get(r.region)?.need ?? -1)) byRegion.set(r.region, { need, kind: r.kind });
  }
  const measuredS = first.results.find((x) => x.cloud === cloud).run.durationMs / 1000;
  console.log(
    `  ${pad(cloud, 8)} ${byRegion.size ? [...byRegion].map(([region, { need, kind }]) => `${region} ${round(need)} s (${kind})`).join(", ") : "no documented rate limit"}; measured here ${round(measuredS)} s`,
  );
}
console.log(
  "note: here every request costs this process's CPU (SDK and fake share one event loop), not network time; in a real cloud the in-flight bound " +
    "(Bedrock: 8 detail requests at a time per page, one page at a time per region; Vertex, Foundry: one list request per page) caps the rate at about in-flight / latency.",
);

closeHttp();
overrideServices({});
await app.stop();
await Promise.all([bedrock.close(), vertex.close(), foundry.close()]);
// The data dir holds the embedded Cosmos journal (tens of MB per run).
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
