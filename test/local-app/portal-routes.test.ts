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
    expect(JSON.parse(config.body)).toEqual({ auth: { mode: "dev" }, gatewayUrl: t.gateway.url });
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

  it("the playgrounds call the local gateway across origins: the published APIs let the portal's origin in (CORS), no other", async () => {
    const p = await g.project("cors");
    await g.model(p.id, "crossorigin");
    await g.publish("cors");
    const k = await g.key(g.admin, p.id, { name: "cors key" });
    const gw = t.gateway.url;
    const portal = t.app.host.url;
    const chat = `${gw}/${g.names.apiPath(p.id)}/v1/chat/completions`;
    const preflight = (origin: string, headers = "content-type,api-key") =>
      fetch(chat, { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": headers } });

    // The portal's origin: the preflight is answered by the cors policy, with no key and no backend call.
    const ok = await preflight(portal);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(portal);
    expect(ok.headers.get("access-control-allow-methods")).toBe("POST");
    expect(ok.headers.get("access-control-allow-headers")).toBe("content-type,api-key");
    expect(ok.headers.get("access-control-max-age")).toBe("600");
    expect(ok.headers.get("access-control-allow-credentials")).toBeNull();
    // Another origin, or a header the policy does not allow: an empty 200 the browser refuses.
    for (const refused of [await preflight("https://evil.example"), await preflight(portal, "content-type,api-key,x-not-allowed")]) {
      expect(refused.status).toBe(200);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    }
    expect(t.backends.requests("crossorigin.mock.localhost")).toHaveLength(0);

    const call = (origin: string, model: string) =>
      fetch(chat, { method: "POST", headers: { origin, "content-type": "application/json", "api-key": k.key }, body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }) });
    // The actual request from the portal: answered, readable (Allow-Origin), governance headers exposed.
    const answered = await call(portal, "crossorigin");
    expect(answered.status).toBe(200);
    expect(answered.headers.get("access-control-allow-origin")).toBe(portal);
    const exposed = answered.headers.get("access-control-expose-headers")!.split(",");
    expect(exposed).toEqual(expect.arrayContaining(["x-aigov-tokens-remaining-minute-key", "sunset", "retry-after"]));
    // A refusal by policy is readable too (the page shows the gateway's reason).
    const refusedByPolicy = await call(portal, "no-such-model");
    expect(refusedByPolicy.status).toBe(404);
    expect(refusedByPolicy.headers.get("access-control-allow-origin")).toBe(portal);
    // Another origin: the request is served as for any client without an Origin, but the browser may not read it.
    const elsewhere = await call("https://evil.example", "crossorigin");
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.headers.get("access-control-allow-origin")).toBeNull();
    expect(t.backends.requests("crossorigin.mock.localhost")).toHaveLength(2);

    // config.json points the pages at the gateway, and the CSP lets them connect to it.
    const config = JSON.parse((await rawGet("/portal/config.json")).body) as { gatewayUrl: string };
    expect(config.gatewayUrl).toBe(gw);
    expect((await rawGet("/portal/")).headers["content-security-policy"]).toContain(`connect-src 'self' ${new URL(gw).origin}`);
  });
});
