// Scheduled rotation of N virtual keys on the local host (as `npm start` runs it, fresh data dir):
//   npm run bench:keys [-- N]        (default 10000; CONCURRENCY=8 for the key creation)
// 1. creates a project (keyPolicy: rotateAfterDays 1, overlap 0 h), a model and N keys through the API;
// 2. makes every key due by writing secretCreatedAt two days into the past, straight into the embedded
//    Cosmos (@azure/cosmos, as the tests tamper with t.container()): no production hook, no fake clock;
// 3. triggers the keyLifecycle timer once (POST /admin/functions/keyLifecycle) and waits until every key
//    has rotationCount ≥ 1 and no rotation in progress.
// Reports keys/s, failures, peak concurrency (orchestrations Running/Pending, sampled), secret store writes/s
// (versions created/disabled in the window, read back from <dataDir>/secrets) and gateway writes/s
// (subscription files replaced, counted with fs.watch), then the bounds Key Vault and ARM would impose.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, watch } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CosmosClient } from "@azure/cosmos";
import { httpClient, root } from "./lib.mjs";

const N = Number(process.argv[2] ?? process.env.N ?? 10000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8);
const PARKED = "0 0 0 1 1 *";
const require = createRequire(import.meta.url);
const { EncryptedFileSecretStore } = require(join(root, "dist/src/adapters/local/encrypted-secret-store.js"));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => process.stderr.write(`[bench:keys] ${m}\n`);

/** The app as `npm start` runs it, with the lifecycle timer parked (we trigger it) and a fast publish sweep. */
function startApp(dataDir) {
  const env = { ...process.env, PORT: "0", GATEWAY_PORT: "0", MOCK_BACKENDS_PORT: "0", AIGOV_DATA_DIR: dataDir };
  for (const k of Object.keys(env)) if (/^(COSMOS_|AUTH_|EVENTGRID_|KEYVAULT_|WEBSITE_|AIGOV_PUBLIC|APIM_)/.test(k)) delete env[k];
  // Unpaced (the default paces scheduled rotations to what ARM and Key Vault allow in Azure: see the
  // bound printed at the end); ROTATIONS_PER_RUN=120 shows the paced job.
  Object.assign(env, {
    KEY_LIFECYCLE_SCHEDULE: PARKED,
    DRIFT_CHECK_SCHEDULE: PARKED,
    GATEWAY_PUBLISH_SWEEP_SCHEDULE: "*/2 * * * * *",
    KEY_ROTATIONS_PER_RUN: process.env.ROTATIONS_PER_RUN ?? String(Math.max(N, 1)),
  });
  const child = spawn(process.execPath, [...(process.env.CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.CPU_PROF}`] : []), join(root, "dist/src/local-app/main.js")], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = [];
  const listeners = new Set();
  let buf = "";
  const onData = (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      if (process.env.BENCH_DEBUG || line.includes("key lifecycle: key ")) log(`app: ${line}`);
      for (const l of listeners) l(line);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  return new Promise((resolve, reject) => {
    const ready = () => {
      const url = lines.map((l) => /listening on (http:\/\/\S+)/.exec(l)?.[1]).find(Boolean);
      const cosmos = lines.map((l) => /cosmos \(embedded\): (http:\/\/\S+)/.exec(l)?.[1]).find(Boolean);
      if (url && cosmos) {
        listeners.delete(ready);
        resolve({ child, url, cosmos, lines, onLine: (fn) => listeners.add(fn) });
      }
    };
    listeners.add(ready);
    child.on("exit", (c) => reject(new Error(`app exited ${c}: ${lines.join("\n")}`)));
  });
}

const dataDir = mkdtempSync(join(tmpdir(), "aigov-bench-keys-"));
const app = await startApp(dataDir);
// The durable HTTP API needs the host's system key, made at first start under the data dir.
const durableKey = () => ({ "x-functions-key": readFileSync(join(dataDir, "durabletask.key"), "utf8").trim() });
const { request, close: closeHttp } = httpClient(CONCURRENCY * 2 + 4);
const json = async (res, what) => {
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${res.body}`);
  return JSON.parse(res.body);
};
const out = { keys: N, creationConcurrency: CONCURRENCY, dataDir };
try {
  const { url } = app;
  const token = (await json(await request(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user: "carol", roles: ["TenantAdmin"] }) }), "token")).access_token;
  const H = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const post = async (path, body) => json(await request(`${url}/api${path}`, { method: "POST", headers: H, body: JSON.stringify(body) }), `POST ${path}`);
  const get = async (path) => json(await request(`${url}/api${path}`, { headers: H }), `GET ${path}`);
  const timer = (name) => request(`${url}/admin/functions/${name}`, { method: "POST" });

  const project = await post("/projects", { name: "bench keys", environment: "dev", owner: "carol", keyPolicy: { defaultTtlDays: 90, maxTtlDays: 365, rotateAfterDays: 1, rotationOverlapHours: 0 } });
  await post(`/projects/${project.id}/models`, {
    name: "gpt-4o",
    provider: "azure-openai",
    modelName: "gpt-4o",
    backends: [{ id: "weu", url: "https://gpt-4o.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
  });
  // A TenantAdmin publishes the project (automation never does); the keys sync once its API is there.
  await post("/gateway/publish", { reason: "bench keys" });
  const first = await post(`/projects/${project.id}/keys`, { name: "key 0" });
  for (;;) {
    if ((await get(`/projects/${project.id}/keys/${first.id}`)).gateway.state === "synced") break;
    // The publish sweep publishes the tenant's revision; the lifecycle job then syncs the pending key.
    await timer("gatewayPublishSweep");
    await sleep(200);
    await timer("keyLifecycle");
  }

  // --- creation through the API, CONCURRENCY at a time
  let next = 1;
  let createFailures = 0;
  let pendingAfterCreate = 0;
  const c0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const i = next++;
        const res = await request(`${url}/api/projects/${project.id}/keys`, { method: "POST", headers: H, body: JSON.stringify({ name: `key ${i}` }) });
        if (res.status !== 201) createFailures++;
        else if (JSON.parse(res.body).gateway.state !== "synced") pendingAfterCreate++;
        if (i % 1000 === 0) log(`created ${i} keys (${(i / ((performance.now() - c0) / 1000)).toFixed(1)}/s)`);
      }
    }),
  );
  const createSeconds = (performance.now() - c0) / 1000;
  out.creation = { seconds: +createSeconds.toFixed(1), keysPerSecond: +((N - 1) / createSeconds).toFixed(1), failures: createFailures, notSyncedOnReturn: pendingAfterCreate };
  log(`created ${N} keys in ${createSeconds.toFixed(1)} s`);

  // --- make every key due: secretCreatedAt two days ago (rotateAfterDays is 1)
  const cosmos = new CosmosClient({ endpoint: app.cosmos, key: "local-embedded-server-accepts-any-key", connectionPolicy: { enableEndpointDiscovery: false } });
  const container = cosmos.database("aigov").container("resources");
  const pk = ["bench", project.id];
  const keyDocs = async () => (await container.items.query({ query: "SELECT * FROM c WHERE c.docType = 'virtualKey'" }, { partitionKey: pk }).fetchAll()).resources;
  const past = new Date(Date.now() - 2 * 86_400_000).toISOString();
  const d0 = performance.now();
  const docs = await keyDocs();
  let at = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (at < docs.length) {
        const d = docs[at++];
        await container.item(d.id, pk).replace({ ...d, secretCreatedAt: past }, { accessCondition: { type: "IfMatch", condition: d._etag } });
      }
    }),
  );
  out.makeDueSeconds = +((performance.now() - d0) / 1000).toFixed(1);
  log(`${docs.length} keys made due in ${out.makeDueSeconds} s`);

  // --- counters: gateway subscription writes (an atomic replace = one rename onto <keyId>.json)
  let gatewayWrites = 0;
  const watcher = watch(join(dataDir, "apim", "subscriptions"), (event, name) => {
    if (event === "rename" && name && /^key_[0-9a-z]{20}\.json$/.test(name)) gatewayWrites++;
  });
  // Peak concurrency: orchestrations Running or Pending, sampled every 250 ms.
  let peak = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const res = await request(`${url}/runtime/webhooks/durabletask/instances?runtimeStatus=Running,Pending&instanceIdPrefix=key_&showInput=false`, { headers: durableKey() });
      if (res.status < 300) {
        const n = JSON.parse(res.body).length;
        peak = Math.max(peak, n);
        samples++;
      }
      await sleep(250);
    }
  })();

  // --- the scheduled job, once
  let jobLine;
  app.onLine((l) => {
    if (/key lifecycle: \d+ scheduled rotation/.test(l)) jobLine = l;
  });
  const t0 = Date.now();
  const p0 = performance.now();
  await timer("keyLifecycle");
  let jobSeconds;
  let progressAt = performance.now();
  for (;;) {
    await sleep(500);
    if (jobLine && jobSeconds === undefined) {
      jobSeconds = (performance.now() - p0) / 1000;
      log(`job done after ${jobSeconds.toFixed(1)} s: ${jobLine}`);
    }
    if (performance.now() - progressAt > 10_000) {
      progressAt = performance.now();
      log(`${((performance.now() - p0) / 1000).toFixed(0)} s: gateway writes ${gatewayWrites}, peak ${peak}`);
    }
    if (jobSeconds === undefined) continue;
    const res = await request(`${url}/runtime/webhooks/durabletask/instances?runtimeStatus=Running,Pending&instanceIdPrefix=key_&showInput=false`, { headers: durableKey() });
    if (res.status < 300 && JSON.parse(res.body).length === 0) break;
  }
  const seconds = (performance.now() - p0) / 1000;
  const t1 = Date.now();
  sampling = false;
  await sampler;
  watcher.close();

  // --- verification: every key rotated, every orchestration completed
  const after = await keyDocs();
  const rotated = after.filter((d) => d.rotationCount >= 1 && !d.rotation && d.gateway.syncedGen >= d.gateway.desiredGen).length;
  const byStatus = {};
  for (const i of await json(await request(`${url}/runtime/webhooks/durabletask/instances?instanceIdPrefix=key_&showInput=false`, { headers: durableKey() }), "instances")) {
    byStatus[i.runtimeStatus] = (byStatus[i.runtimeStatus] ?? 0) + 1;
  }
  cosmos.dispose();
  const jobFailed = Number(/(\d+) failed \(retried next run\)/.exec(jobLine ?? "")?.[1] ?? 0);
  const jobRetried = Number(/(\d+) key\(s\) retried/.exec(jobLine ?? "")?.[1] ?? 0);

  // --- secret store writes in the window, from the store itself (versions created; versions disabled)
  const store = new EncryptedFileSecretStore(join(dataDir, "secrets"));
  let created = 0;
  let disabled = 0;
  const names = readdirSync(join(dataDir, "secrets")).filter((f) => f.endsWith(".secret")).map((f) => f.slice(0, -".secret".length));
  for (const name of names) {
    for (const v of await store.listVersions(name)) {
      if (v.createdOn.getTime() >= t0 && v.createdOn.getTime() <= t1) created++;
      if (!v.enabled && v.updatedOn.getTime() >= t0 && v.updatedOn.getTime() <= t1) disabled++;
    }
  }

  const rate = rotated / seconds;
  out.rotation = {
    seconds: +seconds.toFixed(1),
    jobSeconds: +(jobSeconds ?? 0).toFixed(1),
    keysPerSecond: +rate.toFixed(1),
    failures: { keysNotRotated: N - rotated, orchestrationsNotCompleted: N - (byStatus.Completed ?? 0), jobKeyFailures: jobFailed, jobKeysRetriedInRun: jobRetried },
    orchestrations: byStatus,
    peakConcurrency: peak,
    concurrencySamples: samples,
    secretStore: { versionsCreated: created, versionsDisabled: disabled, createsPerSecond: +(created / seconds).toFixed(1), writesPerSecond: +((created + disabled) / seconds).toFixed(1) },
    gateway: { subscriptionWrites: gatewayWrites, writesPerSecond: +(gatewayWrites / seconds).toFixed(1), writesPerRotation: +(gatewayWrites / Math.max(1, rotated)).toFixed(2) },
  };
  // --- the bounds of the management planes the app would call in Azure
  // Key Vault: 300 secret CREATE per 10 s per vault (learn.microsoft.com/azure/key-vault/general/service-limits);
  // one new secret version per rotation (the filler is derived, never stored).
  const kv = 300 / 10 / Math.max(1, created / Math.max(1, rotated));
  // ARM (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling): token bucket per
  // subscription, principal and region: writes 200 bucket / 10 per s refill, reads 250 / 25 per s. Per subscription
  // sync the ARM publisher sends HEAD (entity tag) + PUT + GET + POST listSecrets = 2 reads + 2 writes (POST is a write).
  const syncsPerRotation = gatewayWrites / Math.max(1, rotated);
  const armWrite = 10 / (2 * syncsPerRotation);
  const armRead = 25 / (2 * syncsPerRotation);
  out.bounds = {
    keyVaultRotationsPerSecond: +kv.toFixed(1),
    armRotationsPerSecondSustained: +Math.min(armWrite, armRead).toFixed(2),
    armBurstRotations: Math.floor(200 / (2 * syncsPerRotation)),
    bindingBound: armWrite < kv ? "ARM writes (10/s per subscription+principal+region)" : "Key Vault secret creates (30/s per vault)",
    measuredOverKeyVault: +(rate / kv).toFixed(2),
    measuredOverArm: +(rate / Math.min(armWrite, armRead)).toFixed(2),
    minutesFor10kKeysAtArmBound: +(10000 / Math.min(armWrite, armRead) / 60).toFixed(0),
  };
  console.log(JSON.stringify(out, null, 2));
  if (out.rotation.failures.keysNotRotated || out.rotation.failures.orchestrationsNotCompleted || createFailures) process.exitCode = 1;
} finally {
  app.child.kill("SIGTERM");
  closeHttp();
}
