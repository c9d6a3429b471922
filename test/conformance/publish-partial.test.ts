/**
 * Conformance: a publish that stops part-way never leaves the gateway serving more than either the state
 * it left or the state it was bringing. A key-tier product is linked to an API only once that API's policy
 * — which holds the key's scope, the approvals and the limits — is in place: a key that the new revision
 * lets reach a new MCP server never reaches it without the server's policy.
 *
 * The stop is a real write failure of the file publisher: a directory where the MCP server's policy file
 * goes makes that write fail on every attempt, so the revision ends `failed` with the gateway holding
 * whatever was written before it.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { startGovernanceServer, type GovernanceServer } from "../fixtures/mcp/governance.js";
import { Governed, NOT_SERVED } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let upstream: GovernanceServer;

beforeAll(async () => {
  g = await Governed.start("t-partial");
  dev = await g.as("dora", ["Developer"]);
  upstream = await startGovernanceServer();
});
afterAll(async () => {
  await upstream.close();
  await g.stop();
});

type Answer = { status: number; json: { result?: { content: { text: string }[] }; error?: { code?: number; message?: string; data?: { reason?: string } } } };

let rpcId = 0;
async function callTool(apiPath: string, key: string, tool: string, args: Record<string, unknown>): Promise<Answer> {
  const res = await fetch(`${g.t.gateway.url}/${apiPath}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method: "tools/call", params: { name: tool, arguments: args } }),
  });
  const text = await res.text();
  const data = text.startsWith("event:") || text.startsWith("data:") ? text.split("\n").find((l) => l.startsWith("data:"))!.slice(5) : text;
  let json: Answer["json"] = {};
  try {
    json = JSON.parse(data) as Answer["json"];
  } catch {
    // not JSON: an empty or plain answer
  }
  return { status: res.status, json };
}

const apim = () => join(g.t.app.dataDir, "apim");

describe("conformance: a publish that stops part-way", () => {
  it("a key's product reaches a new MCP server only once the server's policy is in place: stopped before it, the key is refused and nothing reaches the server", async () => {
    const p = await g.project("partial");
    await g.publish("the project");
    // The server is registered (and discovered) but not published yet; a key scoped to one of its tools is
    // made now, so its key-tier product is at the gateway, linking the project's API only.
    const created = await g.admin.tools.createServer(p.id, { name: "fixture", source: { kind: "remote", url: upstream.url } });
    const s = await until(async () => {
      const got = await g.admin.tools.getServer(p.id, created.id);
      return got.discoveryState.status === "succeeded" ? got : undefined;
    }, "discovery of fixture");
    const k = (await g.key(dev, p.id, { name: "weather-only", scopes: { tools: [`${s.id}/get_weather`] } })).key;
    const products = readdirSync(join(apim(), "products")).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -".json".length));
    expect(products.length).toBeGreaterThan(0);

    // The server's policy cannot be written: the publish that brings the server stops there, every attempt.
    const mcpApi = g.names.mcpApi(p.id, "fixture");
    const blocker = join(apim(), "apis", mcpApi, "policies", "policy.xml");
    mkdirSync(blocker, { recursive: true });
    writeFileSync(join(blocker, "blocker"), "");
    const r = await g.admin.policy.publish({ reason: "the server" });
    const failed = await until(async () => {
      const rev = await g.admin.policy.revision(r.revision!.id);
      return rev.status === "pending" ? undefined : rev;
    }, "the publish of the server to end");
    expect(failed.status).toBe("failed");
    await g.t.gateway.reload();

    // What was written before the stop: the server's API. Its policy is not there.
    expect(existsSync(join(apim(), "apis", `${mcpApi}.json`))).toBe(true);
    expect(existsSync(join(apim(), "apis", mcpApi, "policies", "policy.json"))).toBe(false);
    // No product links an API whose policy is missing.
    for (const product of products) expect(existsSync(join(apim(), "products", product, "apis", `${mcpApi}.json`)), product).toBe(false);
    // The key was never given the server (old state) and, given it, could call get_weather only (new
    // state): stopped in between, it reaches neither get_weather nor delete_file, and nothing reaches the server.
    const before = { weather: upstream.calls.get("get_weather") ?? 0, del: upstream.calls.get("delete_file") ?? 0 };
    const del = await callTool(g.names.mcpApiPath(p.id, "fixture"), k, "delete_file", { path: "/etc/passwd" });
    expect({ status: del.status, code: (del.json as { error?: { code?: unknown } }).error?.code }).toEqual({ status: NOT_SERVED.status, code: NOT_SERVED.code });
    const weather = await callTool(g.names.mcpApiPath(p.id, "fixture"), k, "get_weather", { city: "Oslo" });
    expect(weather.status).toBe(NOT_SERVED.status);
    expect({ weather: upstream.calls.get("get_weather") ?? 0, del: upstream.calls.get("delete_file") ?? 0 }).toEqual(before);

    // The write succeeds again: the next publish completes the move, and the key gets exactly its scope.
    rmSync(blocker, { recursive: true, force: true });
    await g.publish("the server, again");
    const ok = await callTool(g.names.mcpApiPath(p.id, "fixture"), k, "get_weather", { city: "Oslo" });
    expect([ok.status, ok.json.result?.content[0]?.text]).toEqual([200, "Sunny in Oslo"]);
    const refused = await callTool(g.names.mcpApiPath(p.id, "fixture"), k, "delete_file", { path: "/etc/passwd" });
    expect([refused.status, refused.json.error?.data?.reason]).toEqual([403, "tool_not_in_scope"]);
    expect(upstream.calls.get("delete_file") ?? 0).toBe(before.del);
    expect(await g.admin.policy.checkDrift()).toMatchObject({ status: "inSync" });
  });
});
