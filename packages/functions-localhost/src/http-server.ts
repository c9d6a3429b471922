// The host's HTTP side: HTTP triggers on `/{routePrefix}/{route}` (routing.ts), the caller's builtin
// routes, and Core Tools' `POST /admin/functions/{name}` for non-HTTP functions. Every request is
// checked before its body is read: its Host (DNS rebinding, 421), its declared length (413), and a
// builtin route's own authorization (401); a body is buffered only up to the limit.

import http from "node:http";
import { type RegisteredFunction, getRegisteredFunctions, getRegistrationRevision } from "./core-shim.js";
import type { BuiltinRoute } from "./host.js";
import { BodilessRequest } from "./http-request.js";
import { type Log, errorText } from "./log.js";
import { RouteTable, RouteTemplateError, splitPath } from "./routing.js";
import { LazyJson, type RpcHttpCookie, type RpcHttpData, type RpcTypedData, bodyBytes, isHttpTriggerType, tryJsonParse } from "./rpc.js";
import type { Worker, WorkerResult } from "./worker.js";

const STATUS_TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Payload Too Large",
  421: "Misdirected Request",
  500: "Internal Server Error",
};

/** Host names that reach this machine's loopback interface only (in URL form). */
const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

/** The host name of a Host header value ("Example.com:7071" → "example.com", "[::1]:80" → "[::1]"), or undefined when malformed. */
export function hostNameOf(header: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim());
  return m ? m[1]!.toLowerCase() : undefined;
}

/** Set-Cookie value as ASP.NET Core's SetCookieHeaderValue writes it. */
function serializeCookie(c: RpcHttpCookie): string {
  let s = `${encodeURIComponent(c.name ?? "")}=${encodeURIComponent(c.value ?? "")}`;
  const seconds = c.expires?.value?.seconds;
  if (seconds !== undefined && seconds !== null) s += `; expires=${new Date(Number(seconds) * 1000).toUTCString()}`;
  const maxAge = c.maxAge?.value;
  if (maxAge !== undefined && maxAge !== null) s += `; max-age=${Math.trunc(maxAge)}`;
  if (c.domain?.value) s += `; domain=${c.domain.value}`;
  if (c.path?.value) s += `; path=${c.path.value}`;
  if (c.secure?.value) s += "; secure";
  if (c.sameSite === "lax") s += "; samesite=lax";
  else if (c.sameSite === "strict") s += "; samesite=strict";
  else if (c.sameSite === "explicitNone") s += "; samesite=none";
  if (c.httpOnly?.value) s += "; httponly";
  return s;
}

const EMPTY = Buffer.alloc(0);

/** Whether the path starts with the (lower-case) route prefix, ignoring case. */
function hasPrefix(segments: string[], prefix: string[]): boolean {
  for (let i = 0; i < prefix.length; i++) if (segments[i]?.toLowerCase() !== prefix[i]) return false;
  return true;
}

/** The HTTP-triggered functions by route template, rebuilt whenever the registrations change. */
export class FunctionRoutes {
  readonly #prefixSegments: string[];
  readonly #log: Log;
  #revision = -1;
  #table = new RouteTable<RegisteredFunction>();
  readonly #bad = new Set<RegisteredFunction>();

  constructor(routePrefix: string, log: Log) {
    this.#prefixSegments = splitPath(routePrefix).map((s) => s.toLowerCase());
    this.#log = log;
  }

  /** The route prefix's segments, lower-cased ("api" → ["api"]). */
  get prefixSegments(): string[] {
    return this.#prefixSegments;
  }

  /** The current table; an invalid route template is logged once and its function disabled. */
  table(): RouteTable<RegisteredFunction> {
    const rev = getRegistrationRevision();
    if (rev === this.#revision) return this.#table;
    const table = new RouteTable<RegisteredFunction>();
    for (const fn of getRegisteredFunctions()) {
      const b = fn.trigger.binding;
      if (!isHttpTriggerType(b.type)) continue;
      const route = typeof b.route === "string" && b.route !== "" ? b.route : fn.name;
      const methods = Array.isArray(b.methods) ? b.methods.map((m) => String(m)) : null;
      try {
        table.add(route, methods, fn);
      } catch (err) {
        if (!this.#bad.has(fn)) {
          this.#bad.add(fn);
          this.#log("error", `[${fn.name}] ${err instanceof RouteTemplateError ? err.message : errorText(err)}; function disabled`);
        }
      }
    }
    this.#table = table;
    this.#revision = rev;
    return this.#table;
  }

  /** The path an HTTP function is served on ("/api/items/{id}"). */
  routeOf(fn: RegisteredFunction): string {
    const b = fn.trigger.binding;
    const route = typeof b.route === "string" && b.route !== "" ? b.route : fn.name;
    const prefix = this.#prefixSegments.join("/");
    return `/${prefix ? `${prefix}/` : ""}${route.replace(/^\/+/, "")}`;
  }
}

export interface HttpServerOptions {
  port: number;
  hostname: string;
  /** Besides the loopback names and a specific `hostname` (see LocalHostOptions.allowedHosts). */
  allowedHosts: string[];
  maxRequestBodyBytes: number;
  builtinRoutes: BuiltinRoute[];
  routes: FunctionRoutes;
  worker: Worker;
  findFunction(name: string): RegisteredFunction | undefined;
  /** Starts a non-HTTP function for `POST /admin/functions/{name}` (input: the body's `input`), without waiting. */
  startFunction(fn: RegisteredFunction, input: unknown): void;
  log: Log;
}

export interface HttpServer {
  port: number;
  /** e.g. http://127.0.0.1:7071 */
  url: string;
  close(): Promise<void>;
}

/** Listens (rejects when it cannot) and serves until close(). */
export async function startHttpServer(o: HttpServerOptions): Promise<HttpServer> {
  const { hostname, log, routes, worker } = o;
  const maxBody = o.maxRequestBodyBytes;
  const builtins = o.builtinRoutes;
  const routePrefixSegments = routes.prefixSegments;
  const outputKeys = new WeakMap<RegisteredFunction, string | undefined>();
  /** The last Host header value found allowed (allowedHosts does not change). */
  let lastAllowedHost: string | undefined;
  const allowedHosts = new Set([
    ...LOOPBACK_HOSTS,
    ...o.allowedHosts.map((h) => h.toLowerCase()),
    ...(hostname === "0.0.0.0" || hostname === "::" ? [] : [hostname.includes(":") ? `[${hostname.toLowerCase()}]` : hostname.toLowerCase()]),
  ]);

  function sendProblem(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    detail: string,
    headers: Record<string, string> = {},
  ): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const title = STATUS_TITLES[status] ?? http.STATUS_CODES[status] ?? "Error";
    const body = Buffer.from(JSON.stringify({ type: "about:blank", title, status, detail }));
    res.writeHead(status, {
      ...headers,
      "content-type": "application/problem+json",
      "content-length": String(body.length),
    });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  /** The body, or null as soon as it passes the limit (reading stops there; answer with sendTooLarge). */
  function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBody) {
          // Stop reading here: nothing more is buffered or pulled off the wire; the 413 closes the connection.
          tooLarge = true;
          chunks.length = 0;
          req.off("data", onData);
          req.pause();
          resolve(null);
          return;
        }
        chunks.push(chunk);
      };
      req.on("data", onData);
      req.on("end", () => {
        if (!tooLarge) resolve(Buffer.concat(chunks, size));
      });
      req.on("error", (err) => {
        if (!tooLarge) reject(err);
      });
    });
  }

  function sendTooLarge(req: http.IncomingMessage, res: http.ServerResponse): void {
    sendProblem(req, res, 413, `The request body exceeds the maximum of ${maxBody} bytes.`, { connection: "close" });
  }

  /** False when the request has neither Content-Length nor Transfer-Encoding: then it has no body (RFC 9112 6.3). */
  function mayHaveBody(req: http.IncomingMessage): boolean {
    return req.headers["transfer-encoding"] !== undefined || req.headers["content-length"] !== undefined;
  }

  /** A refusal sent before the body is read: the connection closes, so the body is never read either. */
  function refuseUnread(req: http.IncomingMessage, res: http.ServerResponse, status: number, detail: string, headers: Record<string, string> = {}): void {
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? "0") > 0;
    sendProblem(req, res, status, detail, { ...headers, ...(hasBody ? { connection: "close" } : {}) });
  }

  function requestUrl(req: http.IncomingMessage): URL {
    const raw = req.url ?? "/";
    const host = req.headers.host ?? `${hostname}:${actualPort}`;
    try {
      return raw.startsWith("/") ? new URL(`http://${host}${raw}`) : new URL(raw);
    } catch {
      return new URL(`http://${hostname}:${actualPort}${raw.startsWith("/") ? raw : "/"}`);
    }
  }

  function flatHeaders(req: http.IncomingMessage): Record<string, string> {
    const out: Record<string, string> = {};
    const headers = req.headers;
    for (const k of Object.keys(headers)) {
      const v = headers[k];
      if (v === undefined) continue;
      out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
    }
    return out;
  }

  function queryRecord(url: URL): Record<string, string> {
    // The host sends IQueryCollection values as StringValues.ToString(): repeated keys comma-joined.
    // No prototype: a parameter named __proto__ is a parameter, as it is to the host.
    const out = Object.create(null) as Record<string, string>;
    if (url.search === "") return out;
    for (const [k, v] of url.searchParams) out[k] = k in out ? `${out[k]},${v}` : v;
    return out;
  }

  function writeHttpResponse(req: http.IncomingMessage, res: http.ServerResponse, data: RpcHttpData): void {
    const status = Number.parseInt(String(data.statusCode ?? "200"), 10) || 200;
    const setCookies: string[] = [];
    for (const [k, v] of Object.entries(data.headers ?? {})) {
      const key = k.toLowerCase();
      if (key === "content-length" || key === "transfer-encoding" || key === "connection") continue;
      if (key === "set-cookie") setCookies.push(String(v));
      else res.setHeader(k, String(v));
    }
    for (const c of data.cookies ?? []) setCookies.push(serializeCookie(c));
    if (setCookies.length > 0) res.setHeader("set-cookie", setCookies);
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    const body = noBody ? Buffer.alloc(0) : bodyBytes(data.body);
    if (!noBody) res.setHeader("content-length", String(body.length));
    res.writeHead(status);
    res.end(req.method === "HEAD" || noBody ? undefined : body);
  }

  function httpOutputKey(fn: RegisteredFunction): string | undefined {
    // A registration's bindings do not change: looked up once per function.
    if (outputKeys.has(fn)) return outputKeys.get(fn);
    let key: string | undefined;
    if (fn.metadata.bindings.$return?.type?.toLowerCase() === "http") key = "$return";
    else key = Object.entries(fn.metadata.bindings).find(([, b]) => b.direction === "out" && b.type.toLowerCase() === "http")?.[0];
    outputKeys.set(fn, key);
    return key;
  }

  async function handleFunction(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    fn: RegisteredFunction,
    url: URL,
    params: Record<string, string>,
  ): Promise<void> {
    // Nothing to wait for when there is no body.
    const body = mayHaveBody(req) ? await readBody(req) : EMPTY;
    if (body === null) {
      sendTooLarge(req, res);
      return;
    }
    const headers = flatHeaders(req);
    const query = queryRecord(url);
    const httpData: RpcHttpData = { method, url: url.href, headers, query, params };
    if (method !== "GET" && method !== "HEAD") httpData.body = { bytes: body };
    const nativeRequest = BodilessRequest.of(url, method, headers);
    if (nativeRequest) httpData.nativeRequest = nativeRequest;
    const triggerMetadata: Record<string, RpcTypedData> = {
      Query: new LazyJson(() => query),
      Headers: new LazyJson(() => headers),
    };
    for (const [k, v] of Object.entries(params)) triggerMetadata[k] ??= { string: v };

    let r: WorkerResult;
    try {
      r = await worker.invoke(fn, { http: httpData }, triggerMetadata, "This function was programmatically called via the host APIs.");
    } catch {
      sendProblem(req, res, 500, "An unhandled error occurred while executing the function.");
      return;
    }
    const key = httpOutputKey(fn);
    let out: RpcTypedData | null | undefined;
    if (key === "$return") out = r.response.returnValue;
    else if (key) out = r.response.outputData?.find((o) => o.name === key)?.data;
    if (out === null || out === undefined) {
      res.writeHead(204);
      res.end();
      return;
    }
    if (!out.http) {
      log("error", `[${fn.name}] the HTTP output is not an HTTP response (Id=${r.invocationId})`);
      sendProblem(req, res, 500, "An unhandled error occurred while executing the function.");
      return;
    }
    writeHttpResponse(req, res, out.http);
  }

  async function handleAdmin(req: http.IncomingMessage, res: http.ServerResponse, name: string): Promise<void> {
    if ((req.method ?? "").toUpperCase() !== "POST") {
      sendProblem(req, res, 405, `Method ${req.method ?? ""} is not allowed here.`, { allow: "POST" });
      return;
    }
    const body = await readBody(req);
    if (body === null) {
      sendTooLarge(req, res);
      return;
    }
    const fn = o.findFunction(name);
    if (!fn) {
      sendProblem(req, res, 404, `No function named '${name}'.`);
      return;
    }
    if (isHttpTriggerType(fn.trigger.binding.type)) {
      sendProblem(req, res, 400, `'${fn.name}' is an HTTP function; call ${routes.routeOf(fn)} instead.`);
      return;
    }
    let input: unknown;
    if (body.length > 0) {
      const parsed = tryJsonParse(body.toString("utf8"));
      if (parsed && typeof parsed === "object" && "input" in parsed) input = (parsed as { input: unknown }).input;
    }
    o.startFunction(fn, input);
    res.writeHead(202, { "content-length": "0" });
    res.end();
  }

  async function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // DNS rebinding: a page of another origin whose name now resolves to 127.0.0.1 sends its own name.
    // (HTTP/1.1 requires a Host header, which node:http enforces; HTTP/1.0 without one is not a browser's.)
    const hostHeader = req.headers.host;
    if (hostHeader !== undefined && hostHeader !== lastAllowedHost) {
      const name = hostNameOf(hostHeader);
      if (name === undefined || !allowedHosts.has(name)) {
        refuseUnread(req, res, 421, `This host answers requests addressed to ${[...allowedHosts].join(", ")} only, not to '${hostHeader.slice(0, 100)}'.`);
        return;
      }
      // Clients send the same Host on every request: the check is not repeated for it.
      lastAllowedHost = hostHeader;
    }

    const method = (req.method ?? "GET").toUpperCase();
    const url = requestUrl(req);
    const pathname = url.pathname;

    const cl = req.headers["content-length"];
    if (cl !== undefined && Number(cl) > maxBody) {
      sendTooLarge(req, res);
      return;
    }

    // Built-in routes (dev endpoints supplied by the caller).
    let builtinAllow: Set<string> | undefined;
    for (const b of builtins) {
      const pathMatches = b.path.endsWith("/*")
        ? pathname.startsWith(b.path.slice(0, -1)) || pathname === b.path.slice(0, -2)
        : pathname === b.path;
      if (!pathMatches) continue;
      if (b.method === "*" || b.method.toUpperCase() === method) {
        const denied = b.authorize?.(req, url);
        if (denied !== undefined) {
          refuseUnread(req, res, 401, denied);
          return;
        }
        const body = await readBody(req);
        if (body === null) {
          sendTooLarge(req, res);
          return;
        }
        await b.handle(req, res, body);
        return;
      }
      (builtinAllow ??= new Set()).add(b.method.toUpperCase());
    }

    const segments = splitPath(pathname);

    // Core Tools' admin endpoint for non-HTTP functions.
    if (segments.length === 3 && segments[0]?.toLowerCase() === "admin" && segments[1]?.toLowerCase() === "functions") {
      await handleAdmin(req, res, segments[2] as string);
      return;
    }

    if (hasPrefix(segments, routePrefixSegments)) {
      const match = routes.table().match(segments.slice(routePrefixSegments.length), method);
      if (match.status === "matched") {
        await handleFunction(req, res, method, match.value, url, match.params);
        return;
      }
      if (match.status === "method-not-allowed") {
        const allow = [...new Set([...match.allow, ...(builtinAllow ?? [])])].join(", ");
        sendProblem(req, res, 405, `Method ${method} is not allowed for ${pathname}.`, { allow });
        return;
      }
    }
    if (builtinAllow !== undefined) {
      sendProblem(req, res, 405, `Method ${method} is not allowed for ${pathname}.`, { allow: [...builtinAllow].join(", ") });
      return;
    }
    sendProblem(req, res, 404, `No function or endpoint matches ${method} ${pathname}.`);
  }

  const server = http.createServer((req, res) => {
    handleRequest(req, res).catch((err: unknown) => {
      // The path only: a query may carry a credential (`?code=` for the durable API, an approval link's token).
      log("error", `Unhandled error serving ${req.method ?? ""} ${(req.url ?? "").split("?")[0]}: ${errorText(err)}`);
      try {
        sendProblem(req, res, 500, "An unexpected error occurred in the local host.");
      } catch {
        res.destroy();
      }
    });
  });

  let actualPort = o.port;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(o.port, hostname, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.on("error", (err) => log("error", `HTTP server error: ${errorText(err)}`));
  const address = server.address();
  if (address && typeof address === "object") actualPort = address.port;
  const urlHost =
    hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname.includes(":") ? `[${hostname}]` : hostname;

  return {
    port: actualPort,
    url: `http://${urlHost}:${actualPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
