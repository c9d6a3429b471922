import { randomUUID } from "node:crypto";
import type { HttpFunctionOptions, HttpRequest, InvocationContext } from "@azure/functions";
import { functionRoute, type Operation } from "../api/contract.js";
import { MAX_BODY_BYTES } from "../api/problem.js";
import { getServices, type Services } from "../app/services.js";
import { AppError } from "../domain/errors.js";
import { parseOrThrow } from "../domain/validation.js";
import { checkJsonValues } from "./input-guards.js";
import { INTERNAL_ERROR, mapError, problemBody } from "./problem.js";

export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** A whole page; every interpolated value must already be escaped. */
export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
pre{background:#f4f4f4;padding:.75rem;overflow:auto}dt{font-weight:600}dd{margin:0 0 .5rem 0}
textarea{width:100%;min-height:5rem}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}
.error{border-left:4px solid #b00020;padding-left:1rem}</style></head><body>${body}</body></html>`;
}

// Pages reached through signed links: nothing cached, nothing framed, the token never leaks in a Referer.
const HEADERS = {
  "Content-Type": "text/html; charset=utf-8",
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
};

export interface HtmlRequest {
  params: Record<string, string>;
  query: Record<string, string>;
  form: Record<string, string>;
}

function errorPage(err: unknown, correlationId: string, context: InvocationContext) {
  let mapped = INTERNAL_ERROR;
  if (err instanceof AppError) mapped = mapError(err.error);
  else context.error(`correlationId=${correlationId} unhandled error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  const detail = mapped.errors?.length ? `${mapped.detail}: ${mapped.errors.map((e) => `${e.field} ${e.message}`).join("; ")}` : mapped.detail;
  // The same stable reason a problem+json body carries (docs/api.md), for scripts reading the page.
  const reason = problemBody(mapped, "", correlationId).reason;
  return {
    status: mapped.status,
    headers: { ...HEADERS, "x-correlation-id": correlationId },
    body: page(mapped.title, `<div class="error" data-reason="${escapeHtml(reason)}"><h1>${escapeHtml(mapped.title)}</h1><p>${escapeHtml(detail)}</p><p><small>Reference: ${escapeHtml(correlationId)}</small></p></div>`),
  };
}

async function readForm(request: HttpRequest): Promise<Record<string, string>> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    throw new AppError({ kind: "unsupportedMediaType", detail: "send application/x-www-form-urlencoded" });
  }
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_BODY_BYTES) throw new AppError({ kind: "payloadTooLarge", limitBytes: MAX_BODY_BYTES });
  const form = Object.fromEntries(new URLSearchParams(bytes.toString("utf8")));
  checkJsonValues(form, "form");
  return form;
}

/** An anonymous operation that answers with HTML pages (errors included) instead of JSON. */
export function htmlEndpoint(
  op: Operation,
  handler: (req: HtmlRequest, services: Services, correlationId: string, invocation: InvocationContext) => Promise<{ status?: number; html: string }>,
): HttpFunctionOptions {
  return {
    methods: [op.method],
    route: functionRoute(op),
    authLevel: "anonymous",
    handler: async (request, context) => {
      const correlationId = randomUUID();
      try {
        const params = op.params ? (parseOrThrow(op.params, { ...request.params }, "params") as Record<string, string>) : {};
        const rawQuery = Object.fromEntries(request.query.entries());
        const query = op.query ? (parseOrThrow(op.query, rawQuery, "query") as Record<string, string>) : {};
        const form = op.formBody ? (parseOrThrow(op.formBody, await readForm(request), "form") as Record<string, string>) : {};
        const services = await getServices();
        const result = await handler({ params, query, form }, services, correlationId, context);
        return { status: result.status ?? op.success.status, headers: { ...HEADERS, "x-correlation-id": correlationId }, body: result.html };
      } catch (err) {
        return errorPage(err, correlationId, context);
      }
    },
  };
}
