import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import { Governed } from "../support/governed.js";

let t: TestApp;
let g: Governed;

beforeAll(async () => {
  t = await startTestApp();
  g = await Governed.start("t-portal-routes", t);
});
afterAll(() => t.stop());

/** A raw GET: the path is sent exactly as written (fetch would normalise "..", and %2e%2e stays encoded). */
function rawGet(path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(t.app.host.url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the local host serves the portal", () => {
  it("index.html for the root and for deep links, with the CSP; config.json says dev sign-in and where the gateway is", async () => {
    const root = await rawGet("/portal/");
    expect(root.status).toBe(200);
    expect(root.body).toContain('<div id="root">');
    expect(root.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(root.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    const deep = await rawGet("/portal/projects/prj_00000000000000000000/keys");
    expect(deep.status).toBe(200);
    expect(deep.body).toBe(root.body);
    expect((await rawGet("/portal")).status).toBe(308);
    const config = await rawGet("/portal/config.json");
    expect(JSON.parse(config.body)).toEqual({ auth: { mode: "dev" }, gatewayUrl: "/.dev/gateway/default" });
    expect(config.headers["cache-control"]).toBe("no-store");
    const asset = /src="\/portal\/(assets\/[^"]+\.js)"/.exec(root.body)![1]!;
    const js = await rawGet(`/portal/${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(js.headers["cache-control"]).toContain("immutable");
  });

  it("never serves a file outside the portal's build", async () => {
    for (const path of ["/portal/%2e%2e/%2e%2e/package.json", "/portal/..%2f..%2fpackage.json", "/portal/%2e%2e%2fdev-issuer.json"]) {
      const res = await rawGet(path);
      // The host resolves dot segments first (a 404 outside /portal/), or the portal answers with its index.
      expect(res.body, path).not.toContain('"workspaces"');
      expect(res.body, path).not.toContain("privateJwk");
      expect(res.status === 404 || res.body.includes('<div id="root">'), `${path}: ${res.status}`).toBe(true);
    }
  });

  it("/.dev/gateway/<instance>/… is the local gateway itself: its answers and refusals, unchanged", async () => {
    const p = await g.project("proxy");
    await g.model(p.id, "proxied");
    await g.publish("proxy");
    const k = await g.key(g.admin, p.id, { name: "proxy key" });
    const through = (key: string) =>
      fetch(`${t.app.host.url}/.dev/gateway/default/${g.names.apiPath(p.id)}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "api-key": key },
        body: JSON.stringify({ model: "proxied", messages: [{ role: "user", content: "hi" }] }),
      });
    const ok = await through(k.key);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { object: string }).object).toBe("chat.completion");
    expect(t.backends.requests("proxied.mock.localhost")).toHaveLength(1);
    expect((await through("wrong")).status).toBe(401);
    expect(t.backends.requests("proxied.mock.localhost")).toHaveLength(1);
    const none = await fetch(`${t.app.host.url}/.dev/gateway/nope/x`);
    expect(none.status).toBe(404);
  });
});
