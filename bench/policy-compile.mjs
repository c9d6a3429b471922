// Policy compiler throughput: a tenant with PROJECTS projects × MODELS models (default 100 × 1,000),
// compiled by the built module (npm run build first). Prints the total time, the
// time per project (target < 200 ms), the largest document and the document sizes with 10 and with
// 100,000 virtual keys (they must be identical: keys are never compiled into a document).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL("..", import.meta.url));
const { compile } = require(`${root}dist/src/policy/compile.js`);

const PROJECTS = Number(process.env.PROJECTS ?? 100);
const MODELS = Number(process.env.MODELS ?? 1000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

const MI = { type: "managedIdentity", resource: "https://cognitiveservices.azure.com" };
const REGIONS = ["swedencentral", "westeurope", "francecentral", "eastus"];

function model(p, m) {
  const id = `m${m}`;
  const status = m % 50 === 7 ? "blocked" : m % 20 === 3 ? "deprecated" : "active";
  const ab = m % 100 === 11;
  const backends = [0, 1, 2].map((k) => ({
    id: `b${p}_${m}_${k}`,
    url: `https://aoai-${p}-${m}-${k}.openai.azure.com/openai`,
    region: REGIONS[(m + k) % REGIONS.length],
    priority: k === 2 ? 2 : 1,
    weight: k === 0 ? 3 : 1,
    ...(ab ? { version: k % 2 ? "2024-11-20" : "2024-08-06" } : {}),
    auth:
      m % 10 === 5
        ? { type: "keyVaultSecret", namedValueId: `key-${p}-${m}`, secretIdentifier: `https://kv-${p}.vault.azure.net/secrets/key-${m}`, header: "api-key" }
        : MI,
  }));
  return {
    id,
    name: `model-${m}-${m % 3 ? "chat" : "reasoning"}`,
    displayName: `Model ${m} "<&>"`,
    provider: m % 10 === 5 ? "openai" : "azure-openai",
    status,
    ...(status === "deprecated" ? { deprecatedAt: "2026-01-15", sunsetDate: m % 40 === 3 ? "2026-09-30" : "2026-12-31" } : {}),
    backends,
    pricing: { currency: "USD", inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 },
    ...(m % 4 === 0 ? { allowedDataClasses: ["public", "internal"] } : {}),
    ...(ab ? { abSplit: [{ version: "2024-08-06", weight: 90 }, { version: "2024-11-20", weight: 10 }] } : {}),
    settings: m % 25 === 0 ? { tokens: { perMinute: { limit: 5000 } }, contentSafety: { categories: { Violence: 2 } } } : {},
  };
}

function project(p, models) {
  return {
    id: `prj_${String(p).padStart(4, "0")}`,
    name: `Project ${p} <&>`,
    keyTiers: ["gold", "silver"],
    settings: { tokens: { quota: { limit: 100_000_000, period: "Monthly", per: "project" } }, headers: { required: [{ name: "X-Team" }] } },
    models: Array.from({ length: models }, (_, m) => model(p, m)),
  };
}

function tenant(projects, models, keys = 0) {
  const ps = Array.from({ length: projects }, (_, p) => project(p, models));
  return {
    tenantId: "contoso",
    gatewayTier: "v2",
    settings: {
      tokens: { perMinute: { limit: 20_000, per: "key" } },
      contentSafety: { shieldPrompt: true, blocklists: ["corp_terms"] },
      semanticCache: { scoreThreshold: 0.05, durationSeconds: 300 },
      requests: { rate: { calls: 120, renewalPeriodSeconds: 60 } },
      correlationId: {},
      headers: { stripSecrets: {} },
      metrics: { tokens: {} },
      failover: { retry: { enabled: true } },
      dataClass: { allowed: ["public", "internal", "confidential"] },
    },
    services: {
      contentSafety: { url: "https://contoso-cs.cognitiveservices.azure.com" },
      embeddings: { url: "https://contoso-aoai.openai.azure.com/openai/deployments/embeddings" },
    },
    keyTiers: [
      { id: "gold", limits: { tokensPerMinute: 100_000 } },
      { id: "silver", limits: { tokensPerMinute: 50_000, requestRate: { calls: 600, renewalPeriodSeconds: 60 } } },
      { id: "bronze", limits: { tokensPerMinute: 5_000 } },
    ],
    projects: ps,
    virtualKeys: Array.from({ length: keys }, (_, i) => ({ id: `vk${i}`, projectId: ps[i % ps.length].id, ...(i % 3 ? { tier: i % 2 ? "gold" : "silver" } : {}) })),
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

// Whole tenant.
const input = tenant(PROJECTS, MODELS);
const totals = [];
let result;
for (let i = 0; i < ROUNDS; i++) {
  const t0 = performance.now();
  result = compile(input);
  totals.push(performance.now() - t0);
}
const total = median(totals);
const largest = result.sizes.reduce((a, b) => (b.bytes > a.bytes ? b : a));
const counts = result.artifacts.reduce((acc, a) => ((acc[a.kind === "backend" ? `backend:${a.type}` : a.kind] = (acc[a.kind === "backend" ? `backend:${a.type}` : a.kind] ?? 0) + 1), acc), {});

// One project alone (the unit of recompilation when a project changes).
const one = tenant(1, MODELS);
const singles = [];
for (let i = 0; i < Math.max(5, ROUNDS); i++) {
  const t0 = performance.now();
  compile(one);
  singles.push(performance.now() - t0);
}

// Keys: same tenant shape (10 projects) with 10 and with 100,000 virtual keys.
const few = compile(tenant(10, MODELS, 10));
const many = compile(tenant(10, MODELS, 100_000));
const sum = (r) => r.sizes.reduce((n, s) => n + s.bytes, 0);
const maxOf = (r) => Math.max(...r.sizes.map((s) => s.bytes));
const identical = JSON.stringify(few.sizes) === JSON.stringify(many.sizes);

console.log(`policy compile: ${PROJECTS} projects × ${MODELS} models (${PROJECTS * MODELS} models), median of ${ROUNDS}`);
console.log(`  total                 ${total.toFixed(0)} ms  (runs: ${totals.map((t) => t.toFixed(0)).join(", ")} ms)`);
console.log(`  per project (total/N) ${(total / PROJECTS).toFixed(1)} ms   target < 200 ms`);
console.log(`  one project alone     ${median(singles).toFixed(1)} ms (median of ${singles.length}, includes input validation)`);
console.log(`  artifacts             ${result.artifacts.length} ${JSON.stringify(counts)}; explain entries ${result.explain.length}`);
console.log(`  largest document      ${largest.ref} ${largest.bytes} bytes (${kib(largest.bytes)}; limit 512 KiB)`);
console.log(`  keys 10 vs 100,000    largest ${maxOf(few)} vs ${maxOf(many)} bytes; total ${sum(few)} vs ${sum(many)} bytes; sizes identical: ${identical}`);
if (!identical) process.exitCode = 1;
