/**
 * The local host's portal routes (docs/portal.md):
 * - `/portal/…`: the built web app (dist/portal-site/portal, `npm run build`), deep links answered with index.html,
 *   and `/portal/config.json` written from the app's own settings: dev sign-in only in dev mode;
 * The playgrounds call the local gateway itself, across origins, as they call APIM in Azure: the gateway's
 * published cors policy (GATEWAY_BROWSER_ORIGINS, the local host's own origins by default) lets them.
 * In Azure the portal is a Static Web App (ADR 019).
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
 * What the pages may do: scripts from this origin only; connections to this origin (the API) and the
 * local gateways (the playgrounds); no framing. Fluent UI writes its styles at run time (Griffel), hence
 * 'unsafe-inline' for styles only.
 */
export function portalCsp(gatewayOrigins: readonly string[]): string {
  const connect = ["'self'", ...gatewayOrigins].join(" ");
  return `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src ${connect}; frame-ancestors 'none'; base-uri 'self'; form-action 'self'`;
}

function securityHeaders(o: PortalRouteOptions): Record<string, string> {
  return {
    "content-security-policy": portalCsp([...o.gateways().values()].map((u) => new URL(u).origin)),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
}

export interface PortalRouteOptions {
  /** dist/portal: the output of the portal's build. */
  root: string;
  /** The portal's config.json (auth mode, gateway URL). */
  config: () => Record<string, unknown>;
  /** The local gateways' URLs by instance, once they run (the pages may connect to them). */
  gateways: () => ReadonlyMap<string, string>;
}

function sendFile(o: PortalRouteOptions, res: ServerResponse, file: string, cache: string): void {
  res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": cache, ...securityHeaders(o) });
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
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store", ...securityHeaders(o) });
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
    sendFile(o, res, file, rel.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache");
    return;
  }
  // A deep link (/portal/projects/…): the app's router takes it from index.html.
  sendFile(o, res, index, "no-cache");
}

export function portalRoutes(o: PortalRouteOptions): BuiltinRoute[] {
  return [
    { method: "GET", path: "/portal/*", handle: (req, res) => servePortal(o, req, res) },
    { method: "HEAD", path: "/portal/*", handle: (req, res) => servePortal(o, req, res) },
  ];
}
