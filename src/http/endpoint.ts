import { randomUUID } from "node:crypto";
import type { HttpFunctionOptions, HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import { z } from "zod";
import { describeAccess, isProjectScoped, needsProjectRoles, verdict } from "../api/access.js";
import { functionRoute, type Operation, type ParsedRequest } from "../api/contract.js";
import { MAX_BODY_BYTES } from "../api/problem.js";
import { getServices, type Services } from "../app/services.js";
import type { Principal, RequestContext } from "../domain/common.js";
import { AppError } from "../domain/errors.js";
import { ProjectId } from "../domain/projects/schema.js";
import { checkJsonValues } from "./input-guards.js";
import { parseOrThrow } from "../domain/validation.js";
import { INTERNAL_ERROR, mapError, problemBody } from "./problem.js";

export interface HandlerResult {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

type Handler<O extends Operation> = (req: ParsedRequest<O>, ctx: RequestContext, services: Services, invocation: InvocationContext) => Promise<HandlerResult>;
type AnonymousHandler<O extends Operation> = (req: ParsedRequest<O>, services: Services) => Promise<HandlerResult>;

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** JSON is UTF-8 (RFC 8259 §8.1); a body that is not (or says it is not) is refused, never read as something else. */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

async function readJsonBody(op: Operation, request: HttpRequest): Promise<unknown> {
  const [type, ...parameters] = (request.headers.get("content-type") ?? "").split(";");
  const contentType = type!.trim().toLowerCase();
  const accepted = op.bodyTypes ?? ["application/json"];
  if (!accepted.includes(contentType)) {
    throw new AppError({ kind: "unsupportedMediaType", detail: `send ${accepted.join(" or ")}` });
  }
  const charset = parameters.map((p) => /^\s*charset\s*=\s*"?([^";\s]*)"?\s*$/i.exec(p)?.[1]).find((c) => c !== undefined);
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    throw new AppError({ kind: "unsupportedMediaType", detail: `send ${accepted.join(" or ")} in UTF-8 (charset=${charset.slice(0, 40)} is not read)` });
  }
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw new AppError({ kind: "payloadTooLarge", limitBytes: MAX_BODY_BYTES });
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_BODY_BYTES) throw new AppError({ kind: "payloadTooLarge", limitBytes: MAX_BODY_BYTES });
  if (bytes.length === 0) throw new AppError({ kind: "malformedBody", detail: "a JSON body is required" });
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new AppError({ kind: "malformedBody", detail: "the body is not UTF-8" });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AppError({ kind: "malformedBody", detail: "the body is not valid JSON" });
  }
  checkJsonValues(value, "body");
  return value;
}

function queryObject(request: HttpRequest): Record<string, string> {
  // No prototype: a parameter named __proto__ is a parameter (refused as unknown), not a prototype.
  const out = Object.create(null) as Record<string, string>;
  // The query as the client sent it: the Functions host joins a repeated parameter's values with commas
  // before the app sees request.query, so a repetition shows only here. No query, no URL to parse.
  if (!request.url.includes("?")) return out;
  const raw = new URL(request.url).searchParams;
  for (const key of new Set(raw.keys())) {
    const values = raw.getAll(key);
    if (values.length > 1) {
      throw new AppError({ kind: "validation", detail: "the request query is invalid", errors: [{ field: `query.${key}`, message: "may appear only once" }] });
    }
    out[key] = values[0]!;
  }
  checkJsonValues(out, "query");
  return out;
}

const NO_QUERY = z.strictObject({});

export async function parseRequest<O extends Operation>(op: O, request: HttpRequest): Promise<ParsedRequest<O>> {
  const params = op.params ? parseOrThrow(op.params, { ...request.params }, "params") : undefined;
  // Unknown query parameters are refused, like unknown body fields (anonymous probes excepted).
  const querySchema = op.query ?? (op.anonymous ? undefined : NO_QUERY);
  const query = querySchema ? parseOrThrow(querySchema, queryObject(request), "query") : undefined;
  const body = op.body ? parseOrThrow(op.body as z.ZodType, await readJsonBody(op, request), "body") : undefined;
  const ifMatch = request.headers.get("if-match")?.trim() || undefined;
  if (op.ifMatch === true && !ifMatch) throw new AppError({ kind: "preconditionRequired" });
  // HTTP says an If-Match received is evaluated before the method runs. An operation with no ETag cannot
  // evaluate it: doing the write anyway would let a client believe it guarded against a lost update.
  if (!op.ifMatch && ifMatch) {
    throw new AppError({
      kind: "validation",
      reason: "if_match_not_supported",
      detail: "this operation takes no If-Match: it has no ETag to compare it with",
      errors: [{ field: "header.if-match", message: "send no If-Match to this operation" }],
    });
  }
  return { params, query, body, ifMatch: op.ifMatch ? ifMatch : undefined } as ParsedRequest<O>;
}

function toResponse(op: Operation, result: HandlerResult, correlationId: string): HttpResponseInit {
  const headers: Record<string, string> = { "x-correlation-id": correlationId, ...result.headers };
  const body = result.body;
  const etag = body && typeof body === "object" && "etag" in body ? (body as { etag: unknown }).etag : undefined;
  if (typeof etag === "string" && etag) headers.ETag = `"${etag}"`;
  if (body === undefined) return { status: result.status ?? op.success.status, headers };
  headers["Content-Type"] = "application/json; charset=utf-8";
  return { status: result.status ?? op.success.status, headers, body: JSON.stringify(body) };
}

export function errorResponse(err: unknown, request: HttpRequest, correlationId: string, context: InvocationContext): HttpResponseInit {
  let mapped = INTERNAL_ERROR;
  if (err instanceof AppError) mapped = mapError(err.error);
  else context.error(`correlationId=${correlationId} unhandled error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  const instance = new URL(request.url).pathname;
  return {
    status: mapped.status,
    headers: { "Content-Type": "application/problem+json; charset=utf-8", "x-correlation-id": correlationId, ...mapped.headers },
    body: JSON.stringify(problemBody(mapped, instance, correlationId)),
  };
}

function options(
  op: Operation,
  run: (request: HttpRequest, correlationId: string, services: Services, invocation: InvocationContext) => Promise<HandlerResult>,
): HttpFunctionOptions {
  return {
    methods: [op.method],
    route: functionRoute(op),
    authLevel: "anonymous", // bearer tokens are validated by the app itself (fail closed)
    handler: async (request, context) => {
      const supplied = request.headers.get("x-correlation-id");
      const correlationId = supplied && CORRELATION_ID.test(supplied) ? supplied : randomUUID();
      try {
        const services = await getServices();
        return toResponse(op, await run(request, correlationId, services, context), correlationId);
      } catch (err) {
        return errorResponse(err, request, correlationId, context);
      }
    },
  };
}

/**
 * The gate: the operation's declared access (src/api/access.ts) over the caller's effective roles —
 * the token's tenant roles and, on operations with a {projectId}, the roles assigned to the caller on
 * that project (one read of the project, only when the tenant roles do not settle it). Callers admitted
 * only for resources of their own ("own") go on to the service, which checks the relation.
 * A malformed or unknown project holds no assignments.
 */
async function admit(op: Operation, request: HttpRequest, principal: Principal, services: Services): Promise<void> {
  let projectRoles: ReadonlySet<string> = new Set();
  const projectId = request.params.projectId;
  if (isProjectScoped(op) && needsProjectRoles(op.access, principal.roles) && ProjectId.safeParse(projectId).success) {
    projectRoles = await services.projects.assignedRoles(principal.tenantId, projectId!, principal.userId);
  }
  if (verdict(op.access, principal.roles, projectRoles) === "no") {
    throw new AppError({ kind: "forbidden", detail: `allowed: ${describeAccess(op.access)}` });
  }
}

/** Binds an authenticated operation to its handler: token → principal, access gate, validation, problem+json. */
export function endpoint<O extends Operation>(op: O, handler: Handler<O>): HttpFunctionOptions {
  return options(op, async (request, correlationId, services, invocation) => {
    const principal = await services.verifier.verify(request.headers.get("authorization"));
    await admit(op, request, principal, services);
    const parsed = await parseRequest(op, request);
    return handler(parsed, { principal, correlationId }, services, invocation);
  });
}

export function anonymousEndpoint<O extends Operation>(op: O, handler: AnonymousHandler<O>): HttpFunctionOptions {
  return options(op, async (request, _correlationId, services) => handler(await parseRequest(op, request), services));
}
