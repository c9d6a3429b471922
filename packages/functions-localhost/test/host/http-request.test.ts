// The stand-in for the fetch Request behind a GET or HEAD HttpRequest (src/http-request.ts) against the
// Request the library builds itself: what a handler can observe through HttpRequest is the same.
import { createRequire } from "node:module";
import { beforeAll, describe, expect, it } from "vitest";
import { installCoreShim } from "../../src/core-shim.js";
import { BodilessRequest } from "../../src/http-request.js";

interface HttpRequestLike {
  url: string;
  method: string;
  headers: Headers;
  query: URLSearchParams;
  params: Record<string, string>;
  user: unknown;
  body: unknown;
  bodyUsed: boolean;
  arrayBuffer(): Promise<ArrayBuffer>;
  blob(): Promise<Blob>;
  formData(): Promise<FormData>;
  json(): Promise<unknown>;
  text(): Promise<string>;
  clone(): HttpRequestLike;
}

let HttpRequest: new (init: object) => HttpRequestLike;

beforeAll(() => {
  installCoreShim();
  HttpRequest = (createRequire(__filename)("@azure/functions") as { HttpRequest: typeof HttpRequest }).HttpRequest;
});

const principal = Buffer.from(JSON.stringify({ identityProvider: "aad", userId: "u", userDetails: "d", userRoles: ["r"] })).toString("base64");

/** The same request twice: as the library builds it, and over the stand-in (as the HTTP server passes it). */
function pair(method: string, href: string, headers: Record<string, string>): [HttpRequestLike, HttpRequestLike] {
  const url = new URL(href);
  const query: Record<string, string> = Object.fromEntries(url.searchParams);
  const data = { method, url: url.href, headers, query, params: { id: "7" } };
  const nativeRequest = BodilessRequest.of(url, method, headers);
  expect(nativeRequest).toBeDefined();
  return [new HttpRequest({ ...data }), new HttpRequest({ ...data, nativeRequest })];
}

/** Everything a handler can read without a body, plus what the body methods give. */
async function observe(r: HttpRequestLike): Promise<unknown> {
  const settle = async (p: () => Promise<unknown>) => {
    try {
      const v = await p();
      return { ok: v instanceof ArrayBuffer ? v.byteLength : v instanceof Blob ? { size: v.size, type: v.type } : v instanceof FormData ? [...v] : v };
    } catch (err) {
      return { error: (err as Error).constructor.name };
    }
  };
  const clone = r.clone();
  return {
    url: r.url,
    method: r.method,
    headers: [...r.headers],
    headersIsHeaders: r.headers instanceof Headers,
    query: [...r.query],
    params: r.params,
    user: r.user,
    body: r.body,
    bodyUsed: r.bodyUsed,
    text: await settle(() => r.text()),
    arrayBuffer: await settle(() => r.arrayBuffer()),
    blob: await settle(() => r.blob()),
    json: await settle(() => r.json()),
    formData: await settle(() => r.formData()),
    bodyUsedAfter: r.bodyUsed,
    clone: { url: clone.url, method: clone.method, headers: [...clone.headers], text: await settle(() => clone.text()) },
  };
}

describe("BodilessRequest", () => {
  it.each([
    ["GET", "http://localhost:7071/api/items/7?q=a%20b&tag=x&tag=y", { host: "localhost:7071", authorization: "Bearer t", accept: "*/*" }],
    ["HEAD", "http://127.0.0.1:1/api/x/../items/7", { "x-ms-client-principal": principal, "content-type": "application/x-www-form-urlencoded" }],
    ["GET", "http://[::1]:80/api/%E2%82%AC#frag", { "content-type": "multipart/form-data; boundary=x", "x-multi": "a, b", cookie: "a=1; b=2" }],
    ["GET", "http://localhost/api/é", {}],
  ])("gives a %s handler what the library's own Request gives (%s)", async (method, href, headers) => {
    const [real, lazy] = pair(method, href, headers);
    expect(await observe(lazy)).toStrictEqual(await observe(real));
  });

  it("sees header changes in later body reads and clones, as the Request's own headers would", async () => {
    const [real, lazy] = pair("GET", "http://localhost/api/items/7", { "content-type": "text/plain" });
    for (const r of [real, lazy]) {
      await r.blob();
      r.headers.set("content-type", "application/x-www-form-urlencoded");
      r.headers.append("x-added", "1");
    }
    expect(await observe(lazy)).toStrictEqual(await observe(real));
    expect(lazy.headers).toBe(lazy.headers);
  });

  it("is not used where Request would refuse or change the input", () => {
    const headers = {};
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]) {
      expect(BodilessRequest.of(new URL("http://localhost/api/x"), method, headers)).toBeUndefined();
    }
    expect(BodilessRequest.of(new URL("http://user:pw@localhost/api/x"), "GET", headers)).toBeUndefined();
    expect(BodilessRequest.of(new URL("http://user@localhost/api/x"), "GET", headers)).toBeUndefined();
  });
});
