/**
 * The local host's portal routes (docs/portal.md):
 * - `/portal/…`: the built web app (dist/portal-site/portal, `npm run build`), deep links answered with index.html,
 *   and `/portal/config.json` written from the app's own settings: dev sign-in only in dev mode;
 * - `/.dev/gateway/<instance>/…`: the local gateway under the portal's origin, so the playgrounds call it
 *   from the browser without CORS. It forwards the request as it is; the gateway decides everything.
 * In Azure the portal is a Static Web App and the playgrounds call the APIM gateway (ADR 019).
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import type { BuiltinRoute } from "@aigov/functions-localhost";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
};

/**
 * What the pages may do: scripts and connections to this origin only (the API and the gateway proxy), no
 * framing. Fluent UI writes its styles at run time (Griffel), hence 'unsafe-inline' for styles only.
 */
export const PORTAL_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

const SECURITY_HEADERS = {
  "content-security-policy": PORTAL_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

export interface PortalRouteOptions {
  /** dist/portal: the output of the portal's build. */
  root: string;
  /** The portal's config.json (auth mode, gateway URL). */
  config: () => Record<string, unknown>;
  /** The local gateways' URLs by instance, once they run. */
  gateways: () => ReadonlyMap<string, string>;
}

function sendFile(res: ServerResponse, file: string, cache: string): void {
  res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": cache, ...SECURITY_HEADERS });
  createReadStream(file).pipe(res);
}

function servePortal(o: PortalRouteOptions, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://local");
  if (url.pathname === "/portal") {
    res.writeHead(308, { location: "/portal/" });
    res.end();
    return;
  }
  const rel = decodeURIComponent(url.pathname.slice("/portal/".length));
  if (rel === "config.json") {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store", ...SECURITY_HEADERS });
    res.end(JSON.stringify(o.config()));
    return;
  }
  const index = join(o.root, "index.html");
  if (!existsSync(index)) {
    res.writeHead(503, { "content-type": "text/plain; charset=utf-8" });
    res.end("The portal is not built: run npm run build (npm start builds it).");
    return;
  }
  const file = normalize(join(o.root, rel));
  if (rel && file.startsWith(o.root + sep) && existsSync(file) && statSync(file).isFile()) {
    // Hashed asset names change with their content: cached for good. index.html never is.
    sendFile(res, file, rel.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache");
    return;
  }
  // A deep link (/portal/projects/…): the app's router takes it from index.html.
  sendFile(res, index, "no-cache");
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "te", "trailer", "proxy-authorization", "proxy-connection"]);

async function proxyGateway(o: PortalRouteOptions, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
  const url = new URL(req.url ?? "/", "http://local");
  const [, , , instance = "", ...rest] = url.pathname.split("/"); // "", ".dev", "gateway", instance, …
  const target = o.gateways().get(instance);
  if (!target) {
    res.writeHead(404, { "content-type": "application/problem+json" });
    res.end(JSON.stringify({ title: "no such local gateway", status: 404, detail: `instance '${instance}'` }));
    return;
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const method = req.method ?? "GET";
  const answer = await fetch(`${target}/${rest.join("/")}${url.search}`, {
    method,
    headers,
    ...(method === "GET" || method === "HEAD" ? {} : { body: new Uint8Array(body) }),
    redirect: "manual",
    signal: AbortSignal.timeout(120_000),
  }).catch((err: unknown) => err as Error);
  if (answer instanceof Error) {
    res.writeHead(502, { "content-type": "application/problem+json" });
    res.end(JSON.stringify({ title: "the local gateway did not answer", status: 502, detail: answer.message }));
    return;
  }
  const out: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name) && name !== "content-encoding") out[name] = value;
  });
  res.writeHead(answer.status, out);
  res.end(Buffer.from(await answer.arrayBuffer()));
}

export function portalRoutes(o: PortalRouteOptions): BuiltinRoute[] {
  return [
    { method: "GET", path: "/portal/*", handle: (req, res) => servePortal(o, req, res) },
    { method: "HEAD", path: "/portal/*", handle: (req, res) => servePortal(o, req, res) },
    { method: "*", path: "/.dev/gateway/*", handle: (req, res, body) => proxyGateway(o, req, res, body) },
  ];
}
