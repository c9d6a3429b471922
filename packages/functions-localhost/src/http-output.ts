// The HTTP output of a handler that returned a plain HttpResponseInit, converted without web streams.
//
// The library's conversion (toRpcHttp) wraps any result in its HttpResponse — a fetch `Response` — and
// reads the body back with `arrayBuffer()`: a ReadableStream is built and drained for every request, the
// largest single cost of the host's HTTP path. For the shape handlers usually return (a plain object
// with a status, a record of headers and a string, bytes or `jsonBody`) the outcome is fully determined
// by the init alone, so it is computed here directly, to the same RpcHttpData the library produces.
// Anything this code does not reproduce exactly (HttpResponse instances, cookies, Headers or pair-list
// headers, header names or values the fetch `Headers` would reject or rewrite, other body types, a status
// `Response` would refuse) returns undefined, and the library converts it itself — errors included.
// test/host/http-output.test.ts compares both conversions over those edges.

import type { RpcHttpData, RpcTypedData } from "./rpc.js";

/** Statuses `Response` gives no body; the library drops a handler's body for them. */
const NULL_BODY_STATUSES = new Set([204, 205, 304]);
/** An HTTP token: what `Headers` accepts as a name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * A value `Headers` stores unchanged: Latin-1 (a ByteString), no NUL/CR/LF, no leading or trailing
 * tab/space (those it would strip).
 */
const HEADER_VALUE = /^(?:[^\0\t\n\r \u0100-\uffff](?:[^\0\n\r\u0100-\uffff]*[^\0\t\n\r \u0100-\uffff])?)?$/;

const utf8 = new TextEncoder();

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The headers as `new Headers(record)` holds them (lower-case names, repeated names joined with ", "), or
 * undefined when `Headers` would throw or change a value. `Headers` reads every own string-keyed property,
 * enumerable or not, and throws on symbol keys.
 */
function headersOf(record: Record<string, unknown>): Map<string, string> | undefined {
  if (Object.getOwnPropertySymbols(record).length > 0) return undefined;
  const out = new Map<string, string>();
  for (const name of Object.getOwnPropertyNames(record)) {
    const value = record[name];
    if (typeof value !== "string" || !HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) return undefined;
    const key = name.toLowerCase();
    // Set-Cookie is kept per value by `Headers`, and only the last reaches the RPC headers: left to the library.
    if (key === "set-cookie") return undefined;
    const seen = out.get(key);
    out.set(key, seen === undefined ? value : `${seen}, ${value}`);
  }
  return out;
}

/** A copy of the bytes as a Uint8Array over its own ArrayBuffer (what the library's arrayBuffer() gives), or undefined for bodies left to the library. */
function bytesOf(body: unknown): Uint8Array | undefined {
  if (ArrayBuffer.isView(body)) {
    if (!(body.buffer instanceof ArrayBuffer) || body.buffer.resizable) return undefined;
    return new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  }
  if (body instanceof ArrayBuffer) return body.resizable ? undefined : new Uint8Array(body.slice(0));
  return undefined;
}

/**
 * What the library's getResponse gives for an HTTP output whose value is `value` — `{ http: RpcHttpData }`
 * — when `value` is a plain HttpResponseInit this module reproduces exactly; otherwise undefined.
 */
export function directHttpOutput(value: unknown): RpcTypedData | undefined {
  if (!isPlainObject(value)) return undefined;
  try {
    if (value.nativeResponse !== undefined) return undefined;
    const status = value.status;
    if (status !== undefined && !(typeof status === "number" && Number.isInteger(status) && status >= 200 && status <= 599)) return undefined;
    const cookies = value.cookies;
    if (cookies !== undefined && cookies !== null && !(Array.isArray(cookies) && cookies.length === 0)) return undefined;
    const init = value.headers;
    let headers: Map<string, string> | undefined;
    if (init === undefined) headers = new Map();
    else if (isPlainObject(init)) headers = headersOf(init);
    if (headers === undefined) return undefined;

    const nullBody = status !== undefined && NULL_BODY_STATUSES.has(status);
    let bytes: Uint8Array;
    let contentType: string | undefined;
    const jsonBody = value.jsonBody;
    if (jsonBody !== undefined && jsonBody !== null && !nullBody) {
      const text: string | undefined = JSON.stringify(jsonBody);
      bytes = text === undefined ? new Uint8Array(0) : utf8.encode(text);
      contentType = "application/json";
    } else {
      const body = nullBody ? undefined : value.body;
      if (body === undefined || body === null) {
        bytes = new Uint8Array(0);
      } else if (typeof body === "string") {
        // TextEncoder, like the fetch body, writes a lone surrogate as U+FFFD.
        bytes = utf8.encode(body);
        contentType = "text/plain;charset=UTF-8";
      } else {
        const copy = bytesOf(body);
        if (copy === undefined) return undefined;
        bytes = copy;
      }
    }
    if (contentType !== undefined && !headers.has("content-type")) headers.set("content-type", contentType);

    // The library copies `Headers` entries (sorted by name) into a plain object, in that order.
    const rpcHeaders: Record<string, string> = {};
    for (const name of [...headers.keys()].sort()) rpcHeaders[name] = headers.get(name) as string;
    const http: RpcHttpData = {
      statusCode: String(status ?? 200),
      headers: rpcHeaders,
      cookies: [],
      enableContentNegotiation: !!value.enableContentNegotiation,
      body: { bytes },
    };
    return { http };
  } catch {
    // A throwing getter or toJSON: the library meets it again and reports it its own way.
    return undefined;
  }
}
