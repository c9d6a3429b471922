// The local gateway's cost and reaction time, with the app running as `npm start` runs it:
//  1. added latency per request: chat completions straight to the fake backend vs. through the local
//     gateway (subscription key, the compiled policy with a per-key token limit, rewrite, forward),
//     closed loop at CONCURRENCY callers, p50/p99, interleaved rounds;
//  2. time from an API change to the gateway enforcing it: a key revoked (401 at the gateway), and a
//     published settings change (a request rate of 1 a minute: the second request gets 429).
import { httpClient, startApp } from "./lib.mjs";

const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.DURATION_MS ?? 4000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const { request, close } = httpClient(CONCURRENCY * 2);

const app = await startApp({ GATEWAY_PUBLISH_SWEEP_SCHEDULE: "*/1 * * * * *", KEY_LIFECYCLE_SCHEDULE: "*/1 * * * * *" });
const out = () => app.output();
const gateway = /gateway: (http:\/\/127\.0\.0\.1:\d+)/.exec(out())?.[1];
const backends = /fake backends: (http:\/\/127\.0\.0\.1:\d+)/.exec(out())?.[1];
if (!gateway || !backends) throw new Error(`gateway or backends not started:\n${out()}`);

const json = async (method, path, body, token, extra = {}) => {
  const r = await request(`${app.url}${path}`, { method, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return { body: r.body ? JSON.parse(r.body) : undefined, etag: r.headers.etag };
};
const token = (await json("POST", "/.dev/token", { tenant: "t-bench", user: "alice", roles: ["TenantAdmin"] })).body.access_token;
const project = (await json("POST", "/api/projects", { name: "bench", environment: "dev", owner: "alice", settings: { tokens: { perMinute: { limit: 1_000_000_000, per: "key" } } } }, token)).body;
await json("POST", `/api/projects/${project.id}/models`, {
  name: "gpt-4o-mini",
  provider: "openai",
  modelName: "gpt-4o-mini",
  backends: [{ id: "b", url: "https://bench.mock.localhost/v1", region: "eastus", credential: { type: "apiKey", header: "api-key", key: "provider-key-123456" } }],
}, token);
const published = (await json("POST", "/api/gateway/publish", { reason: "bench" }, token)).body;
await until(async () => (await json("GET", `/api/gateway/revisions/${published.revision.id}`, undefined, token)).body.status === "published");
const key = (await json("POST", `/api/projects/${project.id}/keys`, { name: "bench" }, token)).body;
const prefix = /(aigov\/[a-z0-9]+\/prj_[a-z0-9]+)/.exec(JSON.stringify(await json("GET", `/api/projects/${project.id}/policy`, undefined, token)))?.[1];
if (!prefix) throw new Error("no API path in the compiled policy");
const chatUrl = `${gateway}/${prefix}/v1/chat/completions`;
const body = JSON.stringify({ model: "gpt-4o-mini", max_tokens: 8, messages: [{ role: "user", content: "how fast is the gateway" }] });
const viaGateway = () => request(chatUrl, { method: "POST", headers: { "content-type": "application/json", "api-key": key.key }, body });
const direct = () => request(`${backends}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", host: "bench.mock.localhost", "api-key": "provider-key-123456" }, body });
await until(async () => (await viaGateway()).status === 200);

async function phase(fn) {
  const latencies = [];
  let errors = 0;
  const end = performance.now() + DURATION_MS;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const r = await fn();
      if (r.status !== 200) errors++;
      latencies.push(performance.now() - t0);
    }
  }));
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { rps: latencies.length / (DURATION_MS / 1000), p50: q(0.5), p99: q(0.99), errors };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rounds = { direct: [], gateway: [] };
for (let i = 0; i < ROUNDS; i++) {
  rounds.direct.push(await phase(direct));
  rounds.gateway.push(await phase(viaGateway));
}
const summary = (rs) => ({ rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), errors: rs.reduce((n, r) => n + r.errors, 0) });
const d = summary(rounds.direct);
const g = summary(rounds.gateway);
console.log(`added latency, concurrency ${CONCURRENCY}, ${ROUNDS} rounds of ${DURATION_MS} ms (medians):`);
console.log(`  direct to the fake backend:  ${d.rps.toFixed(0)} req/s  p50 ${d.p50.toFixed(2)} ms  p99 ${d.p99.toFixed(2)} ms  errors ${d.errors}`);
console.log(`  through the local gateway:   ${g.rps.toFixed(0)} req/s  p50 ${g.p50.toFixed(2)} ms  p99 ${g.p99.toFixed(2)} ms  errors ${g.errors}`);
console.log(`  added by the gateway:        p50 +${(g.p50 - d.p50).toFixed(2)} ms  p99 +${(g.p99 - d.p99).toFixed(2)} ms`);

// 2a. A revocation: from the API call to the first 401 at the gateway.
const victim = (await json("POST", `/api/projects/${project.id}/keys`, { name: "to revoke" }, token)).body;
const call = (k) => request(chatUrl, { method: "POST", headers: { "content-type": "application/json", "api-key": k }, body });
await until(async () => (await call(victim.key)).status === 200);
const current = await json("GET", `/api/projects/${project.id}/keys/${victim.id}`, undefined, token);
let t0 = performance.now();
await json("POST", `/api/projects/${project.id}/keys/${victim.id}:revoke`, { reason: "bench" }, token, { "if-match": current.etag });
const answered = performance.now() - t0;
await until(async () => (await call(victim.key)).status === 401, 1);
const revoked = performance.now() - t0;

// 2b. A settings change: from the publish call to the first request the new rule refuses.
const p = await json("GET", `/api/projects/${project.id}`, undefined, token);
await json("PATCH", `/api/projects/${project.id}`, { settings: { requests: { rate: { calls: 1, renewalPeriodSeconds: 60, per: "key" } } } }, token, { "if-match": p.etag, "content-type": "application/merge-patch+json" });
t0 = performance.now();
const change = (await json("POST", "/api/gateway/publish", { reason: "rate limit" }, token)).body;
await until(async () => {
  const a = await call(key.key);
  const b = await call(key.key);
  return a.status === 429 || b.status === 429;
}, 1);
const enforced = performance.now() - t0;
const revision = (await json("GET", `/api/gateway/revisions/${change.revision.id}`, undefined, token)).body;
console.log("time from an API change to the gateway enforcing it:");
console.log(`  key revoked: the API answered in ${answered.toFixed(0)} ms (confirmed at the gateway); first 401 at the gateway after ${revoked.toFixed(0)} ms`);
console.log(`  settings published (revision ${revision.number}, ${revision.status}): first 429 at the gateway after ${enforced.toFixed(0)} ms`);

close();
app.child.kill("SIGTERM");

async function until(probe, every = 20, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > end) throw new Error("not reached in time");
    await new Promise((r) => setTimeout(r, every));
  }
}
