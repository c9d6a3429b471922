#!/usr/bin/env node
// Writes dist/portal-site/staticwebapp.config.json: the portal's site in Azure (ADR 019) has the app under
// portal/ (vite's base), this file at its root. Run by the portal's own build (packages/portal/package.json).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
// Static Web Apps: deep links answer with the app, hashed assets are cached for good, the same security
// headers as the local host (src/local-app/portal.ts), plus where the portal connects in Azure: the API
// (another origin, allowed by the function app's CORS), Entra ID and the APIM gateway (playgrounds).
const csp = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self' https://*.azurewebsites.net https://login.microsoftonline.com https://*.azure-api.net",
  "frame-src https://login.microsoftonline.com",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join("; ");
const site = join(root, "dist", "portal-site");
mkdirSync(site, { recursive: true });
writeFileSync(
  join(site, "staticwebapp.config.json"),
  JSON.stringify(
    {
      routes: [
        { route: "/", redirect: "/portal/", statusCode: 302 },
        { route: "/portal/assets/*", headers: { "cache-control": "public, max-age=31536000, immutable" } },
        { route: "/portal/config.json", headers: { "cache-control": "no-store" } },
      ],
      navigationFallback: { rewrite: "/portal/index.html", exclude: ["/portal/assets/*", "/portal/config.json"] },
      globalHeaders: { "content-security-policy": csp, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" },
    },
    null,
    2,
  ),
);
