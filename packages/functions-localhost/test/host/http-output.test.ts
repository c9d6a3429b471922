// The direct HTTP output conversion (src/http-output.ts) against the library's own (toRpcHttp, reached
// through its InvocationModel.getResponse): equal wherever the direct one answers, and it leaves to the
// library every value it cannot reproduce exactly.
import { createRequire } from "node:module";
import { beforeAll, describe, expect, it } from "vitest";
import { getProgrammingModel, installCoreShim } from "../../src/core-shim.js";
import { directHttpOutput } from "../../src/http-output.js";
import type { ProgrammingModelLike, RpcTypedData } from "../../src/rpc.js";

let library: (value: unknown) => Promise<RpcTypedData | null | undefined>;
let HttpResponse: new (init?: unknown) => unknown;

beforeAll(() => {
  installCoreShim(); // before the library's first app.* call
  const lib = createRequire(__filename)("@azure/functions") as { app: { http(name: string, o: unknown): void }; HttpResponse: typeof HttpResponse };
  HttpResponse = lib.HttpResponse;
  lib.app.http("httpOutputProbe", { handler: () => undefined }); // sets the programming model
  const pm = getProgrammingModel() as ProgrammingModelLike;
  const bindings = {
    req: { type: "httpTrigger", direction: "in" },
    $return: { type: "http", direction: "out" },
  };
  library = async (value) => {
    const coreCtx = {
      invocationId: "probe",
      request: { inputData: [], triggerMetadata: {} },
      metadata: { name: "httpOutputProbe", bindings },
      state: undefined,
      log: () => undefined,
    };
    const model = await pm.getInvocationModel(coreCtx);
    const { context } = await model.getArguments();
    return (await model.getResponse(context, value)).returnValue;
  };
});

/** Both conversions, bytes as arrays so that equality also covers the kind of array. */
async function both(value: unknown): Promise<{ direct: RpcTypedData | undefined; library: RpcTypedData | null | undefined }> {
  return { direct: directHttpOutput(value), library: await library(value) };
}

function nonEnumerable(record: Record<string, string>, name: string, value: string): Record<string, string> {
  return Object.defineProperty(record, name, { value, enumerable: false });
}

const view = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);

/** Values the direct conversion answers, each with what makes it interesting. */
const direct: [string, () => unknown][] = [
  ["an empty init", () => ({})],
  ["a status alone", () => ({ status: 202 })],
  ["the highest status", () => ({ status: 599 })],
  ["a string body (text/plain added)", () => ({ status: 201, body: "héllo wörld" })],
  ["an empty string body", () => ({ body: "" })],
  ["a lone surrogate in a string body", () => ({ body: "a\ud800b\udc00" })],
  ["a string body with its own content type", () => ({ body: "<p/>", headers: { "Content-Type": "text/html" } })],
  ["a JSON body (application/json added)", () => ({ jsonBody: { a: [1, "x"], b: null } })],
  ["a JSON string body", () => ({ jsonBody: "text" })],
  ["a JSON body with its own content type", () => ({ jsonBody: 1, headers: { "content-type": "application/problem+json" } })],
  ["a JSON body that serialises to nothing", () => ({ jsonBody: () => 1 })],
  ["a null JSON body next to a body", () => ({ jsonBody: null, body: "used" })],
  ["a JSON body next to a body", () => ({ jsonBody: { used: true }, body: "ignored" })],
  ["a body on 204", () => ({ status: 204, body: "dropped" })],
  ["a JSON body on 304", () => ({ status: 304, jsonBody: { dropped: true } })],
  ["a body on 205", () => ({ status: 205, body: new Uint8Array([1]) })],
  ["a null body", () => ({ body: null })],
  ["a Buffer", () => ({ body: Buffer.from("bytes") })],
  ["a Uint8Array view into a larger buffer", () => ({ body: view })],
  ["a Uint16Array", () => ({ body: new Uint16Array([1, 258]) })],
  ["a DataView", () => ({ body: new DataView(new Uint8Array([5, 6, 7]).buffer, 1) })],
  ["an ArrayBuffer", () => ({ body: new Uint8Array([1, 2]).buffer })],
  ["headers differing in case only (joined)", () => ({ headers: { "X-A": "1", "x-a": "2", "X-b": "3" } })],
  ["headers sorted by name, numeric-looking names first", () => ({ headers: { zeta: "z", "123": "n", Alpha: "a", "9": "m" } })],
  ["a non-enumerable header", () => ({ headers: nonEnumerable({ a: "1" }, "x-hidden", "2") })],
  ["a __proto__ header", () => ({ headers: JSON.parse('{"__proto__":"p","a":"1"}') as unknown })],
  ["a null-prototype record", () => ({ headers: Object.assign(Object.create(null) as object, { etag: '"1"' }) })],
  ["control and Latin-1 characters inside a value", () => ({ headers: { a: "x\u0001\u007f\u00e9\ty" } })],
  ["an empty header value", () => ({ headers: { a: "" } })],
  ["content negotiation", () => ({ enableContentNegotiation: true, body: "x" })],
  ["an empty cookie list", () => ({ cookies: [], body: "x" })],
  ["members Response does not read", () => ({ statusText: "Fine", status: 200, extra: 1 })],
  [
    "an app-shaped response",
    () => ({
      status: 200,
      headers: { "x-correlation-id": "c-1", ETag: '"e"', "Content-Type": "application/json; charset=utf-8" },
      body: JSON.stringify({ id: "p-1", name: "n" }),
    }),
  ],
];

/** Values left to the library: it converts them itself (or throws, as it always has). */
const left: [string, () => unknown][] = [
  ["an HttpResponse", () => new HttpResponse({ body: "x" })],
  ["a class instance", () => new (class { status = 200; })()],
  ["cookies", () => ({ cookies: [{ name: "a", value: "b" }] })],
  ["a Headers object", () => ({ headers: new Headers({ a: "1" }) })],
  ["header pairs", () => ({ headers: [["a", "1"]] })],
  ["null headers", () => ({ headers: null })],
  ["a value Headers would trim", () => ({ headers: { a: " x" } })],
  ["a value ending in a tab", () => ({ headers: { a: "x\t" } })],
  ["a value with a newline", () => ({ headers: { a: "x\ny" } })],
  ["a value past Latin-1", () => ({ headers: { a: "\u20ac" } })],
  ["a number as a value", () => ({ headers: { a: 1 } })],
  ["an invalid header name", () => ({ headers: { "a b": "1" } })],
  ["Set-Cookie in the headers", () => ({ headers: { "Set-Cookie": "a=1" } })],
  ["a symbol-keyed header", () => ({ headers: { [Symbol("s")]: "1" } })],
  ["a status below 200", () => ({ status: 199 })],
  ["a status above 599", () => ({ status: 600 })],
  ["a status as text", () => ({ status: "201" })],
  ["a fractional status", () => ({ status: 200.5 })],
  ["a null status", () => ({ status: null })],
  ["a Blob body", () => ({ body: new Blob(["x"], { type: "text/x" }) })],
  ["a URLSearchParams body", () => ({ body: new URLSearchParams("a=1") })],
  ["a number body", () => ({ body: 42 })],
  ["a resizable ArrayBuffer", () => ({ body: new ArrayBuffer(2, { maxByteLength: 4 }) })],
  ["a SharedArrayBuffer", () => ({ body: new SharedArrayBuffer(2) })],
  ["a throwing toJSON", () => ({ jsonBody: { toJSON: () => { throw new Error("no JSON"); } } })],
  ["a nativeResponse", () => ({ nativeResponse: new Response("x") })],
];

describe("direct HTTP output conversion", () => {
  it.each(direct)("matches the library for %s", async (_name, make) => {
    const r = await both(make());
    expect(r.direct).toBeDefined();
    expect(r.direct).toStrictEqual(r.library);
    // Same header order too: node:http writes them in this order.
    expect(Object.keys(r.direct?.http?.headers ?? {})).toEqual(Object.keys(r.library?.http?.headers ?? {}));
  });

  it.each(left)("leaves %s to the library", async (_name, make) => {
    expect(directHttpOutput(make())).toBeUndefined();
  });

  it("copies the bytes, as the library's body read does", () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const out = directHttpOutput({ body: bytes })?.http?.body?.bytes as Uint8Array;
    bytes[0] = 9;
    expect([...out]).toEqual([1, 2, 3]);
    expect(out.byteLength).toBe(out.buffer.byteLength);
  });

  it("leaves non-objects to the library", () => {
    for (const v of [undefined, null, "x", 1, true]) expect(directHttpOutput(v)).toBeUndefined();
  });
});
