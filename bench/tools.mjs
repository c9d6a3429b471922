// The tools pillar's costs, with the app running as `npm start` runs it (npm run build first):
//  1. discovery of a 5,000-tool MCP server (the SDK's server on loopback, 100 tools a page): time from
//     registration to a succeeded discovery (durable orchestration: list, validate, hash, snapshot,
//     catalog) and the app's peak RSS before and after;
//  2. catalog search through the API over SERVERS × 5,000 tools (default 10 × 5,000 = 50,000), closed
//     loop at CONCURRENCY callers: p50/p99 per query kind;
//  3. compile time of a tenant with 100 toolboxes (the built compiler, in this process).
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { httpClient, root, startApp } from "./lib.mjs";

const require = createRequire(import.meta.url);
const { Server } = require("@modelcontextprotocol/sdk/server/index.js");
const { StreamableHTTPServerTransport } = require("@modelcontextprotocol/sdk/server/streamableHttp.js");
const { ListToolsRequestSchema, CallToolRequestSchema } = require("@modelcontextprotocol/sdk/types.js");

const TOOLS = Number(process.env.TOOLS ?? 5000);
const SERVERS = Number(process.env.SERVERS ?? 10);
const PAGE = 100;
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.DURATION_MS ?? 5000);
const TOOLBOXES = Number(process.env.TOOLBOXES ?? 100);

const WORDS = ["weather", "invoice", "ticket", "customer", "report", "deploy", "search", "calendar", "email", "storage", "billing", "metrics"];
/** The tools of server `n`: realistic sizes (title, description, a small schema, annotations), distinct names per server. */
const toolsOf = (n) =>
  Array.from({ length: TOOLS }, (_, i) => {
    const word = WORDS[(i + n) % WORDS.length];
    return {
      name: `${word}_${n}_${i}`,
      title: `${word} tool ${i}`,
      description: `Looks up ${word} records for the given account and returns them as JSON (tool ${i} of server ${n}).`,
      inputSchema: { type: "object", properties: { account: { type: "string", description: "account id" }, limit: { type: "integer", minimum: 1, maximum: 100 } }, required: ["account"] },
      annotations: { readOnlyHint: i % 3 !== 0, openWorldHint: false },
    };
  });

const lists = new Map();
const mcp = createServer(async (req, res) => {
  const n = Number(/\/mcp\/(\d+)/.exec(req.url ?? "")?.[1] ?? 0);
  if (!lists.has(n)) lists.set(n, toolsOf(n));
  const tools = lists.get(n);
  const server = new Server({ name: `bench-${n}`, version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async (r) => {
    const start = r.params?.cursor ? Number(r.params.cursor) : 0;
    const next = start + PAGE < tools.length ? String(start + PAGE) : undefined;
    return { tools: tools.slice(start, start + PAGE), ...(next ? { nextCursor: next } : {}) };
  });
  server.setRequestHandler(CallToolRequestSchema, async () => ({ content: [{ type: "text", text: "ok" }] }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    void transport.close();
    void server.close();
  });
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
});
await new Promise((r) => mcp.listen(0, "127.0.0.1", r));
const mcpUrl = `http://127.0.0.1:${mcp.address().port}`;

const app = await startApp();
const { request, close } = httpClient(CONCURRENCY * 2);
const json = async (method, path, body, token, extra = {}) => {
  const r = await request(`${app.url}${path}`, { method, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body ? JSON.parse(r.body) : undefined;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const peakRssMb = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${app.child.pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
const rssMb = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${app.child.pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

const token = (await json("POST", "/.dev/token", { tenant: "t-bench-tools", user: "alice", roles: ["TenantAdmin"] })).access_token;
const project = await json("POST", "/api/projects", { name: "bench tools", environment: "dev", owner: "alice" }, token);

async function discover(n) {
  const t0 = performance.now();
  const s = await json("POST", `/api/projects/${project.id}/mcp-servers`, { name: `bench-${n}`, source: { kind: "remote", url: `${mcpUrl}/mcp/${n}` }, discovery: { enabled: false, intervalHours: 24 } }, token);
  for (;;) {
    const now = await json("GET", `/api/projects/${project.id}/mcp-servers/${s.id}`, undefined, token);
    if (now.discoveryState.status === "succeeded") return { ms: performance.now() - t0, tools: now.discoveryState.toolCount, id: s.id };
    if (now.discoveryState.status === "failed") throw new Error(JSON.stringify(now.discoveryState.failure));
    await sleep(25);
  }
}

// 1. One 5,000-tool discovery, then the rest of the catalog.
const before = { rss: rssMb(), peak: peakRssMb() };
const first = await discover(0);
const after = { rss: rssMb(), peak: peakRssMb() };
console.log(`discovery of ${first.tools} tools: ${(first.ms / 1000).toFixed(2)} s (registration → snapshot, catalog written); app RSS ${before.rss.toFixed(0)} → ${after.rss.toFixed(0)} MB, peak ${before.peak.toFixed(0)} → ${after.peak.toFixed(0)} MB`);
const more = [];
for (let n = 1; n < SERVERS; n++) more.push((await discover(n)).ms);
if (more.length) console.log(`discoveries 2..${SERVERS}: median ${(more.sort((a, b) => a - b)[Math.floor(more.length / 2)] / 1000).toFixed(2)} s each`);

// 2. Catalog search over SERVERS × TOOLS entries.
const queries = {
  "one word": () => `q=${WORDS[Math.floor(Math.random() * WORDS.length)]}&maxPageSize=50`,
  "two words": () => `q=${WORDS[Math.floor(Math.random() * WORDS.length)]}+${Math.floor(Math.random() * TOOLS)}&maxPageSize=50`,
  "filter read-only in a server": () => `server=bench-${Math.floor(Math.random() * SERVERS)}&readOnly=true&maxPageSize=50`,
  "no filter (first page)": () => `maxPageSize=50`,
};
const total = (await json("GET", `/api/tools/catalog?server=bench-0&maxPageSize=1`, undefined, token)) && SERVERS * TOOLS;
console.log(`catalog: ${total} tools, ${CONCURRENCY} concurrent callers, ${DURATION_MS} ms per query kind`);
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
for (const [kind, query] of Object.entries(queries)) {
  const times = [];
  const end = Date.now() + DURATION_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        const r = await request(`${app.url}/api/tools/catalog?${query()}`, { headers: { authorization: `Bearer ${token}` } });
        if (r.status !== 200) throw new Error(`catalog ${r.status} ${r.body}`);
        times.push(performance.now() - t0);
      }
    }),
  );
  times.sort((a, b) => a - b);
  console.log(`  ${kind.padEnd(30)} ${times.length} searches: p50 ${pct(times, 50).toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms`);
}
close();
app.child.kill();
mcp.close();

// 3. Compile time with 100 toolboxes (10 remote servers × 500 tools; each toolbox 20 tools of one server; 20 key tiers granting tools).
const { compile } = require(`${root}dist/src/policy/compile.js`);
const hash = (s) => s.padStart(64, "0").slice(-64).replace(/[^0-9a-f]/g, "a");
const servers = Array.from({ length: 10 }, (_, n) => ({
  id: `srv_${String(n).padStart(20, "0")}`,
  name: `server-${n}`,
  source: { kind: "remote", url: `https://mcp${n}.example.com/mcp`, transport: "streamable-http" },
  limits: { perTool: { calls: 60, renewalPeriodSeconds: 60 } },
  tools: Array.from({ length: 500 }, (_, i) => ({ name: `tool_${n}_${i}`, hash: hash(`${n}${i}`), readOnly: i % 2 === 0 })),
}));
const toolboxes = Array.from({ length: TOOLBOXES }, (_, b) => ({
  id: `tbx_${String(b).padStart(20, "0")}`,
  name: `box-${b}`,
  tools: Array.from({ length: 20 }, (_, i) => ({ server: `server-${b % 10}`, tool: `tool_${b % 10}_${(b * 7 + i) % 500}` })),
}));
const tiers = Array.from({ length: 20 }, (_, t) => ({ id: `kp_${String(t).padStart(10, "0")}`, limits: {}, tools: [`toolbox:box-${t}`, `server:server-${t % 10}`, `tool:server-${(t + 1) % 10}/tool_${(t + 1) % 10}_1`] }));
const input = {
  tenantId: "t-bench-tools",
  keyTiers: tiers,
  projects: [{ id: "p1", name: "tools", pillars: { models: false, tools: true, agents: true }, keyTiers: tiers.map((t) => t.id), tools: { approvalMode: "destructive", servers, toolboxes, grants: [] } }],
};
const rounds = [];
let result;
for (let r = 0; r < 5; r++) {
  const t0 = performance.now();
  result = compile(input);
  rounds.push(performance.now() - t0);
}
rounds.sort((a, b) => a - b);
const largest = Math.max(...result.artifacts.filter((a) => a.kind === "policy").map((a) => a.xml.length));
console.log(`compile, ${TOOLBOXES} toolboxes + 10 servers × 500 tools + 20 key tiers: median ${rounds[2].toFixed(0)} ms (${result.artifacts.length} artifacts, largest policy ${(largest / 1024).toFixed(1)} KiB)`);
