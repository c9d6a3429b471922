import type { Problem } from "../api/problem.js";
import type { DomainError } from "../domain/errors.js";

interface Mapped {
  status: number;
  code: string;
  title: string;
  detail: string;
  /** Stable machine-readable reason (snake_case); defaults to the code's. */
  reason?: string;
  headers?: Record<string, string>;
}

const snake = (code: string) => code.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();

/** The one place where domain errors become HTTP. */
export function mapError(error: DomainError): Mapped & { errors?: { field: string; message: string }[] } {
  switch (error.kind) {
    case "unauthenticated":
      return { status: 401, code: "Unauthenticated", title: "Authentication required", detail: error.detail, headers: { "WWW-Authenticate": 'Bearer realm="aigov"' } };
    case "forbidden":
      return { status: 403, code: "Forbidden", title: "Not allowed", detail: error.detail, ...(error.reason ? { reason: error.reason } : {}) };
    case "notFound":
      return { status: 404, code: "NotFound", title: "Not found", detail: `${error.resource} was not found` };
    case "validation":
      return { status: 400, code: "ValidationFailed", title: "Invalid request", detail: error.detail, errors: error.errors, ...(error.reason ? { reason: error.reason } : {}) };
    case "malformedBody":
      return { status: 400, code: "MalformedBody", title: "Malformed request body", detail: error.detail };
    case "unsupportedMediaType":
      return { status: 415, code: "UnsupportedMediaType", title: "Unsupported content type", detail: error.detail };
    case "payloadTooLarge":
      return { status: 413, code: "PayloadTooLarge", title: "Request body too large", detail: `the limit is ${error.limitBytes} bytes` };
    case "conflict":
      return { status: 409, code: "Conflict", title: "Conflict", detail: error.detail, ...(error.reason ? { reason: error.reason } : {}) };
    case "preconditionRequired":
      return { status: 428, code: "PreconditionRequired", title: "If-Match required", detail: "send the resource's ETag in If-Match" };
    case "preconditionFailed":
      return { status: 412, code: "PreconditionFailed", title: "Stale ETag", detail: "the resource changed since you read it; read it again and retry" };
    case "unavailable":
      return { status: 503, code: "Unavailable", title: "Temporarily unavailable", detail: error.detail, headers: { "Retry-After": "1" } };
  }
}

export function problemBody(m: ReturnType<typeof mapError>, instance: string, correlationId: string): Problem {
  return {
    type: `urn:aigov:problem:${m.code}`,
    title: m.title,
    status: m.status,
    detail: m.detail,
    instance,
    code: m.code,
    reason: m.reason ?? snake(m.code),
    correlationId,
    ...(m.errors ? { errors: m.errors } : {}),
  };
}

export const INTERNAL_ERROR: ReturnType<typeof mapError> = {
  status: 500,
  code: "InternalError",
  title: "Internal error",
  detail: "the request failed unexpectedly; quote the correlation id when reporting it",
};
