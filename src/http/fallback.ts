/**
 * The answer to every request under /api that no operation serves: a problem+json 404 `not_found` for a
 * path the API does not have, 405 `method_not_allowed` (with `Allow`) for a method a path does not take.
 * A catch-all route (`{*path}`) ranks below every other route in ASP.NET routing, which the Functions
 * host and the local host both use, so it is reached only when nothing else matched: in Azure as
 * locally, where the host's own answers differ (Azure's is an empty 404). Anonymous: it names nothing a
 * caller could not know, and reads nothing.
 */
import { randomUUID } from "node:crypto";
import type { HttpFunctionOptions } from "@azure/functions";
import { operations } from "../api/all-operations.js";
import { AppError } from "../domain/errors.js";
import { errorResponse } from "./endpoint.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** An operation's path as a matcher: each `{param}` one non-empty run within a segment, literals as they are (case-insensitive, as routes are). */
function matcher(path: string): RegExp {
  const source = path
    .split(/(\{[^}]+\})/)
    .map((part) => (part.startsWith("{") ? "[^/]+" : escape(part)))
    .join("");
  return new RegExp(`^${source}/?$`, "i");
}

const ROUTES = operations.map((op) => ({ method: op.method, match: matcher(op.path) }));

/** The methods the API takes at a path below /api (empty: it has no such path). */
export function methodsAt(pathBelowApi: string): string[] {
  return [...new Set(ROUTES.filter((r) => r.match.test(pathBelowApi)).map((r) => r.method))].sort();
}

export function routeFallback(): HttpFunctionOptions {
  return {
    methods: [...METHODS],
    route: "{*path}",
    authLevel: "anonymous",
    handler: async (request, context) => {
      const supplied = request.headers.get("x-correlation-id");
      const correlationId = supplied && /^[A-Za-z0-9._:-]{1,128}$/.test(supplied) ? supplied : randomUUID();
      const path = new URL(request.url).pathname.replace(/^\/api(?=\/|$)/, "") || "/";
      const allow = methodsAt(path);
      const error = allow.length ? new AppError({ kind: "methodNotAllowed", path: `/api${path}`, allow }) : new AppError({ kind: "notFound", resource: `/api${path}` });
      return errorResponse(error, request, correlationId, context);
    },
  };
}
