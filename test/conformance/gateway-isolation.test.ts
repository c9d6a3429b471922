/**
 * Conformance: at the gateway, another tenant's API is indistinguishable from a path nobody serves
 * (ADR 023). Two tenants on one local gateway; every probe goes through the published artifacts and the
 * instance baseline the local host writes, as infra/ deploys it in Azure.
 */
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { instanceBaseline } from "../../src/policy/compile/instance.js";
import { Governed } from "../support/governed.js";
import { convertedServer } from "../support/tools.js";

let a: Governed;
let b: Governed;
let aKey: string;
let bKey: string;
let bToolsKey: string;
let aProject: string;
/** Paths tenant B serves (checked with B's own key first), and paths nobody serves. */
let served: { name: string; path: string; method: string; body?: unknown }[];
let unserved: { name: string; path: string }[];

beforeAll(async () => {
  a = await Governed.start("t-gwiso-a");
  b = await Governed.start("t-gwiso-b", a.t);
  const aDev: AigovClient = await a.as("ann", ["Developer"]);
  const bDev: AigovClient = await b.as("ben", ["Developer"]);
  const ap = await a.project("mine");
  aProject = ap.id;
  await a.model(ap.id, "gpt-4o-mini", { modelName: "a-mini" });
  await a.publish("a");
  // B's API echoes a correlation id (in on-error too): nothing of it may show to others.
  const bp = await b.project("theirs", { settings: { correlationId: {} } });
  await b.model(bp.id, "gpt-4o-mini", { modelName: "b-mini" });
  const server = await convertedServer(b.admin, bp.id, "items");
  await b.publish("b");
  aKey = (await a.key(aDev, ap.id, { name: "a" })).key;
  bKey = (await b.key(bDev, bp.id, { name: "b" })).key;
  bToolsKey = (await b.key(bDev, bp.id, { name: "b tools", scopes: { tools: [server.id] } })).key;
  const chat = { model: "gpt-4o-mini", max_tokens: 2, messages: [{ role: "user", content: "hi" }] };
  served = [
    { name: "B's models API", path: `${b.names.apiPath(bp.id)}/v1/chat/completions`, method: "POST", body: chat },
    { name: "B's MCP server", path: `${b.names.mcpApiPath(bp.id, "items")}/mcp`, method: "POST", body: { jsonrpc: "2.0", id: 1, method: "tools/list" } },
    { name: "B's REST API behind the server", path: `${b.names.restApiPath(bp.id, "items")}/items/one`, method: "GET" },
  ];
  unserved = [
    { name: "a made-up project of B", path: `${b.names.apiPath("prj_nosuchprojectxyzabc")}/v1/chat/completions` },
    { name: "a made-up operation of B's models API", path: `${b.names.apiPath(bp.id)}/nothing/here` },
    { name: "a made-up MCP server of B", path: `${b.names.mcpApiPath(bp.id, "absent")}/mcp` },
    { name: "a tenant key nobody has", path: "aigov/zzzzzzzzzz/prj_x/v1/chat/completions" },
    { name: "the gateway's root", path: "" },
  ];
});
afterAll(() => a.stop());

interface Probe {
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function probe(path: string, method: string, headers: Record<string, string>, body?: unknown): Promise<Probe> {
  const res = await fetch(`${a.t.gateway.url}/${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const out: Record<string, string> = {};
  // Transport headers say nothing about the path.
  res.headers.forEach((v, k) => void (/^(date|connection|keep-alive)$/.test(k) ? undefined : (out[k] = v)));
  return { status: res.status, headers: out, body: await res.text() };
}

describe("conformance: another tenant's API answers as a path nobody serves", () => {
  it("B's paths are served: B's own keys get past the key check on each of them", async () => {
    const [models, mcp, rest] = served;
    const ok = await probe(models!.path, models!.method, { "api-key": bKey, "x-correlation-id": "b-own" }, models!.body);
    expect(ok.status).toBe(200);
    expect(ok.headers["x-correlation-id"]).toBe("b-own");
    const tools = await probe(mcp!.path, mcp!.method, { "api-key": bToolsKey, accept: "application/json, text/event-stream" }, mcp!.body);
    expect(tools.body).toContain("getItem");
    // The REST API's upstream is not reachable from the tests: past the key check, the backend's failure.
    const direct = await probe(rest!.path, rest!.method, { "api-key": bToolsKey });
    expect(direct.status, direct.body).not.toBe(401);
  });

  it("without a key, with an unknown key and with A's key: one answer for B's paths and for unserved ones, whatever the method", async () => {
    const callers: Record<string, Record<string, string>> = {
      "no key": {},
      "an unknown key": { "api-key": "aigw_not_a_key_anyone_holds" },
      "A's valid key": { "api-key": aKey },
      // An origin the platform names (the local host's own): refusals still carry no CORS headers anywhere.
      "A's key, with a correlation id and an allowed Origin": { "api-key": aKey, "x-correlation-id": "probe-1", origin: new URL(a.t.url).origin },
      "A's key in the query": {},
    };
    for (const [who, headers] of Object.entries(callers)) {
      const query = who.endsWith("in the query") ? `?subscription-key=${encodeURIComponent(aKey)}` : "";
      const answers = new Map<string, Probe>();
      for (const method of ["GET", "POST", "DELETE"]) {
        const body = method === "POST" ? { jsonrpc: "2.0", id: 1, method: "tools/list" } : undefined;
        for (const p of [...served, ...unserved]) answers.set(`${method} ${p.name}`, await probe(`${p.path}${query}`, method, headers, body));
      }
      const distinct = new Set([...answers.values()].map((r) => JSON.stringify(r)));
      expect([...distinct], `${who}: ${[...answers].map(([k, r]) => `${k} → ${r.status}`).join("; ")}`).toHaveLength(1);
      const [only] = [...answers.values()];
      expect(only!.status).toBe(401);
      expect(only!.headers["www-authenticate"]).toBe('AzureApiManagementKey name="api-key",type="header"');
      const code = (JSON.parse(only!.body) as { error: { code: string } }).error.code;
      expect(code).toBe(who === "no key" ? "key_missing" : "key_not_accepted");
      // Nothing of B's: no path, no correlation echo.
      expect(JSON.stringify(only)).not.toContain(b.names.key);
      expect(only!.headers["x-correlation-id"]).toBeUndefined();
    }
  });

  it("a CORS preflight from an origin the platform does not name: an empty 200 everywhere", async () => {
    const answers = new Set<string>();
    for (const p of [...served, ...unserved]) {
      const r = await probe(p.path, "OPTIONS", { origin: "https://elsewhere.example.com", "access-control-request-method": "POST", "access-control-request-headers": "api-key,content-type" });
      answers.add(JSON.stringify({ ...r, headers: { ...r.headers } }));
      expect(r.status, p.name).toBe(200);
      expect(r.body).toBe("");
    }
    expect(answers.size).toBe(1);
  });

  it("byte for byte, with the header names as sent: an oversized body, a body that never comes, and a preflight answer alike", async () => {
    const { host, hostname, port } = new URL(a.t.gateway.url);
    /** The raw answer to a raw request (Date left out), or "no answer" when none came within the time. */
    const raw = (head: string, body = "", waitMs = 1500) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), hostname.replace(/^\[|\]$/g, ""));
        let got = "";
        const done = () => {
          socket.destroy();
          const text = got.replace(/\r\ndate: [^\r]*/i, "");
          resolve(text === "" ? "no answer" : text);
        };
        const timer = setTimeout(done, waitMs);
        socket.on("data", (d) => {
          got += d.toString("latin1");
          // One whole answer: its head and the body its Content-Length announces.
          const end = got.indexOf("\r\n\r\n");
          const length = /\r\ncontent-length: (\d+)/i.exec(got)?.[1];
          if (end >= 0 && length !== undefined && got.length >= end + 4 + Number(length)) {
            clearTimeout(timer);
            done();
          }
        });
        socket.on("error", reject);
        socket.write(head + body);
      });
    const paths = [...served, ...unserved].map((p) => `/${p.path}`);
    const alike = async (make: (path: string) => Promise<string>) => {
      const answers = new Map<string, string>();
      for (const path of paths) answers.set(path, await make(path));
      expect(new Set(answers.values()).size, [...answers].map(([p, r]) => `${p} → ${r.split("\r\n")[0]}`).join("; ")).toBe(1);
      return [...answers.values()][0]!;
    };
    const big = "x".repeat(3 * 1024 * 1024);
    for (const key of ["", `api-key: ${aKey}\r\n`]) {
      // More than the gateway buffers: refused for the key before any of it is read.
      const oversized = await alike((path) => raw(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${key}Content-Type: application/json\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n`, big));
      expect(oversized).toMatch(/^HTTP\/1\.1 401 /);
      // A body announced and never sent: answered at once all the same.
      const waiting = await alike((path) => raw(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${key}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n`, "{"));
      expect(waiting).toMatch(/^HTTP\/1\.1 401 /);
    }
    const preflight = await alike((path) => raw(`OPTIONS ${path} HTTP/1.1\r\nHost: ${host}\r\nOrigin: https://elsewhere.example.com\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n`));
    expect(preflight).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("A's own API: A's key is served as before, a refused key gets the same answers as anywhere", async () => {
    expect((await a.chat(aProject, aKey, "gpt-4o-mini")).json.model).toBe("a-mini");
    const missing = await probe(`${a.names.apiPath(aProject)}/v1/chat/completions`, "POST", {}, { model: "gpt-4o-mini" });
    const elsewhere = await probe(unserved[0]!.path, "POST", {}, { model: "gpt-4o-mini" });
    expect(missing).toEqual(elsewhere);
    const wrongKey = await probe(`${a.names.apiPath(aProject)}/v1/chat/completions`, "POST", { "api-key": bKey }, { model: "gpt-4o-mini" });
    expect(wrongKey).toEqual(await probe(unserved[3]!.path, "POST", { "api-key": bKey }, { model: "gpt-4o-mini" }));
  });

  it("operators still tell them apart: the gateway log records APIM's own reason for each", async () => {
    await probe(unserved[0]!.path, "POST", { "api-key": aKey }, {});
    await probe(served[0]!.path, "POST", { "api-key": aKey }, {});
    await a.t.gateway.flushLogs();
    const day = new Date().toISOString().slice(0, 10);
    const dir = join(a.t.app.dataDir, "gateway", "ApiManagementGatewayLogs");
    const { readdirSync } = await import("node:fs");
    const rows = readdirSync(join(dir, day)).flatMap((h) => readFileSync(join(dir, day, h), "utf8").trim().split("\n")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.some((r) => r.Url === `/${unserved[0]!.path}` && r.ResponseCode === 401 && r.LastErrorReason === "OperationNotFound")).toBe(true);
    expect(rows.some((r) => r.Url === `/${served[0]!.path}` && r.ResponseCode === 401 && r.LastErrorReason === "SubscriptionKeyInvalid")).toBe(true);
  });

  it("the instance baseline is what the local host wrote to the instance, and what infra/ deploys", () => {
    const xml = instanceBaseline().xml;
    expect(readFileSync(join(a.t.app.dataDir, "apim", "policies", "policy.xml"), "utf8")).toBe(xml);
    expect(readFileSync(join(__dirname, "..", "..", "infra", "apim", "global-policy.xml"), "utf8")).toBe(xml);
  });
});
