// An access review over N virtual keys on the local host (as `npm start` runs it): the keys are created
// through the API, a campaign over the project's keys starts (snapshot of N items with their
// recommendations, the stage's reviewers), a reviewer decides D of them, the campaign is stopped with
// auto-apply and the default "remove", and the orchestration revokes all N (each revocation confirmed
// at the local gateway). Reports the time of each phase, removals per second and the host's memory.
import { readFileSync } from "node:fs";
import { httpClient, startApp } from "./lib.mjs";

const N = Number(process.env.N ?? 1000);
const DECIDED = Number(process.env.DECIDED ?? 100);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);

const { request, close: closeHttp } = httpClient(CONCURRENCY * 2);
const { child, url } = await startApp();
const rssOf = () => {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0) / 1024);
  } catch {
    return undefined;
  }
};
const json = (r, status, what) => {
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.body}`);
  return JSON.parse(r.body);
};
const poll = async (what, f, ms = 20) => {
  for (;;) {
    const v = await f();
    if (v) return v;
    await new Promise((r) => setTimeout(r, ms));
  }
};
try {
  const token = async (user, roles) =>
    JSON.parse((await request(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user, roles }) })).body).access_token;
  const admin = { authorization: `Bearer ${await token("tara", ["TenantAdmin"])}`, "content-type": "application/json" };
  const olivia = { authorization: `Bearer ${await token("olivia", [])}`, "content-type": "application/json" };
  const project = json(await request(`${url}/api/projects`, { method: "POST", headers: admin, body: JSON.stringify({ name: "reviewed", environment: "dev", owner: "olivia" }) }), 201, "project");

  let t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) {
      const i = next++;
      json(await request(`${url}/api/projects/${project.id}/keys`, { method: "POST", headers: admin, body: JSON.stringify({ name: `key ${i}`, owner: `dev-${i % 50}` }) }), 201, "key");
    }
  }));
  const keysSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const spec = { name: "bench", kind: "keys", scope: { level: "project", projectId: project.id }, stages: [{ reviewers: { type: "users", users: ["olivia"] } }], completion: { autoApply: true, defaultDecision: "remove" } };
  const review = json(await request(`${url}/api/access-reviews`, { method: "POST", headers: admin, body: JSON.stringify(spec) }), 201, "review");
  const started = await poll("in progress", async () => {
    const r = json(await request(`${url}/api/access-reviews/${review.id}`, { headers: admin }), 200, "get");
    return r.status === "inProgress" ? r : undefined;
  });
  const startSeconds = (performance.now() - t0) / 1000;

  // The reviewer's own items, page by page, then D decisions (keep).
  t0 = performance.now();
  const items = [];
  let continuation;
  do {
    const q = new URLSearchParams({ reviewer: "me", maxPageSize: "100", ...(continuation ? { continuationToken: continuation } : {}) });
    const page = json(await request(`${url}/api/access-reviews/${review.id}/items?${q}`, { headers: olivia }), 200, "items");
    items.push(...page.items);
    continuation = page.continuationToken;
  } while (continuation);
  const listSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < Math.min(DECIDED, items.length)) {
      const item = items[next++];
      json(await request(`${url}/api/access-reviews/${review.id}/items/${item.id}:decide`, { method: "POST", headers: olivia, body: JSON.stringify({ decision: "approve", justification: "in use" }) }), 200, "decide");
    }
  }));
  const decideSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  json(await request(`${url}/api/access-reviews/${review.id}:stop`, { method: "POST", headers: { ...admin, "if-match": `"${started.etag}"` }, body: JSON.stringify({ reason: "bench" }) }), 200, "stop");
  let peakRss = 0;
  const done = await poll("completed", async () => {
    peakRss = Math.max(peakRss, rssOf() ?? 0);
    const r = json(await request(`${url}/api/access-reviews/${review.id}`, { headers: admin }), 200, "get");
    return r.status === "completed" ? r : undefined;
  }, 200);
  const completeSeconds = (performance.now() - t0) / 1000;
  const removed = done.report.applied?.removed ?? 0;
  console.log(JSON.stringify({
    keys: N,
    items: started.itemCount,
    decided: Math.min(DECIDED, items.length),
    createKeysSeconds: +keysSeconds.toFixed(1),
    startToInProgressSeconds: +startSeconds.toFixed(2),
    listItemsSeconds: +listSeconds.toFixed(2),
    decisionsPerSecond: +(Math.min(DECIDED, items.length) / decideSeconds).toFixed(1),
    stopToCompletedSeconds: +completeSeconds.toFixed(1),
    removed,
    removalsPerSecond: +(removed / completeSeconds).toFixed(1),
    report: done.report,
    hostPeakRssMb: peakRss || undefined,
  }, null, 2));
} finally {
  child.kill("SIGTERM");
  closeHttp();
}
