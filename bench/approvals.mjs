// Approval orchestrations end to end on the local host (as `npm start` runs it): N requests created
// and decided through the API by CONCURRENCY workers. Reports instances per second and the time from
// the decision (API call returns) to the orchestration's completion, p50/p95.
import { httpClient, startApp } from "./lib.mjs";

const N = Number(process.env.N ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);

const { request, close: closeHttp } = httpClient(CONCURRENCY * 2);

const { child, url, durableKey } = await startApp();
try {
  const token = async (user, roles) =>
    JSON.parse((await request(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user, roles }) })).body).access_token;
  const alice = { authorization: `Bearer ${await token("alice", ["Developer"])}`, "content-type": "application/json" };
  const bob = { authorization: `Bearer ${await token("bob", ["Reader"])}`, "content-type": "application/json" };
  // The tenant routes tool approvals to bob (who approves is the tenant's route, not the request's).
  const admin = { authorization: `Bearer ${await token("tara", ["TenantAdmin"])}`, "content-type": "application/json", "if-match": '"initial"' };
  const routes = { routes: [{ name: "tools", match: { subjectType: "tool" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }] }] };
  const put = await request(`${url}/api/approval-routes`, { method: "PUT", headers: admin, body: JSON.stringify(routes) });
  if (put.status !== 200) throw new Error(`setting the approval routes failed: ${put.status} ${put.body}`);
  const spec = (i) => JSON.stringify({
    subject: { resourceType: "tool", resourceId: `tool-${i}`, change: { enable: true } },
    justification: "bench",
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
        const s = await request(`${url}/runtime/webhooks/durabletask/instances/${a.id}`, { headers: durableKey });
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
  closeHttp();
}
